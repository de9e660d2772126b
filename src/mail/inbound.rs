//! Reading inbound mail: what a message that arrived at the bounce or
//! unsubscribe address says. MIME is parsed by `mail-parser` (which never
//! panics and bounds nesting); this module only reads the parts:
//!
//! - RFC 5965 ARF reports (`message/feedback-report`): a spam complaint,
//!   unless its Feedback-Type is `auth-failure` (a report on our DKIM/SPF,
//!   not on the reader);
//! - RFC 3464 DSNs (`message/delivery-status`): the first failed
//!   recipient's Status and Diagnostic-Code; `delivered`, `relayed`,
//!   `expanded` and `delayed` reports are not failures;
//! - auto-replies (RFC 3834 `Auto-Submitted: auto-replied`, vacation and
//!   out-of-office notices): ignored;
//! - the bounce texts of MTAs that send no DSN (qmail, old Sendmail, Exim,
//!   Exchange, webmail providers): the status code and reply in the text.
//!
//! A failure is hard only when the recipient itself is gone (X.1.1, X.1.2,
//! X.1.3, X.1.6, X.1.10, X.2.1, X.4.4, or a permanent failure whose text says the
//! user, mailbox or domain does not exist or was disabled); anything else
//! (full mailboxes, blocks, policy, spam filters, timeouts) is soft.

use mail_parser::{HeaderValue, Message, MessageParser, MimeHeaders, PartType};

/// What a message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Hard,
    Soft,
    Complaint,
    /// Not a bounce; why (for the log).
    Ignored(&'static str),
}

/// A message read: its verdict and where it points.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub verdict: Option<Verdict>,
    /// The RFC 3463 status (`5.1.1`), when one was given.
    pub status: Option<String>,
    /// The remote server's reply or the report's explanation, one line.
    pub diagnostic: Option<String>,
    /// The recipient the report names (Final-Recipient, Original-Rcpt-To).
    pub final_recipient: Option<String>,
    /// Addresses the message itself was sent to (To, Delivered-To,
    /// X-Original-To, Envelope-To): where a VERP tag or mailto token is.
    pub addressed_to: Vec<String>,
    /// Addresses in the original email the report quotes (its
    /// Return-Path, an ARF report's Original-Mail-From, the mailto of its
    /// List-Unsubscribe): a VERP tag may be there too.
    pub quoted: Vec<String>,
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        self.verdict
            .clone()
            .unwrap_or(Verdict::Ignored("not a bounce"))
    }
}

/// Longest diagnostic kept, in characters.
const DIAGNOSTIC_MAX: usize = 500;

/// Reads one raw RFC 5322 message. Anything unparsable is
/// `Ignored("unparsable")`.
pub fn read(raw: &[u8]) -> Report {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Report {
            verdict: Some(Verdict::Ignored("unparsable")),
            ..Report::default()
        };
    };
    let mut report = Report {
        addressed_to: own_recipients(&msg),
        ..Report::default()
    };
    quoted_addresses(&msg, &mut report.quoted);
    if let Some(fields) = part_text(&msg, "feedback-report") {
        read_arf(&fields, &mut report);
    } else if let Some(fields) = part_text(&msg, "delivery-status") {
        read_dsn(&msg, &fields, &mut report);
    } else if read_ses(msg.body_text(0).as_deref().unwrap_or_default(), &mut report) {
        // Amazon SES's notification as an SNS email subscription sends it.
    } else if looks_like_bounce(&msg) {
        // Before the auto-reply test: Exim and Google mark their bounces
        // `Auto-Submitted: auto-replied`.
        read_text_bounce(&msg, &mut report);
    } else if is_auto_reply(&msg) {
        report.verdict = Some(Verdict::Ignored("auto-reply"));
    }
    report
}

fn header_text(msg: &Message, name: &str) -> Vec<String> {
    msg.header_values(name)
        .filter_map(|v| match v {
            HeaderValue::Text(t) => Some(t.to_string()),
            HeaderValue::TextList(l) => Some(l.join(", ")),
            HeaderValue::Address(a) => Some(
                a.iter()
                    .filter_map(|x| x.address())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => None,
        })
        .collect()
}

fn own_recipients(msg: &Message) -> Vec<String> {
    let mut out = Vec::new();
    for name in [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Envelope-To",
        "To",
    ] {
        for value in msg.header_raw_all(name) {
            out.extend(addresses_in(value));
        }
    }
    out
}

trait RawAll {
    fn header_raw_all<'a>(&'a self, name: &'a str) -> Vec<&'a str>;
}

impl RawAll for Message<'_> {
    fn header_raw_all<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.headers_raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }
}

