//! `Application::build(settings)`: opens the database, binds the listener
//! (port 0 works, for tests), and starts the HTTP server, the mail workers and
//! the scheduler. Shutdown is a handle, not a global: `stop()` ends the server
//! and tells the workers to finish what is in flight.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::state::{AppState, SharedState};

/// Largest request body accepted (JSON and forms alike).
pub const BODY_LIMIT: usize = 16 * 1024;

pub struct Application {
    port: u16,
    server: Server,
    state: SharedState,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    inbound_port: Option<u16>,
}

/// Stops a running application from elsewhere (tests, signal handlers).
#[derive(Clone)]
pub struct StopHandle {
    server: ServerHandle,
    shutdown: watch::Sender<bool>,
}

impl StopHandle {
    /// Stops accepting requests and tells the workers to stop claiming work.
    pub async fn stop(&self, graceful: bool) {
        let _ = self.shutdown.send(true);
        self.server.stop(graceful).await;
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listen = settings.listen.clone();
        let state = AppState::open(settings).await?;
        let listener = TcpListener::bind(&listen)
            .map_err(|e| anyhow::anyhow!("setting listen: cannot bind {listen}: {e}"))?;
        let port = listener.local_addr()?.port();
        let server = http_server(state.clone(), listener)?;
        let (shutdown, rx) = watch::channel(false);
        let mut workers = vec![
            tokio::spawn(crate::workers::outbox::run(state.clone(), rx.clone())),
            tokio::spawn(crate::workers::delivery::run(state.clone(), rx.clone())),
        ];
        workers.push(tokio::spawn(housekeeping(state.clone(), rx.clone())));
        workers.push(tokio::spawn(digest_gauges(state.clone(), rx.clone())));
        let mut inbound_port = None;
        if let Some(listener) = crate::receiver::bind(&state).await? {
            inbound_port = Some(listener.local_addr()?.port());
            let receiver = crate::receiver::run(state.clone(), listener, rx.clone());
            workers.push(tokio::spawn(receiver));
        }
        workers.push(crate::scheduler::start(state.clone(), rx).await?);
        Ok(Self {
            port,
            server,
            state,
            shutdown,
            workers,
            inbound_port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SMTP/LMTP receiver's port, when `inbound_listen` is set.
    pub fn inbound_port(&self) -> Option<u16> {
        self.inbound_port
    }

    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            server: self.server.handle(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Serves until SIGINT/SIGTERM (actix handles both) or `stop()`, then lets
    /// the workers finish their in-flight sends.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        result
    }
}

/// Runs `task` every `period` (the first at once) until shutdown.
async fn every<F, Fut>(period: std::time::Duration, mut shutdown: watch::Receiver<bool>, task: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        task().await;
    }
}

/// Once a minute: forget rate-limit state of quiet addresses (the keyed
/// limiter otherwise grows with every address it has seen) and prune old
/// bookkeeping rows. Failures are logged; the loop goes on.
async fn housekeeping(state: SharedState, shutdown: watch::Receiver<bool>) {
    every(std::time::Duration::from_secs(60), shutdown, || async {
        if let Some(limiter) = &state.signup_limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        state.preferences_limiter.retain_recent();
        state.preferences_limiter.shrink_to_fit();
        let cutoff = crate::db::now() - chrono::Duration::days(7);
        if let Err(e) =
            crate::db::run(&state.pool, move |c| crate::db::jobs::prune(c, cutoff)).await
        {
            tracing::warn!(error = %e, "housekeeping failed");
        }
    })
    .await
}

/// Every few seconds, the newest digests' bounce and complaint figures
/// from the database onto /metrics (the pipe's included: `tidings inbound`
/// records them from a process of its own).
async fn digest_gauges(state: SharedState, shutdown: watch::Receiver<bool>) {
    every(std::time::Duration::from_secs(5), shutdown, || async {
        match crate::db::run(&state.pool, read_digest_figures).await {
            Ok(figures) => state.metrics.digests.set(&figures),
            Err(e) => tracing::debug!(error = %e, "digest gauges not refreshed"),
        }
    })
    .await
}

/// The figures of the newest digests that went to anyone, by id.
fn read_digest_figures(
    c: &mut crate::db::DbConnection,
) -> crate::db::QueryResult<Vec<(i64, crate::bounces::DigestBounces)>> {
    let mut figures = Vec::new();
    let shown = crate::metrics::DigestGauges::SHOWN;
    for (digest, progress) in crate::db::views::recent_digests(c, shown)? {
        if progress.total == 0 {
            continue; // a draft, a scheduled or an empty digest
        }
        let b = crate::bounces::digest_bounces(c, digest.id, progress.sent)?;
        figures.push((digest.id, b));
    }
    Ok(figures)
}

fn http_server(state: SharedState, listener: TcpListener) -> anyhow::Result<Server> {
    let prometheus = actix_web_prom::PrometheusMetricsBuilder::new("tidings")
        .registry(state.metrics.registry.clone())
        .endpoint("/metrics")
        .mask_unmatched_patterns("UNKNOWN")
        .build()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    let data = web::Data::from(state.clone());
    let body_guard = web::Data::new(crate::routes::body_deadline::BodyGuard::new(
        std::time::Duration::from_secs(state.settings.body_timeout_seconds.into()),
        crate::routes::body_deadline::MAX_SLOW_BODIES,
    ));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(crate::routes::web::security_headers())
            .wrap(middleware::Compat::new(TracingLogger::<
                crate::telemetry::RequestSpan,
            >::new()))
            .wrap(prometheus.clone())
            .wrap(middleware::from_fn(
                crate::routes::body_deadline::body_deadline,
            ))
            .wrap(middleware::from_fn(crate::routes::mount::mount))
            .app_data(data.clone())
            .app_data(body_guard.clone())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(web::JsonConfig::default().limit(BODY_LIMIT))
            .app_data(web::FormConfig::default().limit(BODY_LIMIT))
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                crate::routes::web::ApiError::BadRequest(e.to_string()).into()
            }))
            .configure(|cfg| crate::routes::configure(cfg, &state))
    })
    .listen(listener)?
    // The request head; the body has its own deadline (body_deadline).
    .client_request_timeout(std::time::Duration::from_secs(5))
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

/// `tidings serve`: the first start says where things are.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let state = app.state();
    let s = &state.settings;
    let admins = crate::db::run(&state.pool, crate::db::admins::count)
        .await
        .unwrap_or(0);
    let base = s.base_url.as_str().trim_end_matches('/');
    println!("Tidings is running on {} (port {})", s.listen, app.port());
    println!("  signup form:   {base}/");
    println!("  mail goes to:  {}", state.mailer.describe());
    println!("  database:      {}", s.database_label());
    println!("  admin console: {base}/admin");
    if admins == 0 {
        println!("  no admin yet:  TIDINGS_ADMIN_PASSWORD=… tidings admin create NAME");
    }
    println!("  API tokens:    tidings token create NAME");
    tracing::info!(port = app.port(), "serving");
    app.run_until_stopped().await?;
    Ok(())
}
