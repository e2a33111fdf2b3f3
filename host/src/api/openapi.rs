//! `/openapi.json`: the OpenAPI 3.1 document of the API, generated (utoipa)
//! from the `#[utoipa::path]` attributes on the handlers and the types of
//! their bodies (`views.rs`, `error.rs`), so a route and its documentation
//! live side by side. This file depends on the handlers, never the reverse.
//! Every operation has an `operation_id` of the form `verb_noun`
//! (`get_job`, `list_runs`): client generators name their functions after
//! them, so they are unique and stable.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{
    calendars, cluster, digest, events, jobs, meta, plugins, replays, runs, schedules, secrets, status, tenants,
    workflows,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]);
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "sandcron", description = "Cron for sandboxed WebAssembly jobs: plugins, jobs, runs, workflows, tenants."),
    modifiers(&BearerAuth),
    paths(
        meta::healthz, meta::dashboard, openapi_json,
        plugins::upload, plugins::list, plugins::get, plugins::delete,
        jobs::create, jobs::list, jobs::get, jobs::upsert, jobs::patch,
        jobs::delete, jobs::pause, jobs::resume, jobs::run_now, jobs::fires, jobs::backfill,
        runs::list, runs::get, runs::logs, runs::cancel, runs::retry,
        replays::replay, replays::record,
        schedules::preview, status::status, status::pause, status::resume,
        status::metrics, cluster::get, events::stream,
        secrets::put, secrets::list, secrets::get, secrets::delete,
        secrets::webhook_secret,
        digest::put, digest::get, digest::delete, digest::send_now,
        calendars::put, calendars::list, calendars::get, calendars::delete,
        tenants::create, tenants::list, tenants::get, tenants::patch,
        tenants::create_token, tenants::list_tokens, tenants::revoke_token,
        workflows::create, workflows::list, workflows::get, workflows::put,
        workflows::patch, workflows::delete, workflows::run_now,
        workflows::list_runs, workflows::get_run, workflows::cancel_run, workflows::retry_run,
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "get_openapi",
    responses((status = 200, description = "this document", body = Object), (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = ErrorBody)),
    security(())
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
