//! Every template in `templates/`, compiled into the binary so the one file
//! runs anywhere. Names ending in `.html` are HTML-escaped automatically.

use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/pages/base.html")),
    ("pages/signup.html", include_str!("../../templates/pages/signup.html")),
    ("pages/signup_done.html", include_str!("../../templates/pages/signup_done.html")),
    ("pages/confirm.html", include_str!("../../templates/pages/confirm.html")),
    ("pages/confirm_done.html", include_str!("../../templates/pages/confirm_done.html")),
    ("pages/confirm_expired.html", include_str!("../../templates/pages/confirm_expired.html")),
    ("pages/not_found.html", include_str!("../../templates/pages/not_found.html")),
    ("pages/unsubscribe.html", include_str!("../../templates/pages/unsubscribe.html")),
    ("pages/unsubscribe_done.html", include_str!("../../templates/pages/unsubscribe_done.html")),
    ("emails/confirm/subject.txt", include_str!("../../templates/emails/confirm/subject.txt")),
    ("emails/confirm/body.txt", include_str!("../../templates/emails/confirm/body.txt")),
    ("emails/confirm/body.html", include_str!("../../templates/emails/confirm/body.html")),
    ("emails/digest/subject.txt", include_str!("../../templates/emails/digest/subject.txt")),
    ("emails/digest/body.txt", include_str!("../../templates/emails/digest/body.txt")),
    ("emails/digest/body.html", include_str!("../../templates/emails/digest/body.html")),
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
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
    }
    Ok(env)
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
