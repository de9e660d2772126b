//! The rules of a vote's article URL, with no I/O: what a vote may name
//! (an http(s) URL of at most [`MAX_URL`] bytes, kept without its
//! fragment) and whether it is under the site's URL.

use url::Url;

/// Longest article URL a vote may name, in bytes.
pub const MAX_URL: usize = 2048;

/// Parses the URL a vote names: trimmed, http(s), without its fragment
/// (`#comments` is the same article). The reason on failure.
pub fn article_url(raw: &str) -> Result<Url, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("is required");
    }
    if raw.len() > MAX_URL {
        return Err("must be at most 2048 characters");
    }
    let mut url = Url::parse(raw).map_err(|_| "must be an http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL");
    }
    url.set_fragment(None);
    Ok(url)
}

/// Whether `url` is on the site at or below `site`'s path (same scheme,
/// host and port; `https://news.example/blog` takes `/blog/…`, not
/// `/blogger`).
pub fn is_under(site: &Url, url: &Url) -> bool {
    if site.scheme() != url.scheme()
        || site.host_str() != url.host_str()
        || site.port_or_known_default() != url.port_or_known_default()
    {
        return false;
    }
    let base = site.path().trim_end_matches('/');
    let path = url.path();
    path == base || path.starts_with(&format!("{base}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_fragment_and_must_be_http() {
        let u = article_url(" https://news.example/a?id=1#comments ").unwrap();
        assert_eq!(u.as_str(), "https://news.example/a?id=1");
        assert!(article_url("javascript:alert(1)").is_err());
        assert!(article_url("").is_err());
        assert!(article_url(&format!("https://n.example/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn under_the_site_means_its_host_and_path() {
        let site = Url::parse("https://news.example/blog").unwrap();
        let yes = |s: &str| is_under(&site, &Url::parse(s).unwrap());
        assert!(yes("https://news.example/blog/2026/story"));
        assert!(yes("https://news.example/blog"));
        assert!(!yes("https://news.example/blogger/x"));
        assert!(!yes("http://news.example/blog/x"));
        assert!(!yes("https://news.example.evil/blog/x"));
        assert!(!yes("https://news.example:8443/blog/x"));
        let root = Url::parse("https://news.example/").unwrap();
        assert!(is_under(
            &root,
            &Url::parse("https://news.example/any").unwrap()
        ));
    }
}
