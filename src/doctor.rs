//! `tidings doctor`: the settings checked for the mistakes that otherwise
//! show only as mail that never arrives or links that lead nowhere, then
//! the database and the relay tried for real. One line per finding, with
//! how to fix it; any problem makes the command exit 1.
//! Where DNS answers, the sending domain's SPF and DMARC records and the
//! DKIM selector's key (compared with `dkim_private_key_file`'s) are read;
//! where it does not, that is said and is not a problem.

use std::collections::BTreeMap;

use crate::config::{DatabaseUrl, Settings, SmtpTls};

/// One thing checked: fine, or a problem and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok(String),
    Problem { what: String, fix: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok(what) => write!(f, "ok       {what}"),
            Self::Problem { what, fix } => write!(f, "problem  {what}; fix: {fix}"),
        }
    }
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::Problem {
        what: what.into(),
        fix: fix.into(),
    }
}

/// Every check, settings first, then what needs the network.
pub async fn examine(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    dns_server: Option<std::net::SocketAddr>,
) -> Vec<Finding> {
    let mut findings = settings_checks(settings);
    findings.extend(crate::config::unknown_env_vars(env).into_iter().map(|w| {
        problem(
            w,
            "remove it, or spell it as a setting of the README's table",
        )
    }));
    findings.push(templates(settings));
    findings.push(database(settings).await);
    findings.push(relay(settings).await);
    findings.extend(dns(settings, dns_server).await);
    findings
}

/// What a TXT lookup found.
enum Txt {
    Records(Vec<String>),
    Missing,
    Unreachable(String),
}

async fn txt(resolver: &hickory_resolver::TokioResolver, name: &str) -> Txt {
    match resolver.txt_lookup(format!("{name}.")).await {
        Ok(found) => Txt::Records(
            found
                .iter()
                .map(|r| {
                    r.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>()
                })
                .collect(),
        ),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Txt::Missing,
        Err(e) => Txt::Unreachable(e.to_string()),
    }
}

/// The system's resolver, or the one `--dns` names.
fn resolver(
    server: Option<std::net::SocketAddr>,
) -> Result<hickory_resolver::TokioResolver, String> {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use hickory_resolver::name_server::TokioConnectionProvider;
    use hickory_resolver::proto::xfer::Protocol;
    let mut opts = ResolverOpts::default();
    opts.timeout = std::time::Duration::from_secs(3);
    opts.attempts = 1;
    let builder = match server {
        Some(addr) => {
            let mut config = ResolverConfig::new();
            config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            hickory_resolver::Resolver::builder_with_config(
                config,
                TokioConnectionProvider::default(),
            )
        }
        None => hickory_resolver::Resolver::builder_tokio().map_err(|e| e.to_string())?,
    };
    Ok(builder.with_options(opts).build())
}

/// SPF and DMARC of mail_from's domain, and the DKIM selector's key.
async fn dns(s: &Settings, server: Option<std::net::SocketAddr>) -> Vec<Finding> {
    let domain = s.mail_from.email.domain().to_ascii_lowercase();
    if domain == "localhost" || domain.ends_with(".localhost") || s.smtp_url.is_none() {
        return Vec::new();
    }
    let resolver = match resolver(server) {
        Ok(r) => r,
        Err(e) => return vec![Finding::Ok(format!("DNS not checked: {e}"))],
    };
    let spf = match txt(&resolver, &domain).await {
        Txt::Unreachable(e) => {
            return vec![Finding::Ok(format!(
                "DNS not reachable ({e}): SPF, DKIM and DMARC not checked"
            ))]
        }
        Txt::Records(r) if r.iter().any(|t| t.starts_with("v=spf1")) => {
            Finding::Ok(format!("SPF record at {domain}"))
        }
        _ => problem(
            format!("no SPF record at {domain}"),
            format!("publish TXT \"v=spf1 include:<your relay's domain> ~all\" at {domain}"),
        ),
    };
    let dmarc_name = format!("_dmarc.{domain}");
    let dmarc = match txt(&resolver, &dmarc_name).await {
        Txt::Records(r) if r.iter().any(|t| t.starts_with("v=DMARC1")) => {
            Finding::Ok(format!("DMARC record at {dmarc_name}"))
        }
        _ => problem(
            format!("no DMARC record at {dmarc_name}"),
            format!("publish TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{domain}\" at {dmarc_name}"),
        ),
    };
    let mut out = vec![spf, dmarc];
    if let Some(dkim) = &s.dkim {
        out.push(dkim_record(&resolver, dkim).await);
    }
    out
}

