//! A reverse proxy a test puts in front of the app, the way a deployment
//! under a path does: it answers only under `prefix` (anything else is its
//! own 404, as a site that hosts other things there would answer) and
//! forwards to the app either with the prefix stripped (nginx's
//! `proxy_pass http://app/;`) or passed through as it came. Status, headers
//! (Location, Set-Cookie) and bodies go back untouched, so whatever the app
//! gets wrong about where it lives shows.

use std::sync::{Arc, OnceLock};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    Strip,
    Keep,
}

pub struct HttpProxy {
    port: u16,
    target: Arc<OnceLock<String>>,
    handle: actix_web::dev::ServerHandle,
}

struct Route {
    prefix: String,
    mode: Prefix,
    target: Arc<OnceLock<String>>,
    client: reqwest::Client,
}

impl HttpProxy {
    /// Listens on a free port; forwards once [`HttpProxy::forward_to`] is set
    /// (the app's address is known only after it started, and it needs the
    /// proxy's address in its base_url first).
    pub fn start(prefix: &str, mode: Prefix) -> HttpProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let target = Arc::new(OnceLock::new());
        let route = web::Data::new(Route {
            prefix: prefix.to_string(),
            mode,
            target: target.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(route.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(forward))
        })
        .workers(1)
        .listen(listener)
        .expect("proxy listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        HttpProxy {
            port,
            target,
            handle,
        }
    }

    /// The public origin, e.g. `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn forward_to(&self, app_address: &str) {
        let _ = self.target.set(app_address.to_string());
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

async fn forward(req: HttpRequest, body: web::Bytes, route: web::Data<Route>) -> HttpResponse {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Some(rest) = path_and_query.strip_prefix(&route.prefix) else {
        return HttpResponse::NotFound().body("proxy: not under the prefix");
    };
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return HttpResponse::NotFound().body("proxy: not under the prefix");
    }
    let upstream_path = match route.mode {
        Prefix::Keep => path_and_query.to_string(),
        Prefix::Strip if rest.starts_with('/') => rest.to_string(),
        Prefix::Strip => format!("/{rest}"),
    };
    let Some(target) = route.target.get() else {
        return HttpResponse::BadGateway().body("proxy: no upstream yet");
    };
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).expect("method");
    let mut upstream = route
        .client
        .request(method, format!("{target}{upstream_path}"));
    for (name, value) in req.headers() {
        if name.as_str() != "host" && name.as_str() != "content-length" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let res = match upstream.body(body.to_vec()).send().await {
        Ok(res) => res,
        Err(e) => return HttpResponse::BadGateway().body(format!("proxy: {e}")),
    };
    let status = actix_web::http::StatusCode::from_u16(res.status().as_u16()).expect("status");
    let mut out = HttpResponse::build(status);
    for (name, value) in res.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out.append_header((name.as_str(), value.as_bytes()));
        }
    }
    out.body(res.bytes().await.unwrap_or_default())
}
