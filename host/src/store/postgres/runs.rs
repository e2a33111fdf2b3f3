//! Runs in PostgreSQL: records in the compact binary form sled keeps, with
//! their output, log and tape, and the columns queries use (job, status, what
//! the run counts in its tenant's run history, the time in its id). Each
//! call's writes are one transaction: a fire's runs with its jobs, an
//! outcome with its retry, the workflow run it moves on and the join it
//! completes. The tenants' run bytes are kept by the table's triggers.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::database::{PgStore, big, corrupt, count, json};
use crate::model::job::Priority;
use crate::model::workflow_run::{WorkflowRun, WorkflowRunStatus};
use crate::model::{Run, RunStatus};
use crate::store::error::StoreResult;
use crate::store::records::{RunFilter, RunWrite, no_run_room};
use crate::store::room::{make_room, room_for};
use crate::store::sled::{run_bytes, run_codec};
use crate::store::traits::RunStore;

/// The time in an id (a ULID, or an id derived with one's time part).
pub(super) fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let ulid = ulid::Ulid::from_string(&id.to_ascii_uppercase()).ok()?;
    DateTime::from_timestamp_millis(i64::try_from(ulid.timestamp_ms()).ok()?)
}

/// A run of a row (tenant, id, record, node).
pub(super) fn decode_run(row: &tokio_postgres::Row) -> StoreResult<Run> {
    let (tenant, id): (&str, &str) = (row.get(0), row.get(1));
    let mut run = run_codec::decode(row.get(2), tenant, id).map_err(|message| corrupt(id, message))?;
    run.node = row.get(3);
    Ok(run)
}

/// Rows of the runs table, as columns to pass as arrays. A queued run
/// is written as no node's (any node may claim it), but for a workflow's
/// step (it stays with the node driving its workflow run); any other as
/// the writing node's.
pub(super) struct RunRows<'a> {
    node: Option<&'a str>,
    tenants: Vec<&'a str>,
    ids: Vec<&'a str>,
    jobs: Vec<&'a str>,
    statuses: Vec<&'static str>,
    finished: Vec<bool>,
    bytes: Vec<i64>,
    id_times: Vec<Option<DateTime<Utc>>>,
    records: Vec<Vec<u8>>,
    outputs: Vec<Option<&'a [u8]>>,
    logs: Vec<Option<&'a [u8]>>,
    tapes: Vec<Option<&'a [u8]>>,
    nodes: Vec<Option<&'a str>>,
    priorities: Vec<i16>,
    dues: Vec<DateTime<Utc>>,
    exclusive: Vec<bool>,
    steps: Vec<bool>,
    /// Each run's concurrency group and its limit.
    groups: Vec<Option<&'a str>>,
    group_limits: Vec<Option<i32>>,
    /// Where each run id is, so a later write of it replaces the earlier.
    index: HashMap<&'a str, usize>,
}

/// A priority as the claims order by it (low 0 .. critical 3).
pub(super) fn rank(priority: Priority) -> i16 {
    priority as i16
}

