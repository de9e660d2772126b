//! A DNS server a test controls: answers TXT queries from a map, NXDOMAIN
//! for any other name, over UDP on 127.0.0.1 (what `tidings doctor --dns`
//! asks).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::UdpSocket;

pub struct TxtServer {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TxtServer {
    /// `records`: lower-case name without the final dot → its TXT strings.
    pub async fn start(records: HashMap<String, Vec<String>>) -> TxtServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("dns address");
        let records = Arc::new(records);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = answer(&buf[..n], &records) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        TxtServer { addr, task }
    }
}

impl Drop for TxtServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reply to one query: its id and question, then the TXT answers.
fn answer(query: &[u8], records: &HashMap<String, Vec<String>>) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *query.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_ascii_lowercase());
        pos += len;
    }
    let question_end = pos + 4;
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let found = records.get(&labels.join("."));
    let answers: Vec<&String> = match (qtype, found) {
        (16, Some(txts)) => txts.iter().collect(),
        _ => Vec::new(),
    };
    let mut reply = query[..2].to_vec();
    let rcode = if found.is_some() { 0 } else { 3 };
    reply.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    reply.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    for txt in answers {
        let mut rdata = Vec::new();
        for chunk in txt.as_bytes().chunks(255) {
            rdata.push(chunk.len() as u8);
            rdata.extend_from_slice(chunk);
        }
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        reply.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        reply.extend_from_slice(&rdata);
    }
    Some(reply)
}
