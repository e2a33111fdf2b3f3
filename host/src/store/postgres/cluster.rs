//! The cluster's leases in PostgreSQL: each node's row in `nodes`, renewed
//! while it lives (by the process that joined: its incarnation, random per
//! start, is checked, so a process replaced under the same node id finds
//! out at its next renewal); the leader lease, one row taken when free or
//! expired and renewed by its holder (a resignation is announced on `sandcron_leader`
//! so the others try at once); and taking over the runs of a node whose
//! lease ran out, in one transaction with the removal of its row. Every
//! expiry is the database's clock.

use std::time::Duration;

use super::claims::RUNS_CHANNEL;
use super::database::{PgStore, from_json};
use super::runs::decode_run;
use crate::model::workflow_run::WorkflowRun;
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::{ClusterNotice, ClusterStore, NodeRecord, TakenOver};

/// The channel a resigning leader notifies.
pub const LEADER_CHANNEL: &str = "sandcron_leader";

/// The channel a pause or resume of the scheduler notifies.
pub const PAUSE_CHANNEL: &str = "sandcron_pause";

/// A duration in milliseconds, as the queries take it.
fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl ClusterStore for PgStore {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn join_cluster(&self, ttl: Duration) -> StoreResult<()> {
        let node: &str = &self.node;
        let joined = self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "INSERT INTO nodes (id, incarnation, started_at, last_seen, expires_at)
                     VALUES ($1, $3, now(), now(), now() + make_interval(secs => $2::float8 / 1000))
                     ON CONFLICT (id) DO UPDATE SET incarnation = excluded.incarnation, started_at = now(),
                         last_seen = now(), expires_at = excluded.expires_at, running_runs = 0
                     WHERE nodes.expires_at < now()
                     RETURNING id",
                    &[&node, &millis(ttl), &&*self.incarnation],
                )
                .await?;
            Ok(row.is_some())
        })?;
        if !joined {
            return Err(StoreError::Locked(format!(
                "a node named {node:?} is running on this database; give each node its own --node-id"
            )));
        }
        Ok(())
    }

    fn renew_node(&self, ttl: Duration, running_runs: usize) -> StoreResult<bool> {
        let node: &str = &self.node;
        let running = i32::try_from(running_runs).unwrap_or(i32::MAX);
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "UPDATE nodes SET last_seen = now(), expires_at = now() + make_interval(secs => $2::float8 / 1000),
                         running_runs = $3
                     WHERE id = $1 AND incarnation = $4 RETURNING id",
                )
                .await?;
            Ok(client
                .query_opt(&statement, &[&node, &millis(ttl), &running, &&*self.incarnation])
                .await?
                .is_some())
        })
    }

    fn lead(&self, ttl: Duration) -> StoreResult<bool> {
        let node: &str = &self.node;
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO leader (name, node, incarnation, elected_at, expires_at)
                     VALUES ('scheduler', $1, $3, now(), now() + make_interval(secs => $2::float8 / 1000))
                     ON CONFLICT (name) DO UPDATE SET node = excluded.node, incarnation = excluded.incarnation,
                         elected_at = CASE WHEN leader.node = excluded.node
                                           AND leader.incarnation = excluded.incarnation
                                           THEN leader.elected_at ELSE excluded.elected_at END,
                         expires_at = excluded.expires_at
                     WHERE (leader.node = excluded.node AND leader.incarnation = excluded.incarnation)
                         OR leader.expires_at < now()
                     RETURNING node",
                )
                .await?;
            Ok(client
                .query_opt(&statement, &[&node, &millis(ttl), &&*self.incarnation])
                .await?
                .is_some())
        })
    }

    fn resign(&self) -> StoreResult<()> {
        let node: &str = &self.node;
        self.block(|| async {
            self.transact(async |transaction| {
                let resigned = transaction
                    .execute(
                        "DELETE FROM leader WHERE node = $1 AND incarnation = $2",
                        &[&node, &&*self.incarnation],
                    )
                    .await?;
                if resigned > 0 {
                    transaction
                        .execute("SELECT pg_notify($1, $2)", &[&LEADER_CHANNEL, &node])
                        .await?;
                }
                Ok(())
            })
            .await
        })
    }

    fn leave_cluster(&self) -> StoreResult<()> {
        let node: &str = &self.node;
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "DELETE FROM nodes WHERE id = $1 AND incarnation = $2",
                    &[&node, &&*self.incarnation],
                )
                .await?;
            Ok(())
        })
    }

    fn nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT nodes.id, nodes.last_seen, nodes.running_runs,
                         coalesce(leader.node = nodes.id AND leader.expires_at >= now(), false)
                     FROM nodes LEFT JOIN leader ON true
                     ORDER BY nodes.id",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| NodeRecord {
                    id: row.get(0),
                    last_seen: row.get(1),
                    running_runs: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
                    leader: row.get(3),
                })
                .collect())
        })
    }

    fn set_paused(&self, paused: bool) -> StoreResult<()> {
        self.block(|| async {
            self.transact(async |transaction| {
                transaction
                    .execute(
                        "INSERT INTO scheduler_state (name, paused) VALUES ('scheduler', $1)
                         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
                        &[&paused],
                    )
                    .await?;
                transaction
                    .execute("SELECT pg_notify($1, '')", &[&PAUSE_CHANNEL])
                    .await?;
                Ok(())
            })
            .await
        })
    }

    fn paused(&self) -> StoreResult<bool> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt("SELECT paused FROM scheduler_state WHERE name = 'scheduler'", &[])
                .await?;
            Ok(row.is_some_and(|row| row.get(0)))
        })
    }

    fn listen(&self, on: std::sync::Arc<dyn Fn(ClusterNotice) + Send + Sync>) {
        self.hear(on);
    }

    fn take_over_dead_nodes(&self) -> StoreResult<Vec<TakenOver>> {
        let node: &str = &self.node;
        let dead: Vec<String> = self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    // Nodes whose lease ran out, and owners of unfinished
                    // work that have no row (they left, or were removed).
                    "SELECT id FROM nodes WHERE expires_at < now() AND id <> $1
                     UNION SELECT DISTINCT node FROM runs
                     WHERE NOT finished AND node <> $1 AND NOT EXISTS (SELECT 1 FROM nodes WHERE id = runs.node)
                     UNION SELECT DISTINCT node FROM workflow_runs
                     WHERE NOT finished AND node <> $1
                         AND NOT EXISTS (SELECT 1 FROM nodes WHERE id = workflow_runs.node)",
                    &[&node],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })?;
        let mut taken = Vec::new();
        for gone in dead {
            let over = self.block(|| async {
                self.transact(async |transaction| {
                    // Still dead (or gone) once locked: it may have come back.
                    transaction
                        .execute("DELETE FROM nodes WHERE id = $1 AND expires_at < now()", &[&gone])
                        .await?;
                    let alive = transaction
                        .query_opt("SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE", &[&gone])
                        .await?;
                    if alive.is_some() {
                        return Ok(None);
                    }
                    // Its runs not started go back to the queue; those it
                    // ran end here, and its workflows' steps go on here.
                    let released = transaction
                        .execute(
                            "UPDATE runs SET node = NULL
                             WHERE node = $1 AND NOT finished AND status = 'queued' AND NOT step",
                            &[&gone],
                        )
                        .await?;
                    if released > 0 {
                        transaction
                            .execute("SELECT pg_notify($1, '')", &[&RUNS_CHANNEL])
                            .await?;
                    }
                    let rows = transaction
                        .query(
                            "UPDATE runs SET node = $2 WHERE node = $1 AND NOT finished
                             RETURNING tenant, id, record, node",
                            &[&gone, &node],
                        )
                        .await?;
                    let runs = rows.iter().map(decode_run).collect::<StoreResult<Vec<_>>>()?;
                    let rows = transaction
                        .query(
                            "UPDATE workflow_runs SET node = $2 WHERE node = $1 AND NOT finished
                             RETURNING id, record",
                            &[&gone, &node],
                        )
                        .await?;
                    let workflow_runs = rows
                        .iter()
                        .map(|row| from_json(row.get(0), row.get(1)))
                        .collect::<StoreResult<Vec<WorkflowRun>>>()?;
                    Ok(Some(TakenOver {
                        node: gone.clone(),
                        runs,
                        workflow_runs,
                    }))
                })
                .await
            })?;
            taken.extend(over);
        }
        Ok(taken)
    }
}
