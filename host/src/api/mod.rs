//! The HTTP API (v1, JSON). Handlers are thin: they authenticate, parse,
//! call into `jobs`, `plugin`, `executor` and the store, and answer with a
//! typed view (`views.rs`). Every error leaves through [`ApiError`] as
//! `{"error": {"code", "message"}}`. The files form layers: `error`,
//! `state`, `views` and `extract` at the bottom, the handlers of each area
//! over them, `openapi` (the document of the handlers) over those, and this
//! file, the router, on top.

mod calendars;
mod cluster;
mod digest;
mod error;
mod events;
mod extract;
mod jobs;
mod meta;
mod openapi;
mod plugins;
mod replays;
mod runs;
mod schedules;
mod secrets;
mod state;
mod status;
mod stream_slots;
mod tenants;
mod views;
mod workflows;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::routing::{delete, get, post, put};

pub use error::ApiError;
pub use replays::ReplayView;
pub use state::{AppParts, AppState};

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/", get(meta::dashboard))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/plugins", post(plugins::upload).get(plugins::list))
        .route("/v1/plugins/{name}", get(plugins::get).delete(plugins::delete))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route(
            "/v1/jobs/{id}",
            get(jobs::get).put(jobs::upsert).patch(jobs::patch).delete(jobs::delete),
        )
        .route("/v1/jobs/{id}/pause", post(jobs::pause))
        .route("/v1/jobs/{id}/resume", post(jobs::resume))
        .route("/v1/jobs/{id}/run", post(jobs::run_now))
        .route("/v1/jobs/{id}/fires", get(jobs::fires))
        .route("/v1/jobs/{id}/backfill", post(jobs::backfill))
        .route("/v1/workflows", post(workflows::create).get(workflows::list))
        .route(
            "/v1/workflows/{name}",
            get(workflows::get)
                .put(workflows::put)
                .patch(workflows::patch)
                .delete(workflows::delete),
        )
        .route("/v1/workflows/{name}/run", post(workflows::run_now))
        .route("/v1/workflow-runs", get(workflows::list_runs))
        .route("/v1/workflow-runs/{id}", get(workflows::get_run))
        .route("/v1/workflow-runs/{id}/cancel", post(workflows::cancel_run))
        .route("/v1/workflow-runs/{id}/retry", post(workflows::retry_run))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/logs", get(runs::logs))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/retry", post(runs::retry))
        .route("/v1/runs/{id}/replay", post(replays::replay))
        .route("/v1/runs/{id}/record", get(replays::record))
        .route("/v1/status", get(status::status))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhooks/secret", get(secrets::webhook_secret))
        .route("/v1/digest", put(digest::put).get(digest::get).delete(digest::delete))
        .route("/v1/digest/send", post(digest::send_now))
        .route("/v1/calendars", get(calendars::list))
        .route(
            "/v1/calendars/{name}",
            get(calendars::get).put(calendars::put).delete(calendars::delete),
        )
        .route("/metrics", get(status::metrics))
        .route("/v1/cluster", get(cluster::get))
        .route("/v1/scheduler/pause", post(status::pause))
        .route("/v1/scheduler/resume", post(status::resume))
        .route("/v1/schedules/preview", post(schedules::preview))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/tenants/{name}", get(tenants::get).patch(tenants::patch))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{name}",
            put(secrets::put).get(secrets::get).delete(secrets::delete),
        )
        .route(
            "/v1/tenants/{name}/tokens",
            post(tenants::create_token).get(tenants::list_tokens),
        )
        .route("/v1/tenants/{name}/tokens/{id}", delete(tenants::revoke_token))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            extract::limit_unauthenticated,
        ))
        .with_state(state)
}

/// Counts and times each answer of a matched route.
async fn observe(
    State(state): State<AppState>,
    route: MatchedPath,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics().http_request(
        route.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Any path the router does not know: 404 `route_not_found`.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("route_not_found", format!("no route for {}", uri.path()))
}

/// A known path with a method it does not take: 405 `method_not_allowed`.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
