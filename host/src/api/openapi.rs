//! `/openapi.json`: the OpenAPI 3.1 document of the API, generated (utoipa)
//! from the `#[utoipa::path]` attributes on the handlers, so a route and its
//! documentation live side by side.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// Every error answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable code (`invalid_field`, `job_not_found`, ...).
    code: String,
    /// Says which field or object and what is wrong.
    message: String,
}

/// A WebAssembly component's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct Component(Vec<u8>);

/// Answers any authenticated route may give.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// A malformed request: the message names the field.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorBody),
    /// No token, or one not accepted.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// The tenant is over its request rate (`rate_limited`, see
    /// `Retry-After`), or, without a valid token, the client's address is
    /// over its budget; or, where a run is queued, its queue is at its
    /// `queued_runs` quota (`queue_full`).
    #[response(status = 429)]
    RateLimited(#[to_schema] ErrorBody),
    /// `storage_unavailable`: the data volume failed with an I/O error;
    /// writes are refused until the daemon restarts into working storage.
    #[response(status = 503)]
    StorageUnavailable(#[to_schema] ErrorBody),
    /// `insufficient_storage`: the data volume is full; writes are refused
    /// until there is room again and the daemon has restarted.
    #[response(status = 507)]
    InsufficientStorage(#[to_schema] ErrorBody),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sandcron", description = "Cron for sandboxed WebAssembly jobs: plugins, jobs, runs, tenants."),
    modifiers(&BearerAuth),
    paths(
        super::healthz, super::dashboard, super::openapi_json,
        super::plugins::upload, super::plugins::list, super::plugins::get, super::plugins::delete,
        super::jobs::create, super::jobs::list, super::jobs::get, super::jobs::upsert, super::jobs::patch,
        super::jobs::delete, super::jobs::pause, super::jobs::resume, super::jobs::run_now,
        super::runs::list, super::runs::get, super::runs::logs, super::runs::cancel, super::runs::retry,
        super::schedules::preview, super::status::status, super::status::pause, super::status::resume,
        super::status::metrics, super::events::stream,
        super::secrets::put, super::secrets::list, super::secrets::get, super::secrets::delete,
        super::secrets::webhook_secret,
        super::digest::put, super::digest::get, super::digest::delete, super::digest::send_now,
        super::tenants::create, super::tenants::list, super::tenants::get, super::tenants::patch,
        super::tenants::create_token, super::tenants::list_tokens, super::tenants::revoke_token,
    ),
    components(schemas(ErrorBody, ErrorDetail, Component))
)]
pub struct ApiDoc;
