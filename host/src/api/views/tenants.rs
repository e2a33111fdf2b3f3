//! Views of tenants and what they hold beside jobs: quotas, tokens,
//! secrets, e-mail digests.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::tenant::{Calendar, Summary};
use crate::model::{Quotas, SecretRecord, Tenant, Token};
use crate::timing::DateSpan;

/// What a tenant may use; null is no limit beyond the daemon's own.
/// Sizes are bytes; `PATCH` also takes `"64MiB"`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasView {
    plugin_bytes: Option<u64>,
    jobs: Option<u64>,
    concurrent_runs: Option<u32>,
    max_fuel: Option<u64>,
    /// The longest timeout a job may ask for (`"30s"`).
    max_timeout: Option<String>,
    max_memory: Option<u64>,
    kv_bytes: Option<u64>,
    requests_per_second: Option<u32>,
    queued_runs: Option<u64>,
    run_bytes: Option<u64>,
}

impl From<&Quotas> for QuotasView {
    fn from(quotas: &Quotas) -> QuotasView {
        QuotasView {
            plugin_bytes: quotas.plugin_bytes,
            jobs: quotas.jobs,
            concurrent_runs: quotas.concurrent_runs,
            max_fuel: quotas.max_fuel,
            max_timeout: quotas
                .max_timeout_ms
                .map(|ms| crate::units::format_duration(std::time::Duration::from_millis(ms))),
            max_memory: quotas.max_memory,
            kv_bytes: quotas.kv_bytes,
            requests_per_second: quotas.requests_per_second,
            queued_runs: quotas.queued_runs,
            run_bytes: quotas.run_bytes,
        }
    }
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    name: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    quotas: QuotasView,
    /// Host patterns its jobs' `http_allow` must fall within; null: no cap.
    http_allow: Option<Vec<String>>,
}

impl From<&Tenant> for TenantView {
    fn from(tenant: &Tenant) -> TenantView {
        TenantView {
            name: tenant.name.clone(),
            created_at: tenant.created_at,
            quotas: QuotasView::from(&tenant.quotas),
            http_allow: tenant.http_allow.clone(),
        }
    }
}

/// What a tenant uses now, against its quotas.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantUsageView {
    pub plugin_bytes: u64,
    pub jobs: usize,
    pub kv_bytes: u64,
    pub secrets: usize,
    pub queued_runs: usize,
    pub run_bytes: u64,
}

/// `GET /v1/tenants/{name}`: the tenant and what it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantWithUsageView {
    #[serde(flatten)]
    tenant: TenantView,
    usage: TenantUsageView,
}

impl TenantWithUsageView {
    /// `tenant` using `usage`.
    pub fn new(tenant: &Tenant, usage: TenantUsageView) -> TenantWithUsageView {
        TenantWithUsageView {
            tenant: TenantView::from(tenant),
            usage,
        }
    }
}

/// `GET /v1/tenants`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    tenants: Vec<TenantView>,
}

impl TenantList {
    /// The tenants, in the order given.
    pub fn new(tenants: &[Tenant]) -> TenantList {
        TenantList {
            tenants: tenants.iter().map(TenantView::from).collect(),
        }
    }
}

/// `POST /v1/tenants`: the tenant and its first token, whose secret is
/// shown here only.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTenantView {
    tenant: TenantView,
    /// The token's secret.
    token: String,
    token_id: String,
}

impl NewTenantView {
    /// `tenant` with its first token and that token's secret.
    pub fn new(tenant: &Tenant, token: &Token, secret: String) -> NewTenantView {
        NewTenantView {
            tenant: TenantView::from(tenant),
            token: secret,
            token_id: token.id.clone(),
        }
    }
}

/// A tenant's API token: never its hash, nor (but once) its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// To list and revoke it by.
    id: String,
    tenant: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    /// When it was revoked; a revoked token authenticates nothing.
    #[schema(value_type = Option<String>, format = DateTime)]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<&Token> for TokenView {
    fn from(token: &Token) -> TokenView {
        TokenView {
            id: token.id.clone(),
            tenant: token.tenant.clone(),
            created_at: token.created_at,
            revoked_at: token.revoked_at,
        }
    }
}

/// `POST /v1/tenants/{name}/tokens`: the new token with its secret, shown
/// here only.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenView {
    #[serde(flatten)]
    token: TokenView,
    /// The token's secret.
    #[serde(rename = "token")]
    secret: String,
}

impl NewTokenView {
    /// `token` and its secret.
    pub fn new(token: &Token, secret: String) -> NewTokenView {
        NewTokenView {
            token: TokenView::from(token),
            secret,
        }
    }
}

/// `GET /v1/tenants/{name}/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

impl TokenList {
    /// The tokens, in the order given.
    pub fn new(tokens: &[Token]) -> TokenList {
        TokenList {
            tokens: tokens.iter().map(TokenView::from).collect(),
        }
    }
}

/// A secret: its name and dates, never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    name: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
}

impl From<&SecretRecord> for SecretView {
    fn from(record: &SecretRecord) -> SecretView {
        SecretView {
            name: record.name.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// `GET /v1/secrets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretList {
    secrets: Vec<SecretView>,
}

impl SecretList {
    /// The secrets, in the order given.
    pub fn new(records: &[SecretRecord]) -> SecretList {
        SecretList {
            secrets: records.iter().map(SecretView::from).collect(),
        }
    }
}

/// `GET /v1/webhooks/secret`: how the tenant's webhook deliveries are signed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretView {
    /// The HMAC key.
    pub secret: String,
    /// The header carrying the signature.
    pub signature_header: String,
    /// The header carrying the timestamp signed with the body.
    pub timestamp_header: String,
    /// How the signature is made.
    pub scheme: String,
}

/// A tenant's e-mail digest.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestView {
    /// A cron line ...
    cron: String,
    /// ... in this IANA zone.
    timezone: String,
    /// The addresses it goes to.
    to: Vec<String>,
    /// The fire the last digest was sent for.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_sent_at: Option<DateTime<Utc>>,
    /// The next fire.
    #[schema(value_type = Option<String>, format = DateTime)]
    next_at: Option<DateTime<Utc>>,
}

impl From<&Summary> for DigestView {
    fn from(digest: &Summary) -> DigestView {
        DigestView {
            cron: digest.cron.clone(),
            timezone: digest.timezone.clone(),
            to: digest.to.clone(),
            last_sent_at: digest.last_sent_at,
            next_at: digest.next_fire(),
        }
    }
}

/// `POST /v1/digest/send`: who got the digest of which runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestSentView {
    pub sent_to: Vec<String>,
    /// The runs finished from here ...
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    /// ... to here.
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
}

/// A calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    /// Its name.
    name: String,
    /// Its dates and ranges.
    dates: Vec<String>,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// When it was last set.
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
    /// The names of the jobs whose schedules exclude it.
    used_by: Vec<String>,
}

/// `GET /v1/calendars`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarList {
    /// The tenant's calendars, by name.
    pub calendars: Vec<CalendarView>,
}

impl CalendarView {
    /// The view of `calendar`, called `name`, excluded by the jobs `used_by`.
    pub fn new(name: &str, calendar: &Calendar, used_by: Vec<String>) -> CalendarView {
        CalendarView {
            name: name.to_string(),
            dates: calendar.dates.iter().map(DateSpan::text).collect(),
            description: calendar.description.clone(),
            updated_at: calendar.updated_at,
            used_by,
        }
    }
}
