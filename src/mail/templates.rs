//! Every template in `templates/`, compiled into the binary so the one file
//! runs anywhere. Names ending in `.html` are HTML-escaped automatically.

use minijinja::Environment;

use std::path::Path;

use crate::config::{Brand, Settings};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/pages/base.html")),
    (
        "pages/signup.html",
        include_str!("../../templates/pages/signup.html"),
    ),
    (
        "pages/signup_done.html",
        include_str!("../../templates/pages/signup_done.html"),
    ),
    (
        "pages/confirm.html",
        include_str!("../../templates/pages/confirm.html"),
    ),
    (
        "pages/confirm_done.html",
        include_str!("../../templates/pages/confirm_done.html"),
    ),
    (
        "pages/confirm_expired.html",
        include_str!("../../templates/pages/confirm_expired.html"),
    ),
    (
        "pages/not_found.html",
        include_str!("../../templates/pages/not_found.html"),
    ),
    (
        "pages/unsubscribe.html",
        include_str!("../../templates/pages/unsubscribe.html"),
    ),
    (
        "pages/unsubscribe_done.html",
        include_str!("../../templates/pages/unsubscribe_done.html"),
    ),
    (
        "pages/feedback.html",
        include_str!("../../templates/pages/feedback.html"),
    ),
    (
        "pages/feedback_done.html",
        include_str!("../../templates/pages/feedback_done.html"),
    ),
    (
        "pages/preferences.html",
        include_str!("../../templates/pages/preferences.html"),
    ),
    (
        "pages/preferences_deleted.html",
        include_str!("../../templates/pages/preferences_deleted.html"),
    ),
    (
        "pages/error.html",
        include_str!("../../templates/pages/error.html"),
    ),
    (
        "pages/archive.html",
        include_str!("../../templates/pages/archive.html"),
    ),
    (
        "pages/archive_feed.xml",
        include_str!("../../templates/pages/archive_feed.xml"),
    ),
    (
        "admin/base.html",
        include_str!("../../templates/admin/base.html"),
    ),
    (
        "admin/login.html",
        include_str!("../../templates/admin/login.html"),
    ),
    (
        "admin/dashboard.html",
        include_str!("../../templates/admin/dashboard.html"),
    ),
    (
        "admin/subscribers.html",
        include_str!("../../templates/admin/subscribers.html"),
    ),
    (
        "admin/subscriber.html",
        include_str!("../../templates/admin/subscriber.html"),
    ),
    (
        "admin/bounces.html",
        include_str!("../../templates/admin/bounces.html"),
    ),
    (
        "admin/articles.html",
        include_str!("../../templates/admin/articles.html"),
    ),
    (
        "admin/digests.html",
        include_str!("../../templates/admin/digests.html"),
    ),
    (
        "admin/digest.html",
        include_str!("../../templates/admin/digest.html"),
    ),
    (
        "admin/settings.html",
        include_str!("../../templates/admin/settings.html"),
    ),
    (
        "admin/error.html",
        include_str!("../../templates/admin/error.html"),
    ),
    (
        "emails/confirm/subject.txt",
        include_str!("../../templates/emails/confirm/subject.txt"),
    ),
    (
        "emails/confirm/body.txt",
        include_str!("../../templates/emails/confirm/body.txt"),
    ),
    (
        "emails/confirm/body.html",
        include_str!("../../templates/emails/confirm/body.html"),
    ),
    (
        "emails/welcome/subject.txt",
        include_str!("../../templates/emails/welcome/subject.txt"),
    ),
    (
        "emails/welcome/body.txt",
        include_str!("../../templates/emails/welcome/body.txt"),
    ),
    (
        "emails/welcome/body.html",
        include_str!("../../templates/emails/welcome/body.html"),
    ),
    (
        "emails/digest/subject.txt",
        include_str!("../../templates/emails/digest/subject.txt"),
    ),
    (
        "emails/digest/body.txt",
        include_str!("../../templates/emails/digest/body.txt"),
    ),
    (
        "emails/digest/body.html",
        include_str!("../../templates/emails/digest/body.html"),
    ),
];

/// The template environment. Built once at start; a template that does not
/// compile is a start-up error naming its file and line, not a request
/// error. A file under `templates_dir` with a built-in template's path
/// replaces it. Every template gets the brand as `brand`, and `root`,
/// where the app is mounted (`""` or `/newsletter`): pages start their
/// links with it.
pub fn environment(settings: &Settings) -> anyhow::Result<Environment<'static>> {
    build(
        &settings.brand,
        settings.templates_dir.as_deref(),
        settings.mount(),
    )
}

/// The built-in templates with a neutral brand (no site name): what the
/// error pages of a `ResponseError`, which has no app state, render with.
pub fn builtin() -> anyhow::Result<Environment<'static>> {
    let brand = Brand {
        site_name: String::new(),
        site_url: String::new(),
        logo_url: String::new(),
        accent_color: crate::config::DEFAULT_ACCENT.to_string(),
        postal_address: String::new(),
        privacy_url: String::new(),
    };
    build(&brand, None, "")
}

fn build(
    brand: &Brand,
    templates_dir: Option<&Path>,
    root: &str,
) -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow::anyhow!("template syntax: {e}"))?,
    );
    env.add_filter("href", href);
    env.add_global(
        "brand",
        minijinja::Value::from(minijinja::value::Serde(brand)),
    );
    env.add_global("root", href(root.to_string()));
    for (name, source) in TEMPLATES {
        let path = file_of(name);
        let custom = match templates_dir {
            Some(dir) if dir.join(path).is_file() => Some(dir.join(path)),
            _ => None,
        };
        let result = match &custom {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("template {}: {e}", file.display()))?;
                env.add_template_owned(name.to_string(), text)
            }
            None => env.add_template(name, source),
        };
        result.map_err(|e| {
            let file = custom.as_ref().map_or_else(
                || format!("templates/{path} (built in)"),
                |f| f.display().to_string(),
            );
            match e.line() {
                Some(line) => anyhow::anyhow!(
                    "template {file} line {line}: {}",
                    e.detail().unwrap_or("invalid")
                ),
                None => anyhow::anyhow!("template {file}: {e}"),
            }
        })?;
    }
    Ok(env)
}

/// The path under `templates/` (and `templates_dir`) of a template.
fn file_of(name: &str) -> &str {
    if name == "base.html" {
        "pages/base.html"
    } else {
        name
    }
}

/// Escapes a URL for a double-quoted attribute without the `/` → `&#x2f;`
/// of the general HTML escaper, so links stay readable in every mail client.
/// Only http(s) URLs reach templates (validated at intake).
pub fn href(url: String) -> minijinja::Value {
    let mut out = String::with_capacity(url.len());
    for ch in url.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    minijinja::Value::from_safe_string(out)
}

/// Renders one template; errors carry the template name.
pub fn render<S: serde::Serialize>(
    env: &Environment<'static>,
    name: &str,
    ctx: S,
) -> anyhow::Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
        .map_err(|e| anyhow::anyhow!("rendering {name}: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_templates_compile() {
        let settings = crate::config::Settings::from_map(&Default::default()).unwrap();
        super::environment(&settings).unwrap();
    }
}
