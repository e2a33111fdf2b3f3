//! Jobs in PostgreSQL: records in the compact binary form sled keeps, with
//! the columns queries use beside them (name, the due instant, whether the
//! job runs at start). A fire locks its jobs' rows, checks each is as it
//! was planned from, and writes the jobs and their new runs in one
//! transaction; a run's id derived from (job, instant) makes a fire
//! recorded twice insert nothing the second time.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::database::{PgStore, corrupt, is_unique_violation};
use super::hooks;
use super::listen::JOBS_CHANNEL;
use super::runs::{RunRows, decode_run};
use crate::model::{Job, Run, Trigger};
use crate::store::error::{StoreError, StoreResult};
use crate::store::records::{DueJob, Fire, JobHooks, kept_failures};
use crate::store::sled::job_codec;
use crate::store::traits::{JobKey, JobStore};

/// The first key of the advisory lock a tenant's job creations take (the
/// second is the tenant's name hashed), so two cannot both fit in the last
/// place of its quota.
const JOB_LOCK: i32 = 2;

/// An instant as the due index keeps it: to the millisecond.
pub(super) fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// The job's entry in the due index: its next fire while it is enabled.
fn due_at(job: &Job) -> Option<DateTime<Utc>> {
    job.next_fire_at.filter(|_| job.enabled).map(to_millis)
}

/// A job of a row's record.
fn decode(key: &str, bytes: &[u8]) -> StoreResult<Job> {
    job_codec::decode(bytes).map_err(|message| corrupt(key, message))
}

/// Tells the other nodes, once the transaction commits, that a job changed
/// (the leader looks at its due jobs again).
async fn announce(transaction: &deadpool_postgres::Transaction<'_>, node: &str) -> StoreResult<()> {
    transaction
        .execute("SELECT pg_notify($1, $2)", &[&JOBS_CHANNEL, &node])
        .await?;
    Ok(())
}

/// Writes a job's row (`replace`: over the one of its id) and tells the
/// other nodes; [`StoreError::NameTaken`] when another job has its name.
async fn write_job(
    transaction: &deadpool_postgres::Transaction<'_>,
    job: &Job,
    record: &[u8],
    replace: bool,
    node: &str,
) -> StoreResult<()> {
    let sql = if replace {
        "INSERT INTO jobs (tenant, id, name, next_fire_at, run_at_start, record)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant, id) DO UPDATE SET name = excluded.name, next_fire_at = excluded.next_fire_at,
             run_at_start = excluded.run_at_start, record = excluded.record"
    } else {
        "INSERT INTO jobs (tenant, id, name, next_fire_at, run_at_start, record) VALUES ($1, $2, $3, $4, $5, $6)"
    };
    let written = transaction
        .execute(
            sql,
            &[
                &job.tenant,
                &job.id,
                &job.name,
                &due_at(job),
                &job.run_at_start,
                &record,
            ],
        )
        .await;
    match written {
        Err(error) if is_unique_violation(&error) => Err(StoreError::NameTaken { name: job.name.clone() }),
        other => {
            other?;
            announce(transaction, node).await
        }
    }
}

/// Deletes withdrawn queued runs of a job within a transaction that holds
/// the job's row (so no fire of it commits meanwhile). In a cluster the
/// withdrawn runs were read before it: refused as a conflict (the caller
/// reads them again) when another fire recorded ahead came since, or one
/// of them was claimed (its instant came), so what is taken back is what
/// is deleted.
async fn withdraw(
    transaction: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    job_id: &str,
    withdrawn: &[Run],
) -> StoreResult<()> {
    let rows = transaction
        .query(
            "SELECT tenant, id, record, node, now() FROM runs
             WHERE tenant = $1 AND job_id = $2 AND status = 'queued' AND node IS NULL AND NOT step
                 AND due_at > now()
             FOR UPDATE",
            &[&tenant, &job_id],
        )
        .await?;
    for row in &rows {
        let run = decode_run(row)?;
        // Ahead of its fire's instant (due_at adds the jitter).
        let ahead = run.is_recorded_ahead() && run.scheduled_at > row.get::<_, DateTime<Utc>>(4);
        if ahead && !withdrawn.iter().any(|taken| taken.id == run.id) {
            return Err(StoreError::Conflict(format!(
                "job {job_id}: a fire was recorded ahead meanwhile; read them again"
            )));
        }
    }
    if withdrawn.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = withdrawn.iter().map(|run| run.tenant.as_str()).collect();
    let ids: Vec<&str> = withdrawn.iter().map(|run| run.id.as_str()).collect();
    let deleted = transaction
        .execute(
            "DELETE FROM runs USING unnest($1::text[], $2::text[]) AS withdrawn (tenant, id)
             WHERE runs.tenant = withdrawn.tenant AND runs.id = withdrawn.id AND NOT runs.finished
                 AND runs.node IS NULL",
            &[&tenants, &ids],
        )
        .await?;
    if deleted != withdrawn.len() as u64 {
        return Err(StoreError::Conflict(format!(
            "job {job_id}: a fire recorded ahead was claimed meanwhile; read them again"
        )));
    }
    Ok(())
}

