//! What a feed item's HTML becomes in a digest: plain text with its
//! paragraph breaks, every entity decoded, script and style dropped; the
//! first image it shows; an excerpt cut at a word boundary.
//!
//! The HTML is first parsed and sanitised by ammonia (html5ever: the same
//! parse a browser does, so `x < y` stays text and a stray `<b` cannot eat
//! a headline). Only block tags, `br` and `img src` survive, URLs are
//! http(s) only and relative ones are resolved against the item's base.
//! The small walk below then reads ammonia's normalised output, in which
//! every `<` of text is escaped, so it can split tags from text safely.

use std::collections::{HashMap, HashSet};

/// The most of an item's HTML looked at: a 10 MB item costs no more than
/// this (a cut tag at the end is harmless: html5ever closes it).
pub const MAX_HTML_BYTES: usize = 256 * 1024;

/// Tags that make a paragraph (or line) break in the text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "table",
    "tr",
    "section",
    "article",
    "header",
    "footer",
    "aside",
    "hr",
    "dl",
    "dt",
    "dd",
];

/// Whose content is dropped with them, not kept as text.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "iframe", "object", "svg", "math", "head", "title",
    "select", "textarea", "button",
];

/// Text and the first image of an HTML fragment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extract {
    /// Paragraphs separated by a blank line, whitespace within each folded.
    pub text: String,
    pub first_image: Option<String>,
}

/// Reads an HTML fragment: text with paragraph breaks and the first
/// http(s) image, relative URLs resolved against `base`.
pub fn extract(html: &str, base: Option<&url::Url>) -> Extract {
    let html = cut_at_char_boundary(html, MAX_HTML_BYTES);
    let mut builder = ammonia::Builder::default();
    let mut tags: HashSet<&str> = BLOCKS.iter().copied().collect();
    tags.extend(["br", "img"]);
    builder
        .tags(tags)
        .clean_content_tags(DROPPED.iter().copied().collect())
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::from([("img", HashSet::from(["src"]))]))
        .url_schemes(HashSet::from(["http", "https"]))
        .link_rel(None)
        .url_relative(match base {
            Some(b) => ammonia::UrlRelative::RewriteWithBase(b.clone()),
            None => ammonia::UrlRelative::Deny,
        });
    walk(&builder.clean(html).to_string())
}

/// A title or a name: tags dropped, entities decoded, whitespace folded to
/// single spaces. Text that does not look like HTML is kept as written, so
/// "x<y" is not read as a tag.
pub fn plain(text: &str) -> String {
    let text = if looks_like_html(text) {
        extract(text, None).text
    } else {
        text.to_string()
    };
    fold_whitespace(&text)
}

/// `text` cut to at most `max` characters at a word boundary, with an
/// ellipsis when anything was cut. Paragraph breaks are kept.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let cut: String = text.chars().take(keep).collect();
    let at_word_end = text.chars().nth(keep).is_none_or(char::is_whitespace);
    let kept = match cut.rfind(char::is_whitespace) {
        _ if at_word_end => cut.as_str(),
        // A word longer than half the excerpt is cut inside it.
        Some(at) if at > cut.len() / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    let kept = kept.trim_end_matches(|c: char| c.is_whitespace() || ",;:–—-".contains(c));
    format!("{kept}…")
}

/// A tag (`<p`, `</p`, `<!`) or an entity (`&amp;`, `&#8217;`) in `text`.
pub fn looks_like_html(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        match b {
            b'<' => {
                let name = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                let after = bytes.get(i + 1 + name).copied();
                (name > 0
                    && next.is_ascii_alphabetic()
                    && matches!(after, Some(b' ' | b'>' | b'/')))
                    || next == b'/'
                    || next == b'!'
            }
            b'&' => {
                let rest = &bytes[i + 1..];
                let name = rest
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
                    .count();
                name > 0 && rest.get(name) == Some(&b';')
            }
            _ => false,
        }
    })
}

fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads ammonia's output: text between tags decoded, blocks as blank
/// lines, `br` as a line break, the first `img src`.
fn walk(clean: &str) -> Extract {
    let mut out = Extract::default();
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut rest = clean;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            current.push_str(&html_escape::decode_html_entities(rest));
            break;
        };
        current.push_str(&html_escape::decode_html_entities(&rest[..open]));
        let (tag, end) = match tag_end(&rest[open..]) {
            Some(e) => (&rest[open + 1..open + e], open + e + 1),
            None => (&rest[open + 1..], rest.len()),
        };
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "br" {
            current.push('\n');
        } else if name == "img" && out.first_image.is_none() {
            out.first_image = attribute(tag, "src");
        } else if BLOCKS.contains(&name.as_str()) {
            push_paragraph(&mut paragraphs, &mut current);
        }
        rest = &rest[end..];
    }
    push_paragraph(&mut paragraphs, &mut current);
    out.text = paragraphs.join("\n\n");
    out
}

/// Where a tag ends: the first `>` outside a quoted attribute value.
fn tag_end(tag: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// A double-quoted attribute's value (html5ever always quotes with `"`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    let value = html_escape::decode_html_entities(&tag[start..start + len]).into_owned();
    let url = url::Url::parse(&value).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

fn push_paragraph(paragraphs: &mut Vec<String>, current: &mut String) {
    let lines: Vec<String> = current
        .split('\n')
        .map(fold_whitespace)
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.is_empty() {
        paragraphs.push(lines.join("\n"));
    }
    current.clear();
}

/// Runs of whitespace (and control characters, which PostgreSQL may not
/// store) become one space; the ends are trimmed.
fn fold_whitespace(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> url::Url {
        url::Url::parse("https://news.example/2026/11/story/").unwrap()
    }

    #[test]
    fn entities_script_style_and_paragraphs() {
        let html = "<p>The council&#8217;s vote: 27&ndash;14.</p><script>alert('x')</script>\
                    <style>p{color:red}</style><p>Second <b>para</b>graph<br>next line</p>";
        let e = extract(html, Some(&base()));
        assert_eq!(
            e.text,
            "The council\u{2019}s vote: 27\u{2013}14.\n\nSecond paragraph\nnext line"
        );
    }

    #[test]
    fn first_image_resolved_and_unsafe_ones_dropped() {
        let e = extract(
            "<img src=\"javascript:alert(1)\" onerror=\"x()\"><img src=\"../pic.jpg?a=1&amp;b=2\">",
            Some(&base()),
        );
        assert_eq!(
            e.first_image.as_deref(),
            Some("https://news.example/2026/11/pic.jpg?a=1&b=2")
        );
        assert_eq!(extract("<img src=\"/x.png\">", None).first_image, None);
    }

    #[test]
    fn titles() {
        assert_eq!(
            plain("Why \u{201c}x &lt; y\u{201d} isn&#8217;t"),
            "Why \u{201c}x < y\u{201d} isn\u{2019}t"
        );
        assert_eq!(plain("Why x < y matters"), "Why x < y matters");
        assert_eq!(plain("x<y"), "x<y");
        assert_eq!(plain("1<2 & 3>2"), "1<2 & 3>2");
        assert_eq!(plain("<b>Bold</b> move &amp; more"), "Bold move & more");
        assert_eq!(plain("a\u{0}b"), "a b");
    }

    #[test]
    fn excerpts_end_at_a_word() {
        assert_eq!(excerpt("short one", 20), "short one");
        assert_eq!(
            excerpt("The quick brown fox jumps over the lazy dog", 20),
            "The quick brown fox…"
        );
        assert!(excerpt(&"x".repeat(50), 10).chars().count() <= 10);
    }

    #[test]
    fn huge_input_is_cut() {
        let big = format!("<p>{}</p>", "word ".repeat(200_000));
        assert!(extract(&big, None).text.len() <= MAX_HTML_BYTES);
    }
}
