//! `sandcron tenant`: create, change and list tenants (admin token).

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::connection::Connection;
use super::print::out;
use crate::client::{Body, encode};

/// `sandcron tenant`'s subcommands.
#[derive(Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant; prints its first token (shown only this once).
    Create {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        limits: TenantLimits,
    },
    /// Change a tenant's quotas or HTTP cap.
    Set {
        /// Tenant name.
        name: String,
        #[command(flatten)]
        limits: TenantLimits,
    },
    /// List tenants.
    Ls,
}

/// A tenant's quotas and HTTP cap, as flags.
#[derive(Args)]
pub(super) struct TenantLimits {
    /// A quota, KEY=VALUE (repeatable): plugin_bytes, jobs, concurrent_runs,
    /// max_fuel, max_timeout, max_memory, kv_bytes, requests_per_second,
    /// queued_runs, run_bytes; VALUE `none` removes the limit.
    #[arg(long = "quota", value_name = "KEY=VALUE")]
    quotas: Vec<String>,
    /// A host pattern the tenant's jobs may reach (repeatable); caps the
    /// jobs' own http_allow.
    #[arg(long = "http-allow", value_name = "PATTERN")]
    http_allow: Vec<String>,
}

impl TenantLimits {
    /// The request fields these flags set.
    fn body(&self) -> anyhow::Result<serde_json::Map<String, Value>> {
        let mut body = serde_json::Map::new();
        if !self.quotas.is_empty() {
            let mut quotas = serde_json::Map::new();
            for pair in &self.quotas {
                let Some((key, value)) = pair.split_once('=') else {
                    bail!("--quota {pair:?}: expected KEY=VALUE");
                };
                let value = match value.trim() {
                    "none" | "null" => Value::Null,
                    text => text.parse::<u64>().map_or_else(|_| json!(text), |number| json!(number)),
                };
                quotas.insert(key.trim().to_string(), value);
            }
            body.insert("quotas".into(), Value::Object(quotas));
        }
        if !self.http_allow.is_empty() {
            body.insert("http_allow".into(), json!(self.http_allow));
        }
        Ok(body)
    }
}

/// Creates, changes or lists tenants.
pub(super) async fn tenant(command: TenantCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        TenantCommand::Create { name, limits } => {
            let mut body = limits.body()?;
            body.insert("name".into(), json!(name));
            let answer = connection.client().post("/v1/tenants", Value::Object(body)).await?;
            out!("created tenant {name}");
            out!(
                "token (shown only now): {}",
                answer["token"].as_str().unwrap_or_default()
            );
        }
        TenantCommand::Set { name, limits } => {
            let path = format!("/v1/tenants/{}", encode(&name));
            let body = Body::Json(Value::Object(limits.body()?));
            let answer = connection.client().call(Method::PATCH, &path, body).await?.json()?;
            out!("{}", serde_json::to_string_pretty(&answer)?);
        }
        TenantCommand::Ls => {
            let answer = connection.client().get("/v1/tenants").await?;
            connection.show(&answer, |answer| {
                out!("{:<32} CREATED", "NAME");
                for tenant in answer["tenants"].as_array().into_iter().flatten() {
                    out!(
                        "{:<32} {}",
                        tenant["name"].as_str().unwrap_or_default(),
                        tenant["created_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