impl PgStore {
    /// A job's stored record.
    fn job_record(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT record FROM jobs WHERE tenant = $1 AND id = $2")
                .await?;
            let row = client.query_opt(&statement, &[&tenant, &id]).await?;
            Ok(row.map(|row| row.get(0)))
        })
    }
}

impl JobStore for PgStore {
    fn insert_job_under_quota(&self, job: &Job, max_jobs: Option<u64>) -> StoreResult<()> {
        let record = job_codec::encode(job);
        let written = self.block(|| async {
            self.transact(async |transaction| {
                if let Some(limit) = max_jobs {
                    transaction
                        .execute(
                            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                            &[&JOB_LOCK, &job.tenant],
                        )
                        .await?;
                    let jobs: i64 = transaction
                        .query_one("SELECT count(*) FROM jobs WHERE tenant = $1", &[&job.tenant])
                        .await?
                        .get(0);
                    if u64::try_from(jobs).unwrap_or(0) >= limit {
                        return Err(StoreError::QuotaExceeded(format!(
                            "jobs: the tenant has {jobs} jobs; its quota is {limit} (delete a job to make room)"
                        )));
                    }
                }
                write_job(transaction, job, &record, false, &self.node).await
            })
            .await
        });
        self.hooks.forget(&hooks::key(&job.tenant, &job.id));
        written
    }

    fn update_job_withdrawing(&self, job: &Job, withdrawn: &[Run]) -> StoreResult<()> {
        let record = job_codec::encode(job);
        let written = self.block(|| async {
            self.transact(async |transaction| {
                let stored = transaction
                    .query_opt(
                        "SELECT record FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE",
                        &[&job.tenant, &job.id],
                    )
                    .await?;
                let failures = match &stored {
                    Some(row) => {
                        let bytes: &[u8] = row.get(0);
                        let (stamp, failures) =
                            job_codec::stamp_and_failures(bytes).map_err(|message| corrupt(&job.id, message))?;
                        kept_failures(stamp.enabled, failures, job)
                    }
                    None => job.failures,
                };
                withdraw(transaction, &job.tenant, &job.id, withdrawn).await?;
                let record = job_codec::with_failures(job, &record, failures);
                write_job(transaction, job, &record, true, &self.node).await
            })
            .await
        });
        self.hooks.forget(&hooks::key(&job.tenant, &job.id));
        written
    }

    fn count_outcome(&self, tenant: &str, id: &str, failed: bool) -> StoreResult<Option<(Job, u64)>> {
        let node: &str = &self.node;
        let counted = self.block(|| async {
            self.transact(async |transaction| {
                let Some(row) = transaction
                    .query_opt(
                        "SELECT record FROM jobs WHERE tenant = $1 AND id = $2 FOR UPDATE",
                        &[&tenant, &id],
                    )
                    .await?
                else {
                    return Ok(None);
                };
                let mut job = decode(id, row.get(0))?;
                let before = job.failures;
                job.failures = if failed { before.saturating_add(1) } else { 0 };
                if job.failures != before {
                    transaction
                        .execute(
                            "UPDATE jobs SET record = $3 WHERE tenant = $1 AND id = $2",
                            &[&tenant, &id, &job_codec::encode(&job)],
                        )
                        .await?;
                    // Every node's cache of the job's hooks goes.
                    announce(transaction, node).await?;
                }
                Ok(Some((job, before)))
            })
            .await
        });
        self.hooks.forget(&hooks::key(tenant, id));
        counted
    }

    fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        self.job_record(tenant, id)?
            .map(|record| decode(id, &record))
            .transpose()
    }

    fn jobs_by_id(&self, keys: &[JobKey]) -> StoreResult<Vec<StoreResult<Option<Job>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let tenants: Vec<&str> = keys.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
        let records: HashMap<JobKey, Vec<u8>> = self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT jobs.tenant, jobs.id, jobs.record FROM jobs
                     JOIN unnest($1::text[], $2::text[]) AS wanted (tenant, id)
                         ON jobs.tenant = wanted.tenant AND jobs.id = wanted.id",
                )
                .await?;
            let rows = client.query(&statement, &[&tenants, &ids]).await?;
            Ok(rows.iter().map(|row| ((row.get(0), row.get(1)), row.get(2))).collect())
        })?;
        Ok(keys
            .iter()
            .map(|key| records.get(key).map(|record| decode(&key.1, record)).transpose())
            .collect())
    }

    fn job_hooks(&self, tenant: &str, id: &str) -> StoreResult<Option<JobHooks>> {
        let key = hooks::key(tenant, id);
        if let Some(hooks) = self.hooks.get(&key) {
            return Ok(Some(hooks));
        }
        let seen = self.hooks.generation();
        let hooks = self
            .job_record(tenant, id)?
            .map(|record| job_codec::hooks(&record).map_err(|message| corrupt(id, message)))
            .transpose()?;
        if let Some(hooks) = &hooks {
            self.hooks.fill(key, hooks, seen);
        }
        Ok(hooks)
    }

    fn job_id_by_name(&self, tenant: &str, name: &str) -> StoreResult<Option<String>> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT id FROM jobs WHERE tenant = $1 AND name = $2", &[&tenant, &name])
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn list_jobs(&self, tenant: &str) -> StoreResult<Vec<Job>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query("SELECT id, record FROM jobs WHERE tenant = $1 ORDER BY id", &[&tenant])
                .await?;
            rows.iter().map(|row| decode(row.get(0), row.get(1))).collect()
        })
    }

    fn delete_job_withdrawing(&self, tenant: &str, id: &str, withdrawn: &[Run]) -> StoreResult<bool> {
        let deleted = self.block(|| async {
            self.transact(async |transaction| {
                let deleted = transaction
                    .execute("DELETE FROM jobs WHERE tenant = $1 AND id = $2", &[&tenant, &id])
                    .await?;
                if deleted == 0 {
                    return Ok(false);
                }
                transaction
                    .execute("DELETE FROM kv WHERE tenant = $1 AND job_id = $2", &[&tenant, &id])
                    .await?;
                withdraw(transaction, tenant, id, withdrawn).await?;
                announce(transaction, &self.node).await?;
                Ok(true)
            })
            .await
        });
        self.hooks.forget(&hooks::key(tenant, id));
        deleted
    }

    fn record_fires(&self, fires: &[Fire]) -> StoreResult<Vec<StoreResult<Vec<Run>>>> {
        if fires.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Vec<u8>> = fires.iter().map(|fire| job_codec::encode(&fire.job)).collect();
        // Schedule fires are the leader's alone: the lease is checked (and
        // held against a takeover) in the fire's own transaction, so a node
        // that lost it without knowing yet records nothing.
        let scheduled = fires
            .iter()
            .flat_map(|fire| &fire.runs)
            .any(|run| run.trigger == Trigger::Schedule);
        let node: &str = &self.node;
        let written = self.block(|| async {
            self.transact(async |transaction| {
                if scheduled {
                    let leading = transaction
                        .query_opt(
                            "SELECT 1 FROM leader WHERE name = 'scheduler' AND node = $1 AND incarnation = $2
                                 AND expires_at >= now()
                             FOR SHARE",
                            &[&node, &&*self.incarnation],
                        )
                        .await?;
                    if leading.is_none() {
                        return Err(StoreError::Conflict(format!(
                            "node {node} does not hold the leader lease: its schedule fires are refused"
                        )));
                    }
                    // A pause through another node that this node has not
                    // heard of yet: the row lock orders the two, so a fire
                    // either commits before the pause (which then withdraws
                    // what it recorded ahead) or sees it.
                    let paused = transaction
                        .query_opt("SELECT paused FROM scheduler_state FOR SHARE", &[])
                        .await?
                        .is_some_and(|row| row.get::<_, bool>(0));
                    if paused {
                        return Err(StoreError::Conflict(
                            "the cluster's scheduler is paused: schedule fires are refused".to_string(),
                        ));
                    }
                }
                let tenants: Vec<&str> = fires.iter().map(|fire| fire.job.tenant.as_str()).collect();
                let ids: Vec<&str> = fires.iter().map(|fire| fire.job.id.as_str()).collect();
                // Locked in one order, so two writers cannot deadlock.
                let locked = transaction
                    .query(
                        "SELECT jobs.tenant, jobs.id, jobs.record FROM jobs
                         JOIN unnest($1::text[], $2::text[]) AS fired (tenant, id)
                           ON jobs.tenant = fired.tenant AND jobs.id = fired.id
                         ORDER BY jobs.tenant, jobs.id FOR UPDATE OF jobs",
                        &[&tenants, &ids],
                    )
                    .await?;
                let mut stamps = HashMap::new();
                for row in &locked {
                    let (tenant, id): (String, String) = (row.get(0), row.get(1));
                    let bytes: &[u8] = row.get(2);
                    let stamp = job_codec::stamp_and_failures(bytes).map_err(|message| corrupt(&id, message));
                    stamps.insert((tenant, id), stamp);
                }
                let mut outcomes: Vec<StoreResult<Vec<Run>>> = Vec::with_capacity(fires.len());
                let mut accepted = Vec::new();
                // The jobs written, each with the stored count of failed runs.
                let mut written = Vec::new();
                for (index, fire) in fires.iter().enumerate() {
                    let job = &fire.job;
                    let outcome = match stamps.get(&(job.tenant.clone(), job.id.clone())) {
                        None => Err(StoreError::Conflict(format!("job {} was deleted", job.id))),
                        Some(Err(error)) => Err(error.clone()),
                        Some(Ok(_)) if fire.runs_only => {
                            accepted.push(index);
                            Ok(Vec::new())
                        }
                        Some(Ok((current, _)))
                            if current.updated_at != job.updated_at || current.enabled != job.enabled =>
                        {
                            Err(StoreError::Conflict(format!(
                                "job {} changed while its fire was planned",
                                job.id
                            )))
                        }
                        Some(Ok((_, failures))) => {
                            accepted.push(index);
                            written.push((index, job_codec::with_failures(job, &records[index], *failures)));
                            Ok(Vec::new())
                        }
                    };
                    outcomes.push(outcome);
                }
                if accepted.is_empty() {
                    return Ok(outcomes);
                }
                let tenants: Vec<&str> = written
                    .iter()
                    .map(|(index, _)| fires[*index].job.tenant.as_str())
                    .collect();
                let ids: Vec<&str> = written.iter().map(|(index, _)| fires[*index].job.id.as_str()).collect();
                let due: Vec<Option<DateTime<Utc>>> =
                    written.iter().map(|(index, _)| due_at(&fires[*index].job)).collect();
                let bytes: Vec<&[u8]> = written.iter().map(|(_, record)| record.as_ref()).collect();
                let statement = transaction
                    .prepare_cached(
                        "UPDATE jobs SET next_fire_at = fired.due, record = fired.record
                         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[])
                             AS fired (tenant, id, due, record)
                         WHERE jobs.tenant = fired.tenant AND jobs.id = fired.id",
                    )
                    .await?;
                transaction.execute(&statement, &[&tenants, &ids, &due, &bytes]).await?;
                if !scheduled {
                    // Not the leader's own pass: it may not know.
                    announce(transaction, node).await?;
                }
                let runs: Vec<&Run> = accepted.iter().flat_map(|&index| &fires[index].runs).collect();
                let inserted: HashSet<String> = RunRows::of(&self.node, runs.iter().copied())
                    .insert_new(transaction)
                    .await?
                    .into_iter()
                    .collect();
                for &index in &accepted {
                    outcomes[index] = Ok(fires[index]
                        .runs
                        .iter()
                        .filter(|run| inserted.contains(&run.id))
                        .cloned()
                        .collect());
                }
                Ok(outcomes)
            })
            .await
        });
        if !scheduled {
            // Not a pass's fires (a count of failed runs, a backfill): the
            // job's hooks, which runs' ends read, may have changed.
            for fire in fires {
                self.hooks.forget(&hooks::key(&fire.job.tenant, &fire.job.id));
            }
        }
        written
    }

    fn due_jobs(&self, until: DateTime<Utc>, limit: usize) -> StoreResult<Vec<DueJob>> {
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT next_fire_at, tenant, id FROM jobs WHERE next_fire_at <= $1
                     ORDER BY next_fire_at, tenant, id LIMIT $2",
                )
                .await?;
            let rows = client
                .query(&statement, &[&until, &i64::try_from(limit).unwrap_or(i64::MAX)])
                .await?;
            Ok(rows
                .iter()
                .map(|row| DueJob {
                    at: row.get(0),
                    tenant: row.get(1),
                    job_id: row.get(2),
                })
                .collect())
        })
    }

    fn next_due_after(&self, after: DateTime<Utc>) -> StoreResult<Option<DateTime<Utc>>> {
        // The index keeps milliseconds: the next one after `after`'s.
        let start = to_millis(after) + chrono::Duration::milliseconds(1);
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT min(next_fire_at) FROM jobs WHERE next_fire_at >= $1")
                .await?;
            Ok(client.query_one(&statement, &[&start]).await?.get(0))
        })
    }

    fn remove_due(&self, due: &DueJob) -> StoreResult<()> {
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "UPDATE jobs SET next_fire_at = NULL WHERE tenant = $1 AND id = $2 AND next_fire_at = $3",
                    &[&due.tenant, &due.job_id, &due.at],
                )
                .await?;
            Ok(())
        })
    }

    fn run_at_start_jobs(&self) -> StoreResult<Vec<Job>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT id, record FROM jobs WHERE run_at_start ORDER BY tenant, id",
                    &[],
                )
                .await?;
            rows.iter().map(|row| decode(row.get(0), row.get(1))).collect()
        })
    }
}