impl<'a> RunRows<'a> {
    /// No rows yet, of runs `node` writes ("": none, a migration).
    pub(super) fn new(node: &'a str) -> RunRows<'a> {
        RunRows {
            node: (!node.is_empty()).then_some(node),
            tenants: Vec::new(),
            ids: Vec::new(),
            jobs: Vec::new(),
            statuses: Vec::new(),
            finished: Vec::new(),
            bytes: Vec::new(),
            id_times: Vec::new(),
            records: Vec::new(),
            outputs: Vec::new(),
            logs: Vec::new(),
            tapes: Vec::new(),
            nodes: Vec::new(),
            priorities: Vec::new(),
            dues: Vec::new(),
            exclusive: Vec::new(),
            steps: Vec::new(),
            groups: Vec::new(),
            group_limits: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The rows of runs with no output or log, written by `node`.
    pub(super) fn of(node: &'a str, runs: impl Iterator<Item = &'a Run>) -> RunRows<'a> {
        let mut rows = RunRows::new(node);
        for run in runs {
            rows.put(run, Words::default());
        }
        rows
    }

    /// Adds (or replaces) a run's row.
    fn put(&mut self, run: &'a Run, words: Words<'a>) {
        let Words { output, log, tape } = words;
        let record = run_codec::encode(run);
        let bytes = big(run_bytes::charge_encoded(run, &record));
        let (status, finished) = (run.status.as_str(), run.status.is_finished());
        let step = run.workflow.is_some();
        let node = if run.status == RunStatus::Queued && !step {
            None
        } else {
            self.node
        };
        if let Some(&at) = self.index.get(run.id.as_str()) {
            (self.statuses[at], self.finished[at], self.bytes[at]) = (status, finished, bytes);
            (self.records[at], self.outputs[at], self.logs[at]) = (record, output, log);
            self.tapes[at] = tape;
            (self.nodes[at], self.dues[at]) = (node, run.due_at());
            return;
        }
        self.index.insert(&run.id, self.ids.len());
        self.tenants.push(&run.tenant);
        self.ids.push(&run.id);
        self.jobs.push(&run.job_id);
        self.statuses.push(status);
        self.finished.push(finished);
        self.bytes.push(bytes);
        self.id_times.push(id_time(&run.id));
        self.records.push(record);
        self.outputs.push(output);
        self.logs.push(log);
        self.tapes.push(tape);
        self.nodes.push(node);
        self.priorities.push(rank(run.priority));
        self.dues.push(run.due_at());
        self.exclusive.push(run.exclusive);
        self.steps.push(step);
        self.groups
            .push(run.concurrency.as_ref().map(|group| group.key.as_str()));
        self.group_limits.push(
            run.concurrency
                .as_ref()
                .map(|group| i32::try_from(group.limit).unwrap_or(i32::MAX)),
        );
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Inserts the runs not stored yet; the ids of those inserted.
    pub(super) async fn insert_new(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
    ) -> StoreResult<Vec<String>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let statement = transaction
            .prepare_cached(&format!(
                "{INSERT_ROWS} ON CONFLICT (tenant, id) DO NOTHING RETURNING id"
            ))
            .await?;
        let rows = transaction.query(&statement, &self.params()).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Writes the runs, replacing the stored ones.
    async fn upsert(&self, transaction: &deadpool_postgres::Transaction<'_>) -> StoreResult<()> {
        if self.is_empty() {
            return Ok(());
        }
        let statement = transaction
            .prepare_cached(&format!(
                "{INSERT_ROWS}
                 ON CONFLICT (tenant, id) DO UPDATE SET job_id = excluded.job_id, status = excluded.status,
                     finished = excluded.finished, bytes = excluded.bytes, id_time = excluded.id_time,
                     record = excluded.record, output = excluded.output, log = excluded.log,
                     tape = coalesce(excluded.tape, runs.tape), node = excluded.node,
                     priority = excluded.priority, due_at = excluded.due_at, exclusive = excluded.exclusive,
                     step = excluded.step, concurrency_key = excluded.concurrency_key,
                     concurrency_limit = excluded.concurrency_limit
                 -- A run another node claimed, or took over (its owner was
                 -- declared dead), is that node's: a late write of another is
                 -- dropped.
                 WHERE runs.node IS NULL OR runs.node = excluded.node"
            ))
            .await?;
        transaction.execute(&statement, &self.params()).await?;
        Ok(())
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 18] {
        [
            &self.tenants,
            &self.ids,
            &self.jobs,
            &self.statuses,
            &self.finished,
            &self.bytes,
            &self.id_times,
            &self.records,
            &self.outputs,
            &self.logs,
            &self.nodes,
            &self.priorities,
            &self.dues,
            &self.exclusive,
            &self.steps,
            &self.groups,
            &self.group_limits,
            &self.tapes,
        ]
    }
}

/// The rows of [`RunRows::params`], inserted.
const INSERT_ROWS: &str =
    "INSERT INTO runs (tenant, id, job_id, status, finished, bytes, id_time, record, output, log, node, priority,
         due_at, exclusive, step, concurrency_key, concurrency_limit, tape)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::bigint[],
         $7::timestamptz[], $8::bytea[], $9::bytea[], $10::bytea[], $11::text[], $12::smallint[],
         $13::timestamptz[], $14::boolean[], $15::boolean[], $16::text[], $17::integer[], $18::bytea[])";

/// What a finished run keeps beside its record (none for other writes).
#[derive(Default)]
struct Words<'a> {
    output: Option<&'a [u8]>,
    log: Option<&'a [u8]>,
    tape: Option<&'a [u8]>,
}

/// A non-empty byte string, or none.
fn some(bytes: &[u8]) -> Option<&[u8]> {
    (!bytes.is_empty()).then_some(bytes)
}

impl PgStore {
    /// The runs a query's rows (tenant, id, record) hold.
    async fn runs_of(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> StoreResult<Vec<Run>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let rows = client.query(&statement, params).await?;
        rows.iter().map(decode_run).collect()
    }

