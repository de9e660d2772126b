//! Every template in `templates/`, compiled into the binary so the one file
//! runs anywhere. Names ending in `.html` are HTML-escaped automatically.

use minijinja::Environment;

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
        "pages/error.html",
        include_str!("../../templates/pages/error.html"),
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
        "admin/articles.html",
        include_str!("../../templates/admin/articles.html"),
    ),
    (
        "admin/digests.html",
        include_str!("../../templates/admin/digests.html"),
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
/// compile is a start-up error, not a request error.
pub fn environment() -> anyhow::Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| anyhow::anyhow!("template syntax: {e}"))?,
    );
    env.add_filter("href", href);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
    }
    Ok(env)
}

/// Escapes a URL for a double-quoted attribute without the `/` → `&#x2f;`
/// of the general HTML escaper, so links stay readable in every mail client.
/// Only http(s) URLs reach templates (validated at intake).
fn href(url: String) -> minijinja::Value {
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
        super::environment().unwrap();
    }
}
