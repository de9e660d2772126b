//! Static checks of docker-compose.yml and Dockerfile against the settings contract.

use std::path::PathBuf;

use serde_yaml::Value;

/// Setting keys (DESIGN.md's "Settings" table); each is `TIDINGS_<KEY>` in the environment.
use tidings::config::KEYS as SETTING_KEYS;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Value {
    serde_yaml::from_str(&repo_file("docker-compose.yml"))
        .expect("docker-compose.yml is valid YAML")
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.get("services")
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

/// The service's environment as (KEY, value), from either the map or the `KEY=value` list form.
fn environment(svc: &Value) -> Vec<(String, String)> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_yaml::to_string(other).unwrap().trim().to_string(),
    };
    match svc.get("environment") {
        None => Vec::new(),
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (item, String::new()),
                }
            })
            .collect(),
        Some(other) => panic!("environment must be a map or a list, got {other:?}"),
    }
}

#[test]
fn compose_declares_services_volume_and_healthchecks() {
    let doc = compose();
    for name in ["postgres", "mailpit", "app"] {
        let svc = service(&doc, name);
        let test = svc
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .unwrap_or_else(|| panic!("service {name} has no healthcheck test"));
        assert!(
            !matches!(test, Value::Null) && test.as_sequence().is_none_or(|s| !s.is_empty()),
            "service {name} has an empty healthcheck"
        );
    }
    let pg = service(&doc, "postgres");
    assert!(
        pg["image"]
            .as_str()
            .unwrap_or("")
            .starts_with("postgres:16"),
        "postgres:16 image"
    );
    let pg_check = serde_yaml::to_string(&pg["healthcheck"]["test"]).unwrap();
    assert!(
        pg_check.contains("pg_isready"),
        "postgres healthcheck uses pg_isready: {pg_check}"
    );
    let pg_volumes = serde_yaml::to_string(&pg["volumes"]).unwrap();
    assert!(
        pg_volumes.contains("pgdata:"),
        "postgres keeps its data in the pgdata volume: {pg_volumes}"
    );
    assert!(
        doc.get("volumes")
            .and_then(|v| v.as_mapping())
            .is_some_and(|v| v.contains_key("pgdata")),
        "top-level volume pgdata is declared"
    );

    let mailpit = service(&doc, "mailpit");
    assert!(mailpit["image"]
        .as_str()
        .unwrap_or("")
        .starts_with("axllent/mailpit"));
    let ports = serde_yaml::to_string(&mailpit["ports"]).unwrap();
    assert!(
        ports.contains("8025") && ports.contains("1025"),
        "mailpit publishes 8025 and 1025: {ports}"
    );
}

#[test]
fn compose_app_builds_from_dockerfile_and_waits_for_healthy_deps() {
    let doc = compose();
    let app = service(&doc, "app");
    let build = app.get("build").expect("app has a build section");
    let (context, dockerfile) = match build {
        Value::String(ctx) => (ctx.as_str(), "Dockerfile"),
        _ => (
            build.get("context").and_then(Value::as_str).unwrap_or("."),
            build
                .get("dockerfile")
                .and_then(Value::as_str)
                .unwrap_or("Dockerfile"),
        ),
    };
    assert!(
        matches!(context, "." | "./"),
        "app builds from the repo root, not {context:?}"
    );
    assert_eq!(dockerfile, "Dockerfile");

    let depends = app
        .get("depends_on")
        .and_then(Value::as_mapping)
        .expect("app.depends_on is a map with conditions");
    for dep in ["postgres", "mailpit"] {
        let condition = depends
            .get(dep)
            .and_then(|d| d.get("condition"))
            .and_then(Value::as_str);
        assert_eq!(
            condition,
            Some("service_healthy"),
            "app waits for {dep} to be healthy"
        );
    }

    let ports = serde_yaml::to_string(&app["ports"]).unwrap();
    assert!(ports.contains("8080"), "app publishes 8080: {ports}");
    let check = serde_yaml::to_string(&app["healthcheck"]["test"]).unwrap();
    assert!(
        check.contains("/health"),
        "app healthcheck hits /health: {check}"
    );
}

#[test]
fn compose_app_environment_uses_only_known_settings() {
    let doc = compose();
    let env = environment(service(&doc, "app"));
    assert!(!env.is_empty(), "app has an environment");
    for (key, _) in &env {
        let setting = key
            .strip_prefix("TIDINGS_")
            .unwrap_or_else(|| panic!("app env {key} does not start with TIDINGS_"));
        assert!(
            SETTING_KEYS
                .iter()
                .any(|k| k.to_ascii_uppercase() == setting),
            "app env {key} is not a setting from DESIGN.md ({SETTING_KEYS:?})"
        );
    }
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("TIDINGS_LISTEN"), Some("0.0.0.0:8080"));
    assert_eq!(get("TIDINGS_BASE_URL"), Some("http://localhost:8080"));
    assert_eq!(
        get("TIDINGS_DATABASE_URL"),
        Some("postgres://tidings:tidings@postgres:5432/tidings")
    );
    assert_eq!(
        get("TIDINGS_SMTP_URL"),
        Some("smtp://mailpit:1025?tls=none")
    );
    assert!(
        get("TIDINGS_MAIL_FROM").is_some_and(|v| v.contains('@')),
        "TIDINGS_MAIL_FROM is set"
    );
}

#[test]
fn compose_dockerfile_is_multi_stage_with_system_libpq() {
    let dockerfile = repo_file("Dockerfile");
    let instructions: Vec<String> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let froms: Vec<String> = instructions
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .map(|l| l.to_ascii_lowercase())
        .collect();
    assert!(froms.len() >= 2, "multi-stage build, got {froms:?}");
    assert!(
        froms[0].starts_with("from rust:") && froms[0].ends_with(" as builder"),
        "first stage is the rust builder: {:?}",
        froms[0]
    );
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("debian:bookworm-slim"),
        "runtime stage is debian:bookworm-slim: {runtime:?}"
    );
    assert!(
        instructions.iter().any(|l| l.contains("cargo build")
            && l.contains("--release")
            && l.contains("--locked"))
            || dockerfile.contains("cargo build --release --locked"),
        "builds with cargo build --release --locked"
    );
    assert!(
        dockerfile.contains("--no-default-features"),
        "links the system libpq (--no-default-features)"
    );
    assert!(
        dockerfile.contains("libpq-dev"),
        "builder installs libpq-dev"
    );
    assert!(dockerfile.contains("libpq5"), "runtime installs libpq5");
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("COPY --from=builder") && l.contains("target/release/tidings")),
        "runtime copies the release binary from the builder"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.starts_with("USER ") && !l.contains("root")),
        "runs as a non-root user"
    );
    assert!(
        instructions
            .iter()
            .any(|l| l.replace(' ', "") == r#"CMD["tidings","serve"]"#),
        "CMD [\"tidings\", \"serve\"]"
    );

    let ignore = repo_file(".dockerignore");
    for entry in ["target", "data", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim().trim_matches('/') == entry),
            ".dockerignore lists {entry}"
        );
    }
}
