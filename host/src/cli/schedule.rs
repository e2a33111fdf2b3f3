//! `sandcron schedule preview`: a schedule's next fires, as the daemon
//! computes them.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::connection::Connection;
use super::print::out;

/// `sandcron schedule`'s subcommands.
#[derive(Subcommand)]
pub(super) enum ScheduleCommand {
    /// Show the next fires of a cron line.
    Preview {
        /// Cron expression (or use --every/--after/--at).
        expression: Option<String>,
        /// Time zone.
        #[arg(long)]
        tz: Option<String>,
        /// Fixed rate instead of cron ("15m").
        #[arg(long, conflicts_with_all = ["expression", "after", "at"])]
        every: Option<String>,
        /// Fixed delay instead of cron ("1m"): fires as if each run ended at once.
        #[arg(long, conflicts_with_all = ["expression", "at"])]
        after: Option<String>,
        /// Once, at an RFC 3339 instant.
        #[arg(long, conflicts_with = "expression")]
        at: Option<String>,
        /// Start after this instant (RFC 3339, default now).
        #[arg(long)]
        from: Option<String>,
        /// How many fires.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
}

/// Asks the daemon for a schedule's next fires and prints them.
pub(super) async fn schedule(command: ScheduleCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    let ScheduleCommand::Preview {
        expression,
        tz,
        every,
        after,
        at,
        from,
        count,
    } = command;
    let schedule = match (expression, every, after, at) {
        (Some(cron), None, None, None) => {
            json!({"cron": cron, "timezone": tz.unwrap_or_else(|| "UTC".to_string())})
        }
        (None, Some(every), None, None) => json!({"every": every}),
        (None, None, Some(after), None) => json!({"after": after}),
        (None, None, None, Some(at)) => json!({"at": at}),
        _ => bail!("give a cron expression, --every, --after or --at"),
    };
    let mut body = json!({"schedule": schedule, "count": count});
    if let Some(from) = from {
        body["from"] = json!(from);
    }
    let answer = connection.client().post("/v1/schedules/preview", body).await?;
    connection.show(&answer, print_fires);
    Ok(ExitCode::SUCCESS)
}

/// A preview's fires: UTC, and beside it the wall time in the schedule's
/// zone when it has one (`2026-03-29 03:30:00 CEST`).
fn print_fires(answer: &Value) {
    let zone = answer["timezone"]
        .as_str()
        .and_then(|name| name.parse::<chrono_tz::Tz>().ok());
    for fire in answer["fires"].as_array().into_iter().flatten() {
        let fire = fire.as_str().unwrap_or_default();
        let local = zone.zip(chrono::DateTime::parse_from_rfc3339(fire).ok());
        match local {
            Some((zone, instant)) if zone != chrono_tz::UTC => out!(
                "{fire:<22}  {}",
                instant.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z (%:z)")
            ),
            _ => out!("{fire}"),
        }
    }
}
