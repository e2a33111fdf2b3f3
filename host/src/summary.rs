//! Tenants' digests: on a cron line in a zone, an e-mail summarising the
//! runs that finished since the last one (counts by status, failures by
//! error kind with the latest examples, the slowest jobs). A daemon that was
//! down sends one digest covering the whole gap, not one per missed fire.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::cluster::Leadership;
use crate::mail::Mailer;
use crate::model::{Run, Tenant};
use crate::store::{RunFilter, Store};
use crate::tenancy::Tenants;

/// Runs read for one digest (the newest first).
const MAX_RUNS: usize = 10_000;
/// Failures listed one by one.
const FAILURES_LISTED: usize = 10;
/// Slowest jobs listed.
const SLOWEST_LISTED: usize = 5;
/// Wait before trying a digest again after the mail server failed.
const RETRY: Duration = Duration::from_secs(60);
/// Longest sleep between looks (a digest set meanwhile wakes it anyway).
const LONGEST_SLEEP: Duration = Duration::from_secs(300);

/// The text of a digest: subject and body.
pub fn summary(tenant: &str, runs: &[Run], from: DateTime<Utc>, to: DateTime<Utc>, zone: &str) -> (String, String) {
    let local = |at: DateTime<Utc>| match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut durations: HashMap<&str, Vec<u64>> = HashMap::new();
    for run in runs {
        *by_status.entry(run.status.as_str()).or_default() += 1;
        if let Some(error) = &run.error {
            *by_kind.entry(error.kind.as_str()).or_default() += 1;
        }
        if let Some(ms) = run.duration_ms {
            durations.entry(run.job_name.as_str()).or_default().push(ms);
        }
    }
    let failed = by_status.get("failed").copied().unwrap_or(0);
    let subject = format!(
        "[sandcron] {tenant}: {} runs, {failed} failed ({} to {} {zone})",
        runs.len(),
        local(from),
        local(to)
    );
    let mut body = format!(
        "Runs of tenant {tenant} finished from {} to {} ({zone}).\n\n",
        local(from),
        local(to)
    );
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(status, count)| format!("{status} {count}"))
        .collect();
    let _ = writeln!(
        body,
        "Runs: {}{}",
        runs.len(),
        if statuses.is_empty() {
            String::new()
        } else {
            format!(" ({})", statuses.join(", "))
        }
    );
    if !by_kind.is_empty() {
        body.push_str("\nFailures by kind:\n");
        for (kind, count) in &by_kind {
            let _ = writeln!(body, "  {kind:<20} {count}");
        }
        body.push_str("\nLatest failures:\n");
        for run in runs.iter().filter(|run| run.error.is_some()).take(FAILURES_LISTED) {
            let error = run.error.as_ref().expect("filtered on errors");
            let mut message: String = error.message.chars().take(160).collect();
            if message.len() < error.message.len() {
                message.push('…');
            }
            let _ = writeln!(
                body,
                "  {}  {}  run {}  {}: {}",
                run.finished_at.map_or_else(|| "-".to_string(), local),
                run.job_name,
                run.id,
                error.kind.as_str(),
                message
            );
        }
    }
    let mut slowest: Vec<(&str, u64, u64, usize)> = durations
        .iter()
        .map(|(job, times)| {
            let longest = times.iter().copied().max().unwrap_or(0);
            let average = times.iter().sum::<u64>() / times.len().max(1) as u64;
            (*job, longest, average, times.len())
        })
        .collect();
    slowest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if !slowest.is_empty() {
        body.push_str("\nSlowest jobs (longest run, average, runs):\n");
        for (job, longest, average, count) in slowest.iter().take(SLOWEST_LISTED) {
            let _ = writeln!(
                body,
                "  {job:<32} {:>9.3} s  {:>9.3} s  {count}",
                *longest as f64 / 1000.0,
                *average as f64 / 1000.0
            );
        }
    }
    (subject, body)
}