    /// The bytes one column of a run's row holds (`sql` selects it by
    /// tenant and id).
    fn run_bytes_column(&self, sql: &str, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.block(|| async {
            let row = self.client().await?.query_opt(sql, &[&tenant, &id]).await?;
            Ok(row.and_then(|row| row.get(0)))
        })
    }

    /// A tenant's run bytes (finished, unfinished).
    async fn run_usage(&self, tenant: &str) -> StoreResult<(u64, u64)> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT finished, unfinished FROM run_usage WHERE tenant = $1",
                &[&tenant],
            )
            .await?;
        Ok(row.map_or((0, 0), |row| (count(row.get(0)), count(row.get(1)))))
    }

    /// [`RunStore::write_runs`]; with `room`, the queued run and the quota
    /// it must fit, checked against the tenant's locked usage.
    fn write_runs_under_quota(&self, writes: &[RunWrite<'_>], room: Option<(&Run, u64)>) -> StoreResult<()> {
        let mut rows = RunRows::new(&self.node);
        let mut workflow_runs: Vec<&WorkflowRun> = Vec::new();
        let mut joins = Vec::new();
        for write in writes {
            match *write {
                RunWrite::Queued(run) | RunWrite::Updated(run) => rows.put(run, Words::default()),
                RunWrite::Finished {
                    run,
                    output,
                    log,
                    tape,
                    next,
                } => {
                    let words = Words {
                        output: some(output),
                        log: some(log),
                        tape: some(tape),
                    };
                    rows.put(run, words);
                    if let Some(next) = next {
                        rows.put(next, Words::default());
                    }
                }
                RunWrite::Workflow(record) => workflow_runs.push(record),
                RunWrite::Join(join) => joins.push(join),
            }
        }
        self.block(|| async {
            self.transact(async |transaction| {
                if let Some((run, max_bytes)) = room {
                    transaction
                        .execute(
                            "INSERT INTO run_usage (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING",
                            &[&run.tenant],
                        )
                        .await?;
                    let row = transaction
                        .query_one(
                            "SELECT finished, unfinished FROM run_usage WHERE tenant = $1 FOR UPDATE",
                            &[&run.tenant],
                        )
                        .await?;
                    let (finished, unfinished) = (count(row.get(0)), count(row.get(1)));
                    let need = run_bytes::queued_charge(run);
                    if finished.saturating_add(unfinished).saturating_add(need) > max_bytes {
                        return Err(no_run_room(need, unfinished, max_bytes));
                    }
                }
                rows.upsert(transaction).await?;
                for record in &workflow_runs {
                    transaction
                        .execute(
                            "INSERT INTO workflow_runs (tenant, id, workflow, finished, id_time, record, node)
                             VALUES ($1, $2, $3, $4, $5, $6, nullif($7, ''))
                             ON CONFLICT (tenant, id) DO UPDATE SET finished = excluded.finished,
                                 record = excluded.record, node = excluded.node
                             WHERE workflow_runs.node IS NULL OR workflow_runs.node = excluded.node",
                            &[
                                &record.tenant,
                                &record.id,
                                &record.workflow.name,
                                &(record.status != WorkflowRunStatus::Running),
                                &id_time(&record.id),
                                &json(*record),
                                &&*self.node,
                            ],
                        )
                        .await?;
                }
                for join in &joins {
                    transaction
                        .execute(
                            "INSERT INTO joins (tenant, job_id, record) VALUES ($1, $2, $3)
                             ON CONFLICT (tenant, job_id) DO UPDATE SET record = excluded.record",
                            &[&join.tenant, &join.job_id, &json(*join)],
                        )
                        .await?;
                }
                Ok(())
            })
            .await
        })
    }
}

