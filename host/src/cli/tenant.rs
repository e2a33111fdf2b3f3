//! `sandcron tenant`, `token` and `secret`: tenants, their tokens and
//! their secrets.

use super::*;

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

#[derive(Subcommand)]
pub(super) enum SecretCommand {
    /// Set NAME to the value read from standard input (or --value).
    Set {
        /// Secret name.
        name: String,
        /// The value (it would stay in your shell history; prefer stdin).
        #[arg(long)]
        value: Option<String>,
    },
    /// List secret names and dates.
    Ls,
    /// Delete a secret.
    Rm {
        /// Secret name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token for TENANT; prints it (shown only this once).
    Create {
        /// Tenant name.
        tenant: String,
    },
    /// List a tenant's tokens (ids and dates; secrets are never shown again).
    Ls {
        /// Tenant name.
        tenant: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// Tenant name.
        tenant: String,
        /// Token id (from `token ls`).
        id: String,
    },
}

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

pub(super) async fn token(command: TokenCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { tenant } => {
            let path = format!("/v1/tenants/{}/tokens", encode(&tenant));
            let answer = connection.client().post(&path, json!({})).await?;
            out!("token {} for {tenant}", answer["id"].as_str().unwrap_or_default());
            out!(
                "token (shown only now): {}",
                answer["token"].as_str().unwrap_or_default()
            );
        }
        TokenCommand::Ls { tenant } => {
            let answer = connection
                .client()
                .get(&format!("/v1/tenants/{}/tokens", encode(&tenant)))
                .await?;
            connection.show(&answer, |answer| {
                out!("{:<28} {:<32} REVOKED", "ID", "CREATED");
                for token in answer["tokens"].as_array().into_iter().flatten() {
                    out!(
                        "{:<28} {:<32} {}",
                        token["id"].as_str().unwrap_or_default(),
                        token["created_at"].as_str().unwrap_or_default(),
                        token["revoked_at"].as_str().unwrap_or("-")
                    );
                }
            });
        }
        TokenCommand::Revoke { tenant, id } => {
            let path = format!("/v1/tenants/{}/tokens/{}", encode(&tenant), encode(&id));
            connection.client().call(Method::DELETE, &path, Body::None).await?;
            out!("revoked token {id} of {tenant}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn secret(command: SecretCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Set { name, value } => {
            let value = match value {
                Some(value) => value,
                None => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                        .context("reading the secret from standard input")?;
                    text.strip_suffix('\n')
                        .map(|text| text.strip_suffix('\r').unwrap_or(text))
                        .unwrap_or(&text)
                        .to_string()
                }
            };
            let path = format!("/v1/secrets/{}", encode(&name));
            connection
                .client()
                .call(Method::PUT, &path, Body::Json(json!({"value": value})))
                .await?;
            out!("set secret {name}");
        }
        SecretCommand::Ls => {
            let answer = connection.client().get("/v1/secrets").await?;
            connection.show(&answer, |answer| {
                out!("{:<40} {:<32} UPDATED", "NAME", "CREATED");
                for secret in answer["secrets"].as_array().into_iter().flatten() {
                    out!(
                        "{:<40} {:<32} {}",
                        secret["name"].as_str().unwrap_or_default(),
                        secret["created_at"].as_str().unwrap_or_default(),
                        secret["updated_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        SecretCommand::Rm { name } => {
            let path = format!("/v1/secrets/{}", encode(&name));
            connection.client().call(Method::DELETE, &path, Body::None).await?;
            out!("deleted secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