/// Sends the digests when they are due.
pub struct Summaries {
    store: Arc<dyn Store>,
    tenants: Arc<Tenants>,
    mailer: Option<Arc<Mailer>>,
    clock: Arc<dyn Clock>,
    changed: Notify,
    retry_after: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Summaries {
    /// Summaries mailed through `mailer` (none: digests cannot be set).
    pub fn new(
        store: Arc<dyn Store>,
        tenants: Arc<Tenants>,
        mailer: Option<Arc<Mailer>>,
        clock: Arc<dyn Clock>,
    ) -> Summaries {
        Summaries {
            store,
            tenants,
            mailer,
            clock,
            changed: Notify::new(),
            retry_after: Mutex::new(HashMap::new()),
        }
    }

    /// Whether e-mail is configured.
    pub fn can_send(&self) -> bool {
        self.mailer.is_some()
    }

    /// A digest was set, changed or removed: look again.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Sends due digests for as long as the runtime lives.
    pub fn start(self: Arc<Self>, leadership: Arc<Leadership>) {
        if self.mailer.is_none() {
            return;
        }
        tokio::spawn(async move {
            loop {
                // In a cluster one node sends digests: the leader.
                leadership.until_leader().await;
                let next = self.send_due().await;
                let wait = next
                    .map(|at| (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(LONGEST_SLEEP)
                    .min(LONGEST_SLEEP);
                tokio::select! {
                    () = self.changed.notified() => {}
                    () = self.clock.sleep_until(self.clock.now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)) => {}
                }
            }
        });
    }

    /// Sends every digest that is due; returns when the next one is.
    async fn send_due(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let mut earliest: Option<DateTime<Utc>> = None;
        for tenant in self.tenants.all() {
            let Some(digest) = &tenant.digest else {
                continue;
            };
            let Some(mut due) = digest.next_fire() else {
                continue;
            };
            let waiting = self
                .retry_after
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&tenant.name)
                .copied();
            if let Some(retry) = waiting {
                due = due.max(retry);
            }
            if due <= now {
                match self.send(&tenant, digest.window_start(), now).await {
                    Ok(()) => {
                        self.mark_sent(tenant.clone(), now);
                        // The next one, counted from this one.
                        let sent = crate::model::tenant::Summary {
                            last_sent_at: Some(now),
                            ..digest.clone()
                        };
                        if let Some(next) = sent.next_fire() {
                            earliest = Some(earliest.map_or(next, |at| at.min(next)));
                        }
                    }
                    Err(problem) => {
                        tracing::warn!(tenant = %tenant.name, %problem, "digest not sent; trying again in a minute");
                        let retry = now + chrono::Duration::from_std(RETRY).unwrap_or(chrono::Duration::MAX);
                        self.retry_after
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .insert(tenant.name.clone(), retry);
                        earliest = Some(earliest.map_or(retry, |at| at.min(retry)));
                    }
                }
                continue;
            }
            earliest = Some(earliest.map_or(due, |at| at.min(due)));
        }
        earliest
    }

    fn mark_sent(&self, mut tenant: Tenant, at: DateTime<Utc>) {
        self.retry_after
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&tenant.name);
        if let Some(digest) = &mut tenant.digest {
            digest.last_sent_at = Some(at);
        }
        match self.store.put_tenant(&tenant) {
            Ok(()) => self.tenants.put(tenant),
            Err(error) => tracing::warn!(tenant = %tenant.name, %error, "cannot record the digest as sent"),
        }
    }

    /// Mails the digest of runs finished in (`from`, `to`] to its addresses.
    pub async fn send(&self, tenant: &Tenant, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), String> {
        let (Some(digest), Some(mailer)) = (&tenant.digest, &self.mailer) else {
            return Err("no digest or no mail server".to_string());
        };
        let filter = RunFilter {
            limit: MAX_RUNS,
            ..RunFilter::default()
        };
        let runs: Vec<Run> = self
            .store
            .list_runs(&tenant.name, &filter)
            .map_err(|error| error.to_string())?
            .into_iter()
            .filter(|run| run.finished_at.is_some_and(|at| at > from && at <= to))
            .collect();
        let (subject, body) = summary(&tenant.name, &runs, from, to, &digest.timezone);
        for address in &digest.to {
            mailer.send(address, &subject, body.clone()).await?;
        }
        tracing::info!(tenant = %tenant.name, runs = runs.len(), "digest sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ErrorKind, RunError, RunStatus};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn finished(job: &str, status: RunStatus, ms: u64, error: Option<ErrorKind>) -> Run {
        let mut run = Run::sample(&crate::model::new_id(), job, at("2026-11-25T07:00:00Z"));
        run.job_name = job.into();
        let error = error.map(|kind| RunError {
            kind,
            message: format!("{} went wrong", kind.as_str()),
        });
        run.finish(status, error, at("2026-11-25T07:00:00Z"));
        run.duration_ms = Some(ms);
        run
    }

    #[test]
    fn the_summary_counts_statuses_failure_kinds_and_the_slowest_jobs() {
        let runs = vec![
            finished("backup", RunStatus::Failed, 30_000, Some(ErrorKind::Timeout)),
            finished("backup", RunStatus::Succeeded, 12_000, None),
            finished("ranking", RunStatus::Succeeded, 150, None),
            finished("ranking", RunStatus::Failed, 90, Some(ErrorKind::PluginError)),
            finished("report", RunStatus::Cancelled, 10, None),
        ];
        let (subject, body) = summary(
            "acme",
            &runs,
            at("2026-11-24T07:00:00Z"),
            at("2026-11-25T07:00:00Z"),
            "Europe/Berlin",
        );
        assert_eq!(
            subject,
            "[sandcron] acme: 5 runs, 2 failed (2026-11-24 08:00 to 2026-11-25 08:00 Europe/Berlin)"
        );
        assert!(body.contains("Runs: 5 (cancelled 1, failed 2, succeeded 2)"), "{body}");
        assert!(
            body.contains("  plugin_error         1\n  timeout              1"),
            "{body}"
        );
        assert!(
            body.contains("backup  run ") && body.contains("timeout: timeout went wrong"),
            "{body}"
        );
        let slowest = body.split("Slowest jobs").nth(1).unwrap();
        let order: Vec<&str> = slowest
            .lines()
            .skip(1)
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        assert_eq!(order, ["backup", "ranking", "report"]);
        assert!(slowest.contains("30.000 s     21.000 s  2"), "{slowest}");
    }

    #[test]
    fn an_empty_window_says_so() {
        let (subject, body) = summary(
            "acme",
            &[],
            at("2026-11-24T07:00:00Z"),
            at("2026-11-25T07:00:00Z"),
            "UTC",
        );
        assert!(subject.contains("0 runs, 0 failed"));
        assert!(body.contains("Runs: 0\n"), "{body}");
    }
}
