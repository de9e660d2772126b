//! Building RFC 5322 messages: multipart text + HTML, Message-ID, Date,
//! list headers (RFC 2369 / RFC 8058) and optional DKIM.
//!
//! Everything a reader typed reaches headers only through lettre's typed
//! builders (which encode and refuse line breaks), never by string pasting.

use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::Message;

/// A rendered email, before it is addressed to anyone.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// List headers that go on every newsletter email. The mailto is
/// advertised only when something reads it (`bounce_address` set).
#[derive(Clone, Debug)]
pub struct ListHeaders {
    pub unsubscribe_https: String,
    pub unsubscribe_mailto: Option<String>,
    pub list_id: String,
}

/// Builds one message. `to_name` is the reader's name, if any.
pub fn build(
    from: &Mailbox,
    to_address: &str,
    to_name: Option<&str>,
    rendered: &Rendered,
    list: Option<&ListHeaders>,
) -> Result<Message, String> {
    let bodies = (
        Body::new(rendered.text.clone()),
        Body::new(rendered.html.clone()),
    );
    build_with(from, to_address, to_name, &rendered.subject, bodies, list)
}

/// Builds one message from bodies that are ready (encoded or not):
/// `(text, html)`.
pub fn build_with(
    from: &Mailbox,
    to_address: &str,
    to_name: Option<&str>,
    subject: &str,
    (text, html): (Body, Body),
    list: Option<&ListHeaders>,
) -> Result<Message, String> {
    let address = to_address
        .parse()
        .map_err(|e| format!("recipient address: {e}"))?;
    // Names are parsed without control characters; this keeps a stray one
    // from ever reaching lettre's header writer.
    let to_name = to_name.map(|n| n.replace(|c: char| c.is_control(), " "));
    let to = Mailbox::new(to_name, address);
    let domain = from.email.domain().to_string();
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject.replace(['\r', '\n'], " "))
        .date_now()
        // rand's user-space generator: no getrandom call per message.
        .message_id(Some(format!(
            "<{}@{}>",
            uuid::Builder::from_random_bytes(rand::random()).into_uuid(),
            domain
        )));
    if let Some(list) = list {
        let header = |name: &'static str, value: String| {
            HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
        };
        builder = builder
            .raw_header(header(
                "List-Unsubscribe",
                match &list.unsubscribe_mailto {
                    Some(mailto) => format!("<{}>, <{}>", list.unsubscribe_https, mailto),
                    None => format!("<{}>", list.unsubscribe_https),
                },
            ))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".to_string(),
            ))
            .raw_header(header("List-Id", list.list_id.clone()));
    }
    let alternative = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        );
    // lettre keeps a multipart's Content-Type with its body, where DKIM
    // signing does not see it (a changed Content-Type would still verify):
    // it goes among the message's own headers, the parts as a 7-bit body
    // (they are quoted-printable or base64 encoded).
    let content_type = alternative
        .headers()
        .get::<ContentType>()
        .ok_or("building message: multipart without a Content-Type")?;
    let formatted = alternative.formatted();
    let parts = formatted
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| formatted[i + 4..].to_vec())
        .ok_or("building message: multipart without a body")?;
    builder
        .header(MIME_VERSION_1_0)
        .header(content_type)
        .body(Body::dangerous_pre_encoded(
            parts,
            ContentTransferEncoding::SevenBit,
        ))
        .map_err(|e| format!("building message: {e}"))
}

/// A digest's text and HTML bodies, quoted-printable encoded once and cut
/// where each reader's own links go (one marker per kind of link), so a
/// send encodes only those links. Soft line breaks on both sides of a link
/// keep every line within 76 characters (segments are wrapped at 75 to
/// leave room for the `=`).
#[derive(Debug)]
pub struct PreEncoded {
    text: Cut,
    html: Cut,
}

/// A body's encoded segments and, between each two, which marker's link
/// goes there.
#[derive(Debug)]
struct Cut {
    segments: Vec<String>,
    gaps: Vec<usize>,
}

impl Cut {
    fn new(body: &str, markers: &[&str]) -> Self {
        let (mut segments, mut gaps) = (Vec::new(), Vec::new());
        let mut rest = body;
        loop {
            let next = markers
                .iter()
                .enumerate()
                .filter_map(|(i, m)| rest.find(m).map(|at| (at, i, m.len())))
                .min();
            let Some((at, i, len)) = next else {
                segments.push(quoted_printable_75(rest));
                break;
            };
            segments.push(quoted_printable_75(&rest[..at]));
            gaps.push(i);
            rest = &rest[at + len..];
        }
        Self { segments, gaps }
    }

    fn fill(&self, links: &[String]) -> Body {
        let mut body = String::new();
        for (n, segment) in self.segments.iter().enumerate() {
            body.push_str(segment);
            if let Some(link) = self.gaps.get(n).and_then(|&i| links.get(i)) {
                body.push_str("=\r\n");
                body.push_str(link);
                body.push_str("=\r\n");
            }
        }
        Body::dangerous_pre_encoded(body.into_bytes(), ContentTransferEncoding::QuotedPrintable)
    }
}