/// Every `local@domain` in a text, at most 20.
pub fn addresses_in(text: &str) -> Vec<String> {
    let is_addr_char = |c: char| c.is_ascii_alphanumeric() || "._%+-=".contains(c);
    let mut out = Vec::new();
    for (i, _) in text.match_indices('@') {
        let start = text[..i]
            .rfind(|c: char| !is_addr_char(c))
            .map_or(0, |p| p + 1);
        let end = text[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .map_or(text.len(), |p| i + 1 + p);
        let (local, domain) = (&text[start..i], text[i + 1..end].trim_end_matches('.'));
        if !local.is_empty() && domain.contains('.') {
            out.push(format!("{local}@{domain}"));
        }
        if out.len() >= 20 {
            break;
        }
    }
    out
}

/// The Return-Path, From and List-Unsubscribe of the original email a
/// report quotes (a message/rfc822 part, or text/rfc822-headers).
fn quoted_addresses(msg: &Message, out: &mut Vec<String>) {
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => {
                for name in ["Return-Path", "List-Unsubscribe", "X-Original-To"] {
                    for v in inner.header_raw_all(name) {
                        out.extend(addresses_in(v));
                    }
                }
            }
            _ if is_type(part, "text", "rfc822-headers") => {
                let text = part.text_contents().unwrap_or_default();
                for line in unfold(text) {
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("return-path:") || lower.starts_with("list-unsubscribe:") {
                        out.extend(addresses_in(&line));
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_type(part: &mail_parser::MessagePart, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

/// The decoded text of the first `message/<subtype>` part.
fn part_text(msg: &Message, subtype: &str) -> Option<String> {
    msg.parts
        .iter()
        .find(|p| is_type(p, "message", subtype))
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
}

/// Header-style fields, folded lines joined.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let starts_folded = line.starts_with(' ') || line.starts_with('\t');
        match lines.last_mut() {
            Some(last) if starts_folded && !line.trim().is_empty() => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.trim_end().to_string()),
        }
    }
    lines
}

/// `Name: value` of a field in a block, case-insensitive.
fn field<'a>(block: &'a [String], name: &str) -> Option<&'a str> {
    block.iter().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The address in a DSN or ARF address field (`rfc822; a@b`).
fn address_field(value: &str) -> Option<String> {
    let value = value.split_once(';').map_or(value, |(_, v)| v);
    addresses_in(value).into_iter().next()
}

fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(DIAGNOSTIC_MAX).collect()
}

fn read_arf(fields: &str, report: &mut Report) {
    let lines = unfold(fields);
    let kind = field(&lines, "Feedback-Type")
        .unwrap_or("abuse")
        .to_ascii_lowercase();
    report.final_recipient = field(&lines, "Original-Rcpt-To")
        .or_else(|| field(&lines, "Removal-Recipient"))
        .and_then(address_field);
    if let Some(from) = field(&lines, "Original-Mail-From") {
        report.quoted.extend(addresses_in(from));
    }
    feedback(&kind, report);
}

/// A feedback report of type `kind` (ARF's Feedback-Type, SES's
/// complaintFeedbackType): a complaint, unless it reports on our DKIM/SPF.
fn feedback(kind: &str, report: &mut Report) {
    report.diagnostic = Some(format!("feedback-type: {kind}"));
    report.verdict = Some(if kind.starts_with("auth-failure") || kind == "dmarc" {
        Verdict::Ignored("authentication failure report")
    } else {
        Verdict::Complaint
    });
}

/// A diagnostic's text after its type (`smtp; 550 ...` → `550 ...`).
fn after_type(d: &str) -> &str {
    d.split_once(';').map_or(d, |(_, v)| v).trim()
}

/// Reads an Amazon SES notification (Bounce, Complaint or Delivery), bare
/// or in its SNS envelope (`"Type": "Notification"` with the notification
/// as a JSON string in `Message`); false when `body` is not one. SES has
/// judged the bounce already: `Permanent` is hard (SES says to remove the
/// address), `Transient` and `Undetermined` soft.
pub fn read_ses(body: &str, report: &mut Report) -> bool {
    use serde_json::Value;
    // Every other message is passed over without a JSON parse (the SNS
    // envelope carries the name too, escaped inside `Message`).
    if !body.contains("notificationType") && !body.contains("eventType") {
        return false;
    }
    let first_json = |text: &str| {
        let from = text.find('{')?;
        serde_json::Deserializer::from_str(text.get(from..)?)
            .into_iter::<Value>()
            .next()?
            .ok()
    };
    // Sendmail breaks lines over 990 bytes with "!" and a newline; the
    // JSON of an SNS email has no newline of its own inside a value.
    let unbroken = || first_json(&body.replace("!\r\n ", "").replace("!\n ", ""));
    let Some(mut n) = first_json(body).or_else(unbroken) else {
        return false;
    };
    if n["Type"] == "Notification" {
        match n["Message"].as_str().and_then(first_json) {
            Some(inner) => n = inner,
            None => return false,
        }
    }
    let kind = n["notificationType"].as_str().or(n["eventType"].as_str());
    let text = |v: &Value| v.as_str().map(str::to_string);
    report.quoted.extend(
        n["mail"]["source"]
            .as_str()
            .map(addresses_in)
            .unwrap_or_default(),
    );
    for h in n["mail"]["headers"].as_array().into_iter().flatten() {
        let name = h["name"].as_str().unwrap_or_default().to_ascii_lowercase();
        if name == "return-path" || name == "list-unsubscribe" {
            report
                .quoted
                .extend(h["value"].as_str().map(addresses_in).unwrap_or_default());
        }
    }
    match kind {
        Some("Bounce") => {
            let bounce = &n["bounce"];
            let first = &bounce["bouncedRecipients"][0];
            report.final_recipient = text(&first["emailAddress"]);
            let diagnostic = first["diagnosticCode"]
                .as_str()
                .map(|d| after_type(d).to_string());
            report.status = text(&first["status"])
                .as_deref()
                .and_then(status_in)
                .or_else(|| diagnostic.as_deref().and_then(status_in));
            report.diagnostic = diagnostic
                .or_else(|| text(&bounce["bounceSubType"]))
                .map(|d| one_line(&d));
            report.verdict = Some(if bounce["bounceType"] == "Permanent" {
                Verdict::Hard
            } else {
                Verdict::Soft
            });
        }
        Some("Complaint") => {
            let complaint = &n["complaint"];
            report.final_recipient = text(&complaint["complainedRecipients"][0]["emailAddress"]);
            let kind = complaint["complaintFeedbackType"]
                .as_str()
                .unwrap_or("abuse");
            feedback(&kind.to_ascii_lowercase(), report);
        }
        Some("Delivery") => report.verdict = Some(Verdict::Ignored("delivery report")),
        _ => return false,
    }
    true
}

/// Per-recipient blocks of a delivery-status body (the first block is
/// the per-message one).
fn dsn_blocks(fields: &str) -> Vec<Vec<String>> {
    let mut blocks = vec![Vec::new()];
    for line in unfold(fields) {
        if line.trim().is_empty() {
            if blocks.last().is_some_and(|b| !b.is_empty()) {
                blocks.push(Vec::new());
            }
        } else if let Some(last) = blocks.last_mut() {
            last.push(line);
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn read_dsn(msg: &Message, fields: &str, report: &mut Report) {
    let blocks = dsn_blocks(fields);
    let recipients: Vec<&Vec<String>> = blocks
        .iter()
        .filter(|b| field(b, "Final-Recipient").is_some() || field(b, "Action").is_some())
        .collect();
    let action = |b: &Vec<String>| {
        field(b, "Action")
            .unwrap_or("failed")
            .to_ascii_lowercase()
            .trim()
            .to_string()
    };
    let failed = recipients
        .iter()
        .find(|b| action(b).starts_with("fail"))
        .or_else(|| recipients.first())
        .copied();
    let Some(block) = failed else {
        // A report with no recipient fields: read its text instead.
        read_text_bounce(msg, report);
        return;
    };
    report.final_recipient = field(block, "Final-Recipient")
        .or_else(|| field(block, "Original-Recipient"))
        .and_then(address_field);
    let action = action(block);
    let diagnostic = field(block, "Diagnostic-Code").map(|d| {
        let d = after_type(d);
        // Some MTAs repeat the field's name inside its value.
        let lower = d.to_ascii_lowercase();
        match lower.strip_prefix("diagnostic-code:") {
            Some(_) => after_type(d.get(16..).unwrap_or(d)),
            None => d,
        }
        .to_string()
    });
    report.status = field(block, "Status")
        .and_then(status_in)
        .or_else(|| diagnostic.as_deref().and_then(status_in));
    let human = human_text(msg);
    let text = match &diagnostic {
        Some(d) if !d.is_empty() => d.clone(),
        _ => human.clone(),
    };
    report.diagnostic = Some(one_line(&text)).filter(|d| !d.is_empty());
    report.verdict = Some(match action.as_str() {
        "delivered" | "relayed" | "expanded" => Verdict::Ignored("delivery report"),
        "delayed" => Verdict::Ignored("delay warning"),
        _ if after_data(&human) => Verdict::Soft,
        _ => classify(report.status.as_deref(), &text),
    });
}

/// Whether a report's text says the refusal answered the message itself.
fn after_data(text: &str) -> bool {
    let flat = text
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    AFTER_DATA.iter().any(|p| flat.contains(p))
}

/// RFC 3834 auto-replies and the vacation notices that forget to say so.
fn is_auto_reply(msg: &Message) -> bool {
    let has = |name: &str| !msg.header_raw_all(name).is_empty();
    let auto = header_text(msg, "Auto-Submitted")
        .iter()
        .any(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"));
    let precedence = header_text(msg, "Precedence")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("auto_reply"));
    let subject = msg.subject().unwrap_or_default().to_lowercase();
    let vacation_subject = [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto reply",
        "autoreply",
        "auto-reply",
        "auto:",
        "away from",
        "vacation",
        "abwesenheit",
        "réponse automatique",
        "respuesta automática",
        "on leave",
    ]
    .iter()
    .any(|p| subject.contains(p));
    auto || precedence || has("X-Autoreply") || has("X-Autorespond") || vacation_subject
}

/// From a mailer daemon, to the null sender, or a bounce's subject.
fn looks_like_bounce(msg: &Message) -> bool {
    let from = header_text(msg, "From").join(" ").to_lowercase();
    let subject = msg.subject().unwrap_or_default().to_lowercase();
    let daemon = [
        "mailer-daemon",
        "postmaster",
        "mail delivery",
        "mmdf",
        "mailer daemon",
    ]
    .iter()
    .any(|p| from.contains(p));
    let bounce_subject = [
        "undeliver",
        "undelivered",
        "delivery status notification",
        "delivery failure",
        "delivery failed",
        "failed delivery",
        "mail delivery failed",
        "failure notice",
        "returned mail",
        "returned to sender",
        "could not be delivered",
        "delivery notification",
        "nondeliverable",
        "non-deliverable",
        "non delivery",
        "non-delivery",
        "rejected",
        "mail system error",
        "delivery problem",
        "permanent error",
        "message not delivered",
        "mail failure",
        "error sending",
        "delivery error",
        "failed mail",
    ]
    .iter()
    .any(|p| subject.contains(p));
    daemon || bounce_subject
}

/// The human-readable text of a report, cut where the quoted original
/// begins (its words are ours, not the remote server's).
fn human_text(msg: &Message) -> String {
    let mut text = String::new();
    for part in msg.parts.iter() {
        if let PartType::Text(t) = &part.body {
            if is_type(part, "text", "rfc822-headers") {
                continue;
            }
            text.push_str(t);
            text.push('\n');
        }
        if text.len() > 64 * 1024 {
            break;
        }
    }
    if text.trim().is_empty() {
        if let Some(html) = msg.body_html(0) {
            text = html.into_owned();
        }
    }
    cut_at_original(&text).to_string()
}

fn cut_at_original(text: &str) -> &str {
    const MARKERS: &[&str] = &[
        "original message follows",
        "copy of the message",
        "copy of message",
        "original message headers",
        "message headers follow",
        "----- original message",
        "-----original message",
        "------ this is a copy",
        "unsent message below",
        "included below is a copy",
        "\nreturn-path:",
        "\nreceived: from",
    ];
    let lower = text.to_ascii_lowercase();
    let cut = MARKERS
        .iter()
        .filter_map(|m| lower.find(m))
        .filter(|&at| at > 40)
        .min()
        .unwrap_or(text.len());
    // Indices of the ASCII-lowered copy are indices of the text.
    text.get(..cut).unwrap_or(text)
}

fn read_text_bounce(msg: &Message, report: &mut Report) {
    let text = human_text(msg);
    let subject = msg.subject().unwrap_or_default().to_lowercase();
    let subject_says = ["failure", "failed", "undeliverable", "undelivered"]
        .iter()
        .any(|w| subject.contains(w));
    if !says_failure(&text) && !subject_says {
        report.verdict = Some(Verdict::Ignored("no delivery failure in it"));
        return;
    }
    report.status = status_in(&text);
    report.final_recipient = addresses_in(&text)
        .into_iter()
        .find(|a| !a.to_ascii_lowercase().contains("mailer-daemon"));
    report.diagnostic = Some(one_line(&reply_line(&text))).filter(|d| !d.is_empty());
    report.verdict = Some(classify(report.status.as_deref(), &text));
}

/// The line that looks most like the remote server's reply: the first
/// with a 4xx/5xx code or a failure word, else the first non-empty one.
fn reply_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| {
            let b = l.as_bytes();
            b.len() > 3
                && matches!(b[0], b'4' | b'5')
                && b[1].is_ascii_digit()
                && b[2].is_ascii_digit()
        })
        .or_else(|| {
            lines.iter().find(|l| {
                let l = l.to_ascii_lowercase();
                HARD.iter().chain(SOFT_OVER_HARD).any(|p| l.contains(p))
            })
        })
        .or_else(|| lines.first())
        .map(|l| l.to_string())
        .unwrap_or_default()
}

/// Whether a text reports a failed delivery at all: a status code, a
/// 4xx/5xx reply, or the words of one.
fn says_failure(text: &str) -> bool {
    const FAILURE: &[&str] = &[
        "could not be delivered",
        "couldn't be delivered",
        "was not delivered",
        "wasn't delivered",
        "not be delivered",
        "delivery failed",
        "delivery has failed",
        "failed permanently",
        "permanent error",
        "permanent failure",
        "fatal error",
        "undeliverable",
        "unable to deliver",
        "delivery to the following",
        "following address",
        "following recipient",
        "rejected",
        "refused",
        "returned",
        "failed",
        "error",
    ];
    let lower = text.to_lowercase();
    status_in(text).is_some()
        || reply_code_line(&lower)
        || FAILURE
            .iter()
            .chain(HARD)
            .chain(SOFT_OVER_HARD)
            .any(|p| lower.contains(p))
}

/// A line that starts with (or carries) a 4xx/5xx SMTP reply code.
fn reply_code_line(lower: &str) -> bool {
    lower.lines().any(|l| {
        l.split(|c: char| !c.is_ascii_digit()).any(|w| {
            w.len() == 3 && matches!(w.as_bytes()[0], b'4' | b'5') && w.as_bytes()[1] <= b'5'
        })
    })
}

/// The first RFC 3463 status code (`X.Y.Z`, X in 2, 4, 5) in a text.
pub fn status_in(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    for i in 0..b.len() {
        if !matches!(b[i], b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
            continue;
        }
        let second = digits(i + 2);
        if !(1..=3).contains(&second) || b.get(i + 2 + second) != Some(&b'.') {
            continue;
        }
        let third_at = i + 3 + second;
        let third = digits(third_at);
        if !(1..=3).contains(&third) || b.get(third_at + third) == Some(&b'.') {
            continue;
        }
        return text.get(i..third_at + third).map(str::to_string);
    }
    None
}

/// Texts that say the recipient is gone (lower case).
const HARD: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "user not found",
    "user doesn't exist",
    "user does not exist",
    "unknown recipient",
    "recipient unknown",
    "no such recipient",
    "recipient not found",
    "recipient does not exist",
    "invalid recipient",
    "recipient address rejected: user",
    "recipient address rejected: undeliverable",
    "recipient address rejected: unknown",
    "recipient address rejected: invalid",
    "address does not exist",
    "does not exist",
    "doesn't exist",
    "no mailbox",
    "mailbox not found",
    "mailbox unavailable",
    "mailbox is unavailable",
    "mailbox does not exist",
    "no such mailbox",
    "unknown mailbox",
    "invalid mailbox",
    "not a valid mailbox",
    "bad destination mailbox",
    "account does not exist",
    "no account by that name",
    "no such account",
    "unrouteable address",
    "is not a known user",
    "address unknown",
    "unknown address",
    "addressee unknown",
    "unknown local part",
    "unknown local-part",
    "no such person",
    "not our customer",
    "email account that you tried to reach does not exist",
    "this user doesn't have a",
    "no longer on server",
    "no longer available",
    "user invalid",
    "invalid address",
    "address invalid",
    "not listed in",
    "host not found",
    "host unknown",
    "unknown host",
    "domain not found",
    "no such domain",
    "unknown domain",
    "domain does not exist",
    "host or domain name not found",
    "name or service not known",
    "unrouteable mail domain",
    "does not accept mail",
    "all relevant mx records point to non-existent hosts",
    "account disabled",
    "account has been disabled",
    "account is disabled",
    "mailbox disabled",
    "mailbox has been disabled",
    "mailbox is disabled",
    "account suspended",
    "account has been suspended",
    "account is suspended",
    "account inactive",
    "account is inactive",
    "mailbox inactive",
    "mailbox is inactive",
    "deactivated",
    "has been terminated",
    "has moved",
    "address has changed",
    "no longer accepts mail",
    "address not found",
    "address rejected.",
    "5.1.0 address rejected",
    "recipient address rejected: access denied",
    "couldn't find any host",
    "no host named",
    "mailbox is frozen",
    "disabled recipient",
    "invalid final delivery userid",
    "invalid domain",
    "may not exist",
    "address couldn't be found",
    "invalid recipient",
    "destinataire invalide",
    "is disabled",
    "is inactive",
    "not our user",
    "domain is not reachable",
];

/// Texts that say the failure is not the recipient's absence, even next
/// to a recipient status code (lower case).
const SOFT_OVER_HARD: &[&str] = &[
    "mailbox full",
    "mailbox is full",
    "over quota",
    "quota exceeded",
    "exceeded storage",
    "exceeds the quota",
    "insufficient system storage",
    "spam",
    "blacklist",
    "blocklist",
    "blocked",
    "dnsbl",
    "reputation",
    "rate limit",
    "too many",
    "greylist",
    "try again later",
    "temporarily",
    "sender address",
    "domain of sender",
    "malformed",
    "rate that",
];

/// Texts that say the reply came to the message itself (after DATA), from
/// a content filter: not proof that the mailbox is gone (Sisimai calls
/// these `filtered`).
const AFTER_DATA: &[&str] = &[
    "in reply to end of data",
    "after end of data",
    "in reply to data",
];

/// Status codes whose subject is the recipient's address, mailbox or
/// domain. X.4.4 is "unable to route": the domain has no mail exchanger
/// (RFC 3463 gives a lookup that returns only an SOA as its example);
/// Postfix reports "Host or domain name not found" with it.
fn recipient_status(status: &str) -> bool {
    let detail = status.get(2..).unwrap_or_default();
    matches!(
        detail,
        "1.1" | "1.2" | "1.3" | "1.6" | "1.10" | "2.1" | "4.4"
    )
}

/// Hard, soft: see the module doc.
pub fn classify(status: Option<&str>, text: &str) -> Verdict {
    let lower = text.to_lowercase();
    let says = |list: &[&str]| list.iter().any(|p| lower.contains(p));
    if after_data(text) {
        return Verdict::Soft;
    }
    match status {
        Some(s) if s.starts_with('2') => Verdict::Ignored("delivery report"),
        Some(s) if s.starts_with('4') => Verdict::Soft,
        Some(s) if s.starts_with('5') && recipient_status(s) => {
            if says(SOFT_OVER_HARD) {
                Verdict::Soft
            } else {
                Verdict::Hard
            }
        }
        _ if says(HARD) && !says(SOFT_OVER_HARD) && !temporary_reply(&lower) => Verdict::Hard,
        _ => Verdict::Soft,
    }
}

/// A 4xx reply code at the start of a line.
fn temporary_reply(lower: &str) -> bool {
    lower.lines().any(|l| {
        let b = l.trim().as_bytes();
        b.len() > 3
            && b[0] == b'4'
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit()
            && b[3] == b' '
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found() {
        assert_eq!(status_in("550 5.1.1 <a@b> no").as_deref(), Some("5.1.1"));
        assert_eq!(status_in("smtp; 4.2.2 full").as_deref(), Some("4.2.2"));
        assert_eq!(status_in("version 1.5.1.1 or 10.4.5.6"), None);
        assert_eq!(status_in("5.1.10 null mx").as_deref(), Some("5.1.10"));
    }

    #[test]
    fn classification() {
        assert_eq!(classify(Some("5.1.1"), "user unknown"), Verdict::Hard);
        assert_eq!(classify(Some("5.2.2"), "mailbox full"), Verdict::Soft);
        assert_eq!(
            classify(Some("5.7.1"), "blocked by spamhaus"),
            Verdict::Soft
        );
        assert_eq!(classify(None, "550 no such user here"), Verdict::Hard);
        assert_eq!(classify(Some("4.4.7"), "user unknown"), Verdict::Soft);
        assert_eq!(classify(Some("5.1.1"), "blocked as spam"), Verdict::Soft);
        assert_eq!(classify(Some("5.4.4"), "unable to route"), Verdict::Hard);
        assert_eq!(classify(Some("4.4.4"), "unable to route"), Verdict::Soft);
    }

    #[test]
    fn garbage_is_ignored_not_a_panic() {
        for raw in [
            &b""[..],
            b"\0\0\0",
            b"Subject: x\r\n\r\nhello",
            &[0xff; 300],
        ] {
            let r = read(raw);
            assert!(matches!(r.verdict(), Verdict::Ignored(_)), "{r:?}");
        }
    }

    #[test]
    fn deep_nesting_and_bad_encodings_are_read_without_a_panic() {
        let mut raw =
            String::from("From: MAILER-DAEMON@x.example\r\nSubject: Undelivered Mail\r\n");
        for i in 0..300 {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%not base64\r\n");
        let r = read(raw.as_bytes());
        assert!(r.verdict.is_some());
        let bad = b"From: postmaster@x.example\r\nSubject: failure notice\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe 550 5.1.1 user unknown\r\n";
        assert_eq!(read(bad).verdict(), Verdict::Hard);
    }

    #[test]
    fn ses_notifications_bare_or_in_their_sns_envelope_are_read() {
        let corpus = |name: &str| {
            let path = format!(
                "{}/tests/fixtures/bounces/sisimai/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            read(&std::fs::read(path).expect("fixture"))
        };
        let bare = corpus("lhost-amazonses-09.eml");
        assert_eq!(bare.verdict(), Verdict::Hard);
        assert_eq!(bare.status.as_deref(), Some("5.1.1"));
        assert_eq!(bare.diagnostic.as_deref(), Some("550 5.1.1 user unknown"));
        assert_eq!(
            bare.final_recipient.as_deref(),
            Some("bounce@simulator.amazonses.com")
        );
        assert!(bare.quoted.iter().any(|a| a == "kijitora@neko.example.org"));
        assert_eq!(corpus("lhost-amazonses-10.eml").verdict(), Verdict::Hard);
        let complaint = corpus("lhost-amazonses-11.eml");
        assert_eq!(complaint.verdict(), Verdict::Complaint);
        assert_eq!(
            complaint.final_recipient.as_deref(),
            Some("complaint@simulator.amazonses.com")
        );
        let transient = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"a@b.example","status":"4.2.2"}]}}"#;
        let mut r = Report::default();
        assert!(read_ses(transient, &mut r));
        assert_eq!(r.verdict(), Verdict::Soft);
        let auth = r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"a@b.example"}],"complaintFeedbackType":"auth-failure"}}"#;
        let mut r = Report::default();
        assert!(read_ses(auth, &mut r));
        assert_eq!(
            r.verdict(),
            Verdict::Ignored("authentication failure report")
        );
        assert!(!read_ses("{\"hello\": 1}", &mut Report::default()));
        assert!(!read_ses(
            "550 5.1.1 {user} unknown",
            &mut Report::default()
        ));
    }

    #[test]
    fn addresses_are_picked_out() {
        assert_eq!(
            addresses_in("To: \"X\" <bounces+d1.abc.def@News.Example>, y@z.org."),
            vec!["bounces+d1.abc.def@News.Example", "y@z.org"]
        );
        assert!(addresses_in("no at sign").is_empty());
    }
}
