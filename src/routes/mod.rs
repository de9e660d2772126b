//! The route table: every path and method the server answers, in one place
//! ([`configure`]). The handlers live in a file per resource: `public/`
//! serves readers (pages by default, JSON when asked), `api/` serves ops
//! (Bearer tokens, JSON only), `admin/` is the console (session cookie,
//! server-rendered pages), `health.rs` the probes. What they share
//! (extractors, the error type of each surface, the JSON bodies) is in
//! [`web`]; handler files import from there, never from each other.
//!
//! Paths added with `.route()` on a scope get a resource each, guarded by
//! the method: an unknown method there falls through to the scope's default
//! (a 404), where a `web::resource` with several routes answers 405.
//!
//! The OpenAPI document ([`ApiDoc`], served at GET /api/openapi.json) is
//! derived from the handlers: each has a `#[utoipa::path]` saying its
//! parameters, body and answers, and is named once in `ApiDoc`'s `paths`,
//! in the same order as the table. A new route is one line here, one line
//! there; the `openapi` test fails when a route of the table is missing.

pub mod admin;
pub mod api;
pub mod body_deadline;
pub mod health;
pub mod mount;
pub mod public;
pub mod web;
pub mod webhooks;

use actix_web::web::{delete, get, post, resource, scope, to, ServiceConfig};
use actix_web::HttpResponse;

use crate::state::SharedState;
use web::{AdminError, ApiError};

pub fn configure(cfg: &mut ServiceConfig, state: &SharedState) {
    use admin::{articles as a_articles, auth, dashboard, digests as a_digests, drafts};
    use admin::{bounces as a_bounces, settings, subscribers as a_subscribers};
    use api::{articles, bounces, digests, stats, subscribers};

    cfg.route("/health", get().to(health::health))
        .route("/ready", get().to(health::ready));

    public_routes(cfg, state);

    cfg.service(
        scope("/api")
            .route("/subscribers", get().to(subscribers::list))
            .route("/subscribers/{id}", get().to(subscribers::show))
            .route("/subscribers/{id}", delete().to(subscribers::erase))
            .route("/subscribers/{id}/export", get().to(subscribers::export))
            .route("/articles", post().to(articles::create))
            .route("/articles", get().to(articles::list))
            .route("/digests", post().to(digests::create))
            .route("/digests", get().to(digests::list))
            .route("/digests/{id}", get().to(digests::show))
            .route("/digests/{id}", actix_web::web::patch().to(digests::patch))
            .route("/digests/{id}/preview", get().to(digests::preview))
            .route("/digests/{id}/test", post().to(digests::test))
            .route("/digests/{id}/send", post().to(digests::send))
            .route("/digests/{id}/{action}", post().to(digests::control))
            .route("/stats", get().to(stats::show))
            .route("/bounces", get().to(bounces::list))
            .route("/openapi.json", get().to(openapi_json))
            .default_service(to(api_not_found)),
    );

    cfg.service(
        scope("/admin")
            .route("", get().to(dashboard::show))
            .route("/", get().to(dashboard::show))
            .route("/console.js", get().to(admin::script))
            .route("/login", get().to(auth::login_form))
            .route("/login", post().to(auth::login))
            .route("/logout", post().to(auth::logout))
            .route("/subscribers", get().to(a_subscribers::list))
            .route("/subscribers/{id}", get().to(a_subscribers::show))
            .route("/subscribers/{id}/erase", post().to(a_subscribers::erase))
            .route("/bounces", get().to(a_bounces::list))
            .route("/articles", get().to(a_articles::list))
            .route("/articles", post().to(a_articles::add))
            .route("/digests", get().to(a_digests::list))
            .route("/digests/send", post().to(a_digests::send_now))
            .route("/digests/progress", get().to(a_digests::progress))
            .route("/digests/{id}", get().to(drafts::show))
            .route("/digests/{id}/preview", get().to(drafts::frame))
            .route("/digests/{id}/edit", post().to(drafts::edit))
            .route("/digests/{id}/test", post().to(drafts::test))
            .route("/digests/{id}/send", post().to(drafts::send))
            .route("/digests/{id}/{action}", post().to(a_digests::control))
            .route("/settings", get().to(settings::show))
            .default_service(to(admin_not_found)),
    );
}

/// The readers' and the site's routes: the form, confirmation,
/// unsubscribe, feedback, preferences, the archive and the webhooks.
fn public_routes(cfg: &mut ServiceConfig, state: &SharedState) {
    use public::{archive, confirm, feedback, preferences, signup, unsubscribe};

    cfg.route("/", get().to(signup::form))
        .service(
            resource("/subscriptions")
                .wrap(public::signup_cors(&state.settings.cors_origins))
                .route(post().to(signup::subscribe)),
        )
        .service(
            resource("/subscriptions/confirm")
                .route(get().to(confirm::show))
                .route(post().to(confirm::confirm)),
        )
        .route("/webhooks/{provider}", post().to(webhooks::receive))
        .service(
            resource("/unsubscribe")
                .route(get().to(unsubscribe::show))
                .route(post().to(unsubscribe::unsubscribe)),
        )
        .service(
            resource("/feedback")
                .wrap(public::feedback_cors(&state.settings.cors_origins))
                .route(get().to(feedback::show))
                .route(post().to(feedback::vote)),
        )
        .route("/feedback.js", get().to(feedback::script))
        .route("/preferences", get().to(preferences::show))
        .route("/preferences", post().to(preferences::update))
        .route("/archive", get().to(archive::list))
        .route("/archive/feed.xml", get().to(archive::feed))
        .route("/archive/{id}", get().to(archive::show));
}

/// The HTTP API as OpenAPI 3.1: one `paths` line per route of the table
/// above that answers programs (the console's pages are left out).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tidings",
        description = "Self-hosted newsletter: double opt-in signups, consent records, digests. \
            Ops routes need `Authorization: Bearer <token>` (tidings token create); \
            errors are `{\"error\": …, \"field\"?: …}`."
    ),
    paths(
        health::health,
        health::ready,
        public::signup::form,
        public::signup::subscribe,
        public::confirm::show,
        public::confirm::confirm,
        public::unsubscribe::show,
        public::unsubscribe::unsubscribe,
        public::feedback::show,
        public::feedback::vote,
        public::feedback::script,
        public::preferences::show,
        public::preferences::update,
        public::archive::list,
        public::archive::feed,
        public::archive::show,
        api::subscribers::list,
        api::subscribers::show,
        api::subscribers::erase,
        api::subscribers::export,
        api::articles::create,
        api::articles::list,
        api::digests::create,
        api::digests::list,
        api::digests::show,
        api::digests::patch,
        api::digests::preview,
        api::digests::test,
        api::digests::send,
        api::digests::control,
        api::stats::show,
        api::bounces::list,
        webhooks::receive,
        openapi_json,
    ),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

/// The `bearer` scheme the ops routes name.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// GET /api/openapi.json: the document, with this instance's base_url as
/// its server (no token needed: it holds no data).
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "ops",
    responses((status = 200, description = "this document", body = Object)))]
async fn openapi_json(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
    let base = state.settings.base_url.as_str().trim_end_matches('/');
    doc.servers = Some(vec![utoipa::openapi::Server::new(base)]);
    HttpResponse::Ok().json(doc)
}

/// Anything under `/api` that no route above takes.
async fn api_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such API route".into()))
}

/// Anything under `/admin` that no route above takes.
async fn admin_not_found() -> Result<HttpResponse, AdminError> {
    Err(AdminError::NotFound)
}