/// The selector's record must carry the key the emails are signed with.
async fn dkim_record(
    resolver: &hickory_resolver::TokioResolver,
    dkim: &crate::config::Dkim,
) -> Finding {
    let name = format!("{}._domainkey.{}", dkim.selector, dkim.domain);
    let key_in = |record: &String| {
        record
            .split(';')
            .filter_map(|tag| tag.trim().strip_prefix("p="))
            .any(|p| p.split_whitespace().collect::<String>() == dkim.public_key)
    };
    let fix = format!("publish TXT \"v=DKIM1; p={}\" at {name}", dkim.public_key);
    match txt(resolver, &name).await {
        Txt::Records(r) if r.iter().any(key_in) => {
            Finding::Ok(format!("DKIM key at {name} matches dkim_private_key_file"))
        }
        Txt::Records(_) => problem(
            format!("the DKIM record at {name} is not dkim_private_key_file's key"),
            fix,
        ),
        Txt::Missing => problem(format!("no DKIM record at {name}"), fix),
        Txt::Unreachable(e) => Finding::Ok(format!("DKIM record at {name} not checked: {e}")),
    }
}

/// The sender, DKIM alignment, plaintext logins and base_url against listen.
fn settings_checks(s: &Settings) -> Vec<Finding> {
    let sender = s.mail_from.email.domain().to_ascii_lowercase();
    let mut out = Vec::new();
    let local_sender = sender == "localhost" || sender.ends_with(".localhost");
    out.push(match (&s.smtp_url, local_sender) {
        (Some(_), true) => problem(
            format!("mail_from is at {sender}, which no receiving server accepts mail from"),
            "set mail_from to an address at your own domain, e.g. News <news@news.example>",
        ),
        _ => Finding::Ok(format!("mail_from is at {sender}")),
    });
    if let Some(dkim) = &s.dkim {
        let d = dkim.domain.to_ascii_lowercase();
        let aligned = sender == d || sender.ends_with(&format!(".{d}"));
        out.push(match aligned {
            true => Finding::Ok(format!("DKIM signs for {d}, aligned with mail_from")),
            false => problem(
                format!("dkim_domain {d} is not mail_from's domain {sender}: DMARC will fail"),
                format!("sign for {sender} (dkim_domain = \"{sender}\") or send from {d}"),
            ),
        });
    }
    if let Some(smtp) = &s.smtp_url {
        let loopback = smtp.host == "localhost"
            || smtp
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if smtp.tls == SmtpTls::None && smtp.user.is_some() && !loopback {
            out.push(problem(
                format!(
                    "smtp_url sends its password to {} unencrypted (tls=none)",
                    smtp.host
                ),
                "use smtps:// or ?tls=required",
            ));
        }
    }
    out.push(base_url_and_listen(s));
    out
}

/// A base_url on this machine whose port is not the one listened on leads
/// every link to nothing.
fn base_url_and_listen(s: &Settings) -> Finding {
    let local = matches!(
        s.base_url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]")
    );
    let listen_port = s
        .listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    match (local, s.base_url.port_or_known_default(), listen_port) {
        (true, Some(b), Some(l)) if l != 0 && b != l => problem(
            format!(
                "base_url {} points at port {b}, but listen is {}",
                s.base_url, s.listen
            ),
            "set base_url to the public URL (or leave it unset to follow listen)",
        ),
        _ => Finding::Ok(format!("links go to {}", s.base_url)),
    }
}

fn templates(s: &Settings) -> Finding {
    match crate::mail::templates::environment(s) {
        Ok(_) => Finding::Ok("templates compile".into()),
        Err(e) => problem(format!("templates: {e:#}"), "fix the template named"),
    }
}

async fn database(s: &Settings) -> Finding {
    if let DatabaseUrl::Sqlite(path) = &s.database_url {
        if !path.exists() {
            return problem(
                format!("no database at {}", s.database_label()),
                "run where it is, point --config or TIDINGS_DATABASE_URL at it, or tidings migrate",
            );
        }
    }
    let url = s.database_url.clone();
    let reached = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let pool = crate::db::connect(&url)?;
        let mut conn = pool.get()?;
        crate::db::faults::probe_writable(&mut conn)?;
        Ok(())
    })
    .await;
    match reached {
        Ok(Ok(())) => Finding::Ok(format!("database {} takes writes", s.database_label())),
        Ok(Err(e)) => problem(
            format!("database {}: {e:#}", s.database_label()),
            "check database_url, that the server is up, and run tidings migrate",
        ),
        Err(e) => problem(format!("database check failed: {e}"), "run it again"),
    }
}

/// The relay, tried as a send would: connect, EHLO, STARTTLS, login.
async fn relay(s: &Settings) -> Finding {
    let mailer = match crate::mail::Mailer::from_settings(s) {
        Ok(m) => m,
        Err(e) => return problem(format!("{e:#}"), "fix the setting named"),
    };
    match mailer.probe().await {
        Ok(how) => Finding::Ok(format!("mail: {how}")),
        Err(e) if s.smtp_url.is_none() => problem(
            format!("mail: {e}"),
            "make outbox_dir writable for Tidings, or set another outbox_dir",
        ),
        Err(e) => problem(
            format!("mail: {e}"),
            "check smtp_url's host, port and login, and smtp_ca_file for a private CA",
        ),
    }
}
