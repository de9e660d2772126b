//! `tidings doctor`: a line per finding with its fix; exit 1 on any
//! problem; the database and the relay tried for real.

use std::process::Output;

use crate::helpers::tidings;
use crate::support::smtp::MailSink;

fn key() -> String {
    format!(
        "{}/tests/api/fixtures/dkim_ed25519.pem",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn doctor(dir: &std::path::Path, env: &[(&str, String)]) -> Output {
    doctor_with(dir, env, &[])
}

fn doctor_with(dir: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = tidings();
    cmd.current_dir(dir).arg("doctor").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn each_mistake_is_one_line_with_its_fix_and_the_exit_is_1() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(MailSink::start());
    let dir = tempfile::tempdir().unwrap();

    let out = doctor(
        dir.path(),
        &[
            ("TIDINGS_SMTP_URL", sink.url()),
            ("TIDINGS_DKIM_DOMAIN", "other.example".into()),
            ("TIDINGS_DKIM_SELECTOR", "mail".into()),
            ("TIDINGS_DKIM_PRIVATE_KEY_FILE", key()),
            ("TIDINGS_SMPT_URL", "smtp://typo".into()),
            ("TIDINGS_LISTEN", "127.0.0.1:9999".into()),
            ("TIDINGS_BASE_URL", "http://127.0.0.1:8080".into()),
        ],
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("problem"))
        .collect();
    for expected in [
        "mail_from is at localhost",
        "dkim_domain other.example is not mail_from's domain localhost",
        "TIDINGS_SMPT_URL is not a setting",
        "base_url http://127.0.0.1:8080/ points at port 8080, but listen is 127.0.0.1:9999",
        "no database at",
    ] {
        assert!(
            problems
                .iter()
                .any(|l| l.contains(expected) && l.contains("; fix: ")),
            "{expected} not found in {stdout}"
        );
    }
    assert_eq!(problems.len(), 5, "{stdout}");
    assert!(
        stdout.contains(&format!("ok       mail: SMTP 127.0.0.1:{}", sink.port())),
        "{stdout}"
    );
    assert_eq!(
        stderr.trim().lines().last(),
        Some("error: 5 problems"),
        "{stderr}"
    );
}

#[test]
fn a_sound_setup_passes_and_the_relay_is_tried_for_real() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(MailSink::start());
    let dir = tempfile::tempdir().unwrap();
    let migrate = tidings()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(migrate.status.code(), Some(0));
    let env = [
        ("TIDINGS_SMTP_URL", sink.url()),
        ("TIDINGS_MAIL_FROM", "News <news@tidings.test>".to_string()),
        ("TIDINGS_DKIM_DOMAIN", "tidings.test".into()),
        ("TIDINGS_DKIM_SELECTOR", "mail".into()),
        ("TIDINGS_DKIM_PRIVATE_KEY_FILE", key()),
    ];

    let dns = rt.block_on(crate::support::dns::TxtServer::start(sound_records()));
    let dns = dns.addr.to_string();

    let out = doctor_with(dir.path(), &env, &["--dns", &dns]);

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().all(|l| l.starts_with("ok ")), "{stdout}");
    assert!(
        stdout.contains("DKIM signs for tidings.test, aligned"),
        "{stdout}"
    );
    assert!(stdout.contains("takes writes"), "{stdout}");
    assert!(sink.connections() >= 1);

    drop(sink);
    let out = doctor_with(dir.path(), &env, &["--dns", &dns]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("problem  mail: ") && l.contains("fix: check smtp_url")),
        "{stdout}"
    );
}

/// The sending domain's records, read from a DNS server the test runs:
/// SPF and DMARC present, and the selector's key compared with the file's.
#[test]
fn dns_records_are_read_and_the_dkim_key_compared() {
    use std::collections::HashMap;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sink = rt.block_on(MailSink::start());
    let dir = tempfile::tempdir().unwrap();
    let migrate = tidings()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(migrate.status.code(), Some(0));
    let env = [
        ("TIDINGS_SMTP_URL", sink.url()),
        ("TIDINGS_MAIL_FROM", "News <news@tidings.test>".to_string()),
        ("TIDINGS_DKIM_DOMAIN", "tidings.test".into()),
        ("TIDINGS_DKIM_SELECTOR", "mail".into()),
        ("TIDINGS_DKIM_PRIVATE_KEY_FILE", key()),
    ];
    let run = |records: HashMap<String, Vec<String>>| {
        let server = rt.block_on(crate::support::dns::TxtServer::start(records));
        let mut cmd = tidings();
        cmd.current_dir(dir.path())
            .args(["doctor", "--dns", &server.addr.to_string()]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let record = |name: &str, txt: &str| (name.to_string(), vec![txt.to_string()]);

    let (code, stdout) = run(sound_records());
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("ok       SPF record at tidings.test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok       DMARC record at _dmarc.tidings.test"),
        "{stdout}"
    );
    assert!(stdout.contains("matches dkim_private_key_file"), "{stdout}");

    let (code, stdout) = run(HashMap::from([record(
        "mail._domainkey.tidings.test",
        "v=DKIM1; k=ed25519; p=AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyOtherKeyOther=",
    )]));
    assert_eq!(code, Some(1), "{stdout}");
    for expected in [
        "problem  no SPF record at tidings.test; fix: publish TXT \"v=spf1",
        "problem  no DMARC record at _dmarc.tidings.test; fix: publish TXT \"v=DMARC1",
        "problem  the DKIM record at mail._domainkey.tidings.test is not dkim_private_key_file's key; fix: publish TXT \"v=DKIM1; p=UjwV5",
    ] {
        assert!(stdout.contains(expected), "{expected} not in {stdout}");
    }
}

/// SPF, DMARC and the DKIM record of the fixture key (its public half as
/// `openssl pkey -pubout` gives it) for tidings.test.
fn sound_records() -> std::collections::HashMap<String, Vec<String>> {
    let public = "UjwV5xaKmckDWnqnx8/YoCyHLrwNoqpFXVwO/jwANaY=";
    [
        ("tidings.test", "v=spf1 ip4:192.0.2.0/24 ~all".to_string()),
        ("_dmarc.tidings.test", "v=DMARC1; p=none".to_string()),
        (
            "mail._domainkey.tidings.test",
            format!("v=DKIM1; k=ed25519; p={public}"),
        ),
    ]
    .into_iter()
    .map(|(name, txt)| (name.to_string(), vec![txt]))
    .collect()
}

/// Without a relay, the outbox folder must take files.
#[test]
fn an_outbox_folder_that_takes_no_files_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("outbox");
    std::fs::write(&blocked, "a file where the folder should be").unwrap();
    let out = doctor(
        dir.path(),
        &[("TIDINGS_OUTBOX_DIR", blocked.display().to_string())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("problem  ")
            && l.contains("outbox_dir")
            && l.contains("; fix: ")),
        "{stdout}"
    );
}