impl RunStore for PgStore {
    fn write_runs(&self, writes: &[RunWrite<'_>]) -> StoreResult<()> {
        self.write_runs_under_quota(writes, None)
    }

    fn insert_run_under_quota(&self, run: &Run, max_bytes: Option<u64>) -> StoreResult<()> {
        let Some(max_bytes) = max_bytes else {
            return self.insert_run(run);
        };
        let (_, unfinished) = self.block(|| self.run_usage(&run.tenant))?;
        let room = room_for(run_bytes::queued_charge(run), unfinished, max_bytes)?;
        make_room(self, run, room)?;
        self.write_runs_under_quota(&[RunWrite::Queued(run)], Some((run, max_bytes)))
    }

    fn run(&self, tenant: &str, id: &str) -> StoreResult<Option<Run>> {
        self.block(|| async {
            let runs = self
                .runs_of(
                    "SELECT tenant, id, record, node FROM runs WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await?;
            Ok(runs.into_iter().next())
        })
    }

    fn run_output(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run_bytes_column("SELECT output FROM runs WHERE tenant = $1 AND id = $2", tenant, id)
    }

    fn run_log(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run_bytes_column("SELECT log FROM runs WHERE tenant = $1 AND id = $2", tenant, id)
    }

    fn run_tape(&self, tenant: &str, id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.run_bytes_column("SELECT tape FROM runs WHERE tenant = $1 AND id = $2", tenant, id)
    }

    fn list_runs(&self, tenant: &str, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let status = filter.status.map(RunStatus::as_str);
        let limit = big(filter.limit as u64);
        self.block(|| async {
            self.runs_of(
                "SELECT tenant, id, record, node FROM runs
                 WHERE tenant = $1 AND ($2::text IS NULL OR job_id = $2) AND ($3::text IS NULL OR status = $3)
                     AND ($4::text IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
                &[&tenant, &filter.job_id, &status, &filter.before, &limit],
            )
            .await
        })
    }

    /// This node's runs that were running and its workflows' queued steps
    /// (with those of no node, written before nodes were kept); the runs
    /// it had claimed and not started go back to the cluster's queue on
    /// the way.
    fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        self.block(|| async {
            let node: &str = &self.node;
            self.release(None).await?;
            let mut runs = self
                .runs_of(
                    "UPDATE runs SET node = $1
                     WHERE NOT finished AND (status <> 'queued' OR step) AND (node IS NULL OR node = $1)
                     RETURNING tenant, id, record, node",
                    &[&node],
                )
                .await?;
            runs.sort_by(|first, second| (&first.tenant, &first.id).cmp(&(&second.tenant, &second.id)));
            Ok(runs)
        })
    }

    fn prune_runs(&self, older_than: DateTime<Utc>, keep_per_job: usize, max_deletions: usize) -> StoreResult<usize> {
        let (keep, max) = (big(keep_per_job as u64), big(max_deletions as u64));
        self.block(|| async {
            let deleted = self
                .client()
                .await?
                .execute(
                    "WITH ranked AS (
                         SELECT tenant, id, finished, id_time,
                             CASE WHEN $2::bigint > 0
                                 THEN row_number() OVER (PARTITION BY tenant, job_id ORDER BY id DESC)
                                 ELSE 0 END AS newer
                         FROM runs),
                     victims AS (
                         SELECT tenant, id FROM ranked
                         WHERE finished AND (id_time < $1 OR ($2::bigint > 0 AND newer > $2::bigint))
                         LIMIT $3::bigint)
                     DELETE FROM runs USING victims WHERE runs.tenant = victims.tenant AND runs.id = victims.id",
                    &[&older_than, &keep, &max],
                )
                .await?;
            Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
        })
    }

    fn prune_workflow_runs(&self, older_than: DateTime<Utc>, max_deletions: usize) -> StoreResult<usize> {
        let max = big(max_deletions as u64);
        self.block(|| async {
            let deleted = self
                .client()
                .await?
                .execute(
                    "DELETE FROM workflow_runs WHERE (tenant, id) IN (
                         SELECT tenant, id FROM workflow_runs WHERE finished AND id_time < $1 LIMIT $2)",
                    &[&older_than, &max],
                )
                .await?;
            Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
        })
    }

    fn run_bytes(&self, tenant: &str) -> StoreResult<u64> {
        let (finished, unfinished) = self.block(|| self.run_usage(tenant))?;
        Ok(finished + unfinished)
    }

    fn trim_runs(&self, tenant: &str, max_bytes: u64, max_deletions: usize) -> StoreResult<usize> {
        let (finished, unfinished) = self.block(|| self.run_usage(tenant))?;
        // Only finished runs go: past them, there is nothing to look for.
        let over = (finished + unfinished).saturating_sub(max_bytes).min(finished);
        if over == 0 {
            return Ok(0);
        }
        let (over, max) = (big(over), big(max_deletions as u64));
        self.block(|| async {
            // The oldest finished runs (ids sort by time) until their
            // charges come to `over`.
            let deleted = self
                .client()
                .await?
                .execute(
                    "WITH oldest AS (
                         SELECT id, bytes, (sum(bytes) OVER (ORDER BY id))::bigint AS freed
                         FROM runs WHERE tenant = $1 AND finished ORDER BY id LIMIT $3),
                     victims AS (SELECT id FROM oldest WHERE freed - bytes < $2)
                     DELETE FROM runs USING victims WHERE runs.tenant = $1 AND runs.id = victims.id",
                    &[&tenant, &over, &max],
                )
                .await?;
            Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
        })
    }
}
