//! The app mounted at `base_url`'s path ([`crate::config::Settings::mount`]),
//! whatever the proxy in front does with it: a request whose path starts
//! with the mount point has it stripped before routing (a proxy that passes
//! the prefix through), one without it is routed as it is (a proxy that
//! strips the prefix, or none). On the way out, a `Location` the handlers
//! wrote app-relative (`/admin/login`) gets the mount point in front, so
//! handlers and error types never need to know where the app is mounted.
//! Pages get it as `root` in their templates; error pages, rendered without
//! the state, read it from [`current`].

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, LOCATION};
use actix_web::http::uri::{PathAndQuery, Uri};
use actix_web::middleware::Next;
use actix_web::web::Data;

use crate::state::AppState;

tokio::task_local! {
    static ROOT: String;
}

/// The mount point of the request being answered (`""` outside one).
pub fn current() -> String {
    ROOT.try_with(String::clone).unwrap_or_default()
}

/// Middleware: strips the mount point from the request path, and puts it
/// in front of app-relative redirects.
pub async fn mount(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let root = req
        .app_data::<Data<AppState>>()
        .map(|s| s.settings.mount().to_string())
        .unwrap_or_default();
    if !root.is_empty() {
        strip(&mut req, &root);
    }
    let mut res = ROOT.scope(root.clone(), next.call(req)).await?;
    if !root.is_empty() {
        prefix_location(&mut res, &root);
    }
    Ok(res)
}

/// `/newsletter/admin?x` → `/admin?x`, `/newsletter` → `/`; other paths
/// (`/newsletterish`) are left alone.
fn strip(req: &mut ServiceRequest, root: &str) {
    let Some(rest) = req.path().strip_prefix(root) else {
        return;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match req.query_string() {
        "" => path.to_string(),
        q => format!("{path}?{q}"),
    };
    let Ok(pq) = PathAndQuery::try_from(path_and_query) else {
        return;
    };
    let mut parts = req.head().uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    let Ok(uri) = Uri::from_parts(parts) else {
        return;
    };
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
}

fn prefix_location<B>(res: &mut ServiceResponse<B>, root: &str) {
    let headers = res.headers_mut();
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    // Absolute-path references only: not `//host` nor a full URL.
    if !location.starts_with('/') || location.starts_with("//") {
        return;
    }
    if let Ok(v) = HeaderValue::try_from(format!("{root}{location}")) {
        headers.insert(LOCATION, v);
    }
}
