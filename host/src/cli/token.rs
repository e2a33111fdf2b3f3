//! `sandcron token`: create, list and revoke a tenant's API tokens (admin
//! token).

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::connection::Connection;
use super::print::out;
use crate::client::{Body, encode};

/// `sandcron token`'s subcommands.
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

/// Creates, lists or revokes a tenant's tokens.
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
