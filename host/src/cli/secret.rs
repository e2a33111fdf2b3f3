//! `sandcron secret`: set, list and delete the tenant's secrets (values
//! are never shown).

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::connection::Connection;
use super::print::out;
use crate::client::{Body, encode};

/// `sandcron secret`'s subcommands.
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

/// Sets, lists or deletes the tenant's secrets.
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