impl PreEncoded {
    pub fn new(text: &str, html: &str, marker: &str) -> Self {
        Self::with_markers(text, html, &[marker])
    }

    /// Cut at each of `markers`; [`PreEncoded::fill`] takes their links in
    /// the same order.
    pub fn with_markers(text: &str, html: &str, markers: &[&str]) -> Self {
        Self {
            text: Cut::new(text, markers),
            html: Cut::new(html, markers),
        }
    }

    /// `(text, html)` bodies with `link` wherever the marker was.
    pub fn bodies(&self, link: &str) -> (Body, Body) {
        self.fill(&[link])
    }

    /// `(text, html)` bodies with each marker's link where it was.
    pub fn fill(&self, links: &[&str]) -> (Body, Body) {
        let links: Vec<String> = links.iter().map(|l| quoted_printable_75(l)).collect();
        (self.text.fill(&links), self.html.fill(&links))
    }
}

/// Quoted-printable with CRLF line ends (as lettre encodes bodies), lines
/// wrapped at 75.
fn quoted_printable_75(s: &str) -> String {
    let mut crlf = String::with_capacity(s.len() + s.len() / 32);
    let mut previous = '\0';
    for c in s.chars() {
        if c == '\n' && previous != '\r' {
            crlf.push('\r');
        }
        crlf.push(c);
        previous = c;
    }
    quoted_printable::encode_with_options(
        crlf,
        quoted_printable::Options::default().line_length_limit(75),
    )
}

/// The message with its envelope sender replaced (the VERP address), the
/// recipients kept.
pub fn with_envelope_from(
    msg: &lettre::Message,
    from: lettre::Address,
) -> lettre::address::Envelope {
    let to = msg.envelope().to().to_vec();
    // Only fails without recipients, which a built message always has.
    lettre::address::Envelope::new(Some(from), to).unwrap_or_else(|_| msg.envelope().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            subject: "Hello\r\nBcc: evil@example.com".into(),
            text: "text".into(),
            html: "<p>html</p>".into(),
        }
    }

    #[test]
    fn headers_cannot_be_injected() {
        let from: Mailbox = "News <news@example.com>".parse().unwrap();
        let msg = build(
            &from,
            "a@example.com",
            Some("Eve\r\nBcc: evil@example.com"),
            &rendered(),
            None,
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(!raw.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("Message-ID: <"));
    }

    #[test]
    fn pre_encoded_bodies_decode_to_the_link_filled_in() {
        let marker = "@@LINK@@";
        let text = format!(
            "Caf\u{e9} \u{2014} a line long enough to need wrapping by the encoder, and then some more words \n\
             Leave: {marker}\nTrailing space \nend"
        );
        let html = format!(
            "<p>x</p>\n<a href=\"{marker}\">Unsubscribe</a> <a href=\"{marker}\">again</a>"
        );
        let link = "https://n.example/unsubscribe?token=abc.DEF_123-xyz&x=1&y=2&zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
        let pre = PreEncoded::new(&text, &html, marker);
        let from: Mailbox = "News <news@example.com>".parse().unwrap();
        let msg = build_with(&from, "a@example.com", None, "S", pre.bodies(link), None).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        for line in raw.split("\r\n") {
            assert!(line.len() <= 76, "{line:?}");
        }
        let decode = |part: &str| {
            let start = raw.find(part).unwrap();
            let body_start = start + raw[start..].find("\r\n\r\n").unwrap() + 4;
            let body_end = body_start + raw[body_start..].find("\r\n--").unwrap();
            let bytes = quoted_printable::decode(
                &raw[body_start..body_end],
                quoted_printable::ParseMode::Strict,
            )
            .unwrap();
            String::from_utf8(bytes).unwrap().replace("\r\n", "\n")
        };
        assert_eq!(
            decode("Content-Type: text/plain"),
            text.replace(marker, link)
        );
        assert_eq!(
            decode("Content-Type: text/html"),
            html.replace(marker, link)
        );
    }

    #[test]
    fn list_headers() {
        let from: Mailbox = "News <news@example.com>".parse().unwrap();
        let list = ListHeaders {
            unsubscribe_https: "https://n.example/unsubscribe?token=abc".into(),
            unsubscribe_mailto: Some("mailto:news@example.com?subject=unsubscribe".into()),
            list_id: "<digest.n.example>".into(),
        };
        let msg = build(&from, "a@example.com", None, &rendered(), Some(&list)).unwrap();
        let raw = String::from_utf8(msg.formatted())
            .unwrap()
            .replace("\r\n ", " ");
        assert!(raw.contains("List-Unsubscribe: <https://n.example/unsubscribe?token=abc>, <mailto:news@example.com?subject=unsubscribe>"), "{raw}");
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("List-Id: <digest.n.example>"));
        let https_only = ListHeaders {
            unsubscribe_mailto: None,
            ..list
        };
        let msg = build(&from, "a@example.com", None, &rendered(), Some(&https_only)).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("List-Unsubscribe: <https://n.example/unsubscribe?token=abc>\r\n"),
            "{raw}"
        );
    }
}
