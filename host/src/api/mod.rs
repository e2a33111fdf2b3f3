//! The HTTP API (v1, JSON). Handlers are thin: they authenticate, parse,
//! call into `plugin`, `model`, `schedule` and `executor`, and shape the
//! answer. Every error leaves through [`ApiError`] as
//! `{"error": {"code", "message"}}`.

mod digest;
mod error;
mod events;
mod extract;
mod jobs;
mod openapi;
mod plugins;
mod runs;
mod schedules;
mod secrets;
mod status;
mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::routing::{delete, get, post, put};

use crate::auth::Auth;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::digest::Digests;
use crate::events::EventBus;
use crate::executor::Executor;
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::plugin::Plugins;
use crate::scheduler::Scheduler;
use crate::store::Store;
use crate::store::health::{Condition, StorageHealth};
use crate::tenancy::Tenants;
use crate::throttle::AddressBudgets;
use crate::vault::Vault;

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    storage: Arc<StorageHealth>,
    digests: Arc<Digests>,
    metrics: Arc<Metrics>,
    events: Arc<EventBus>,
    tenants: Arc<Tenants>,
    vault: Arc<Vault>,
    plugins: Arc<Plugins>,
    executor: Arc<Executor>,
    scheduler: Arc<Scheduler>,
    jobs: Arc<Jobs>,
    auth: Auth,
    /// Each client address's budget of requests without a valid token.
    unauthenticated: AddressBudgets,
    /// Each tenant's open event streams, within `max_event_streams`.
    streams: Arc<events::StreamSlots>,
    config: Config,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// Bundles the daemon's parts for the router.
    pub fn new(daemon: Daemon, auth: Auth, config: Config) -> AppState {
        AppState {
            inner: Arc::new(Shared {
                store: daemon.store,
                storage: daemon.storage,
                digests: daemon.digests,
                metrics: daemon.metrics,
                events: daemon.events,
                tenants: daemon.tenants,
                vault: daemon.vault,
                plugins: daemon.plugins,
                executor: daemon.executor,
                scheduler: daemon.scheduler,
                jobs: daemon.jobs,
                auth,
                unauthenticated: AddressBudgets::new(
                    config.http.unauthenticated_rate,
                    config.http.unauthenticated_burst,
                ),
                streams: Arc::new(events::StreamSlots::new(config.max_event_streams)),
                config,
                started_at: chrono::Utc::now(),
            }),
        }
    }

    fn scheduler(&self) -> &Arc<Scheduler> {
        &self.inner.scheduler
    }

    fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    fn storage(&self) -> &StorageHealth {
        &self.inner.storage
    }

    fn digests(&self) -> &Digests {
        &self.inner.digests
    }

    fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn events(&self) -> &Arc<EventBus> {
        &self.inner.events
    }

    fn tenants(&self) -> &Tenants {
        &self.inner.tenants
    }

    fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    fn plugins(&self) -> &Plugins {
        &self.inner.plugins
    }

    fn executor(&self) -> &Arc<Executor> {
        &self.inner.executor
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(dashboard))
        .route("/openapi.json", get(openapi_json))
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
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/logs", get(runs::logs))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/retry", post(runs::retry))
        .route("/v1/status", get(status::status))
        .route("/v1/events", get(events::stream))
        .route("/v1/webhooks/secret", get(secrets::webhook_secret))
        .route("/v1/digest", put(digest::put).get(digest::get).delete(digest::delete))
        .route("/v1/digest/send", post(digest::send_now))
        .route("/metrics", get(status::metrics))
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

/// The web dashboard: one page, no outside resources (it works offline);
/// it asks for a token and talks to the API like any client.
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    responses((status = 200, description = "the dashboard page", body = String, content_type = "text/html"), (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = openapi::ErrorBody)),
    security(())
)]
async fn dashboard() -> impl axum::response::IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard.html"),
    )
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "this document", body = Object), (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = openapi::ErrorBody)),
    security(())
)]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
}

/// `GET /healthz`: 200 while the daemon can take writes; 503 once its
/// storage failed (a full disk, an I/O error), saying why and since when,
/// with the error code writes get meanwhile.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    responses(
        (status = 200, description = "alive, and the storage takes writes", body = Object),
        (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = openapi::ErrorBody),
        (status = 503, description = "the storage is failing: `storage` says why; writes are refused until the daemon restarts into working storage", body = Object),
    ),
    security(())
)]
async fn healthz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use serde_json::json;
    let version = env!("CARGO_PKG_VERSION");
    let snapshot = state.storage().snapshot();
    let (failure, recovered_at) = match &snapshot.condition {
        Condition::Healthy => {
            return Ok(axum::Json(
                json!({"status": "ok", "version": version, "storage": {"state": "ok"}}),
            ));
        }
        Condition::Failing(failure) => (failure, None),
        Condition::Recovered { failure, at } => (failure, Some(at)),
    };
    let errors = json!({"no_space": snapshot.errors[0], "io": snapshot.errors[1]});
    let mut storage = json!({
        "state": if recovered_at.is_some() { "recovered" } else { "failing" },
        "fault": failure.fault.as_str(),
        "reason": failure.reason,
        "since": failure.since,
        "errors": errors,
    });
    let message = match recovered_at {
        None => format!(
            "storage is failing since {}: {}; writes are refused until it can take them again",
            failure.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            failure.reason
        ),
        Some(at) => {
            storage["recovered_at"] = json!(at);
            "storage can take writes again; the daemon is restarting to reopen the database".to_string()
        }
    };
    let status = if recovered_at.is_some() {
        "restarting"
    } else {
        "failing"
    };
    Err(ApiError::storage_unhealthy(
        failure.fault,
        message,
        json!({"status": status, "version": version, "storage": storage}),
    ))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("route_not_found", format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
