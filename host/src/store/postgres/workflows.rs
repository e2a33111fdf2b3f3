//! Workflows and their runs in PostgreSQL: JSON records; a workflow run's
//! record and a join are written with the runs (see `runs`).

use super::database::{PgStore, big, from_json, json};
use super::listen::JOBS_CHANNEL;
use super::runs::RunRows;
use crate::model::Run;
use crate::model::dependency::Join;
use crate::model::workflow::Workflow;
use crate::model::workflow_run::WorkflowRun;
use crate::store::error::StoreResult;
use crate::store::traits::WorkflowStore;

impl PgStore {
    /// The workflows a query's rows (name, record) hold.
    async fn workflows_of(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<Workflow>> {
        let rows = self.client().await?.query(sql, params).await?;
        rows.iter().map(|row| from_json(row.get(0), row.get(1))).collect()
    }

    /// The workflow runs a query's rows (id, record) hold.
    async fn workflow_runs_of(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<WorkflowRun>> {
        let rows = self.client().await?.query(sql, params).await?;
        rows.iter().map(|row| from_json(row.get(0), row.get(1))).collect()
    }
}

impl WorkflowStore for PgStore {
    fn put_workflow(&self, workflow: &Workflow) -> StoreResult<()> {
        let record = json(workflow);
        self.block(|| async {
            self.client()
                .await?
                .execute(
                    "WITH written AS (
                         INSERT INTO workflows (tenant, name, record) VALUES ($1, $2, $3)
                         ON CONFLICT (tenant, name) DO UPDATE SET record = excluded.record)
                     SELECT pg_notify($4, $5)",
                    &[&workflow.tenant, &workflow.name, &record, &JOBS_CHANNEL, &&*self.node],
                )
                .await?;
            Ok(())
        })
    }

    fn workflow(&self, tenant: &str, name: &str) -> StoreResult<Option<Workflow>> {
        self.block(|| async {
            let found = self
                .workflows_of(
                    "SELECT name, record FROM workflows WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await?;
            Ok(found.into_iter().next())
        })
    }

    fn list_workflows(&self, tenant: &str) -> StoreResult<Vec<Workflow>> {
        self.block(|| async {
            self.workflows_of(
                "SELECT name, record FROM workflows WHERE tenant = $1 ORDER BY name",
                &[&tenant],
            )
            .await
        })
    }

    fn all_workflows(&self) -> StoreResult<Vec<Workflow>> {
        self.block(|| self.workflows_of("SELECT name, record FROM workflows ORDER BY tenant, name", &[]))
    }

    fn delete_workflow(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        self.block(|| async {
            let deleted = self
                .client()
                .await?
                .execute(
                    "DELETE FROM workflows WHERE tenant = $1 AND name = $2",
                    &[&tenant, &name],
                )
                .await?;
            Ok(deleted > 0)
        })
    }

    fn workflow_run(&self, tenant: &str, id: &str) -> StoreResult<Option<WorkflowRun>> {
        self.block(|| async {
            let found = self
                .workflow_runs_of(
                    "SELECT id, record FROM workflow_runs WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .await?;
            Ok(found.into_iter().next())
        })
    }

    fn list_workflow_runs(
        &self,
        tenant: &str,
        workflow: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<WorkflowRun>> {
        let limit = big(limit as u64);
        self.block(|| async {
            self.workflow_runs_of(
                "SELECT id, record FROM workflow_runs
                 WHERE tenant = $1 AND ($2::text IS NULL OR workflow = $2) AND ($3::text IS NULL OR id < $3)
                 ORDER BY id DESC LIMIT $4",
                &[&tenant, &workflow, &before, &limit],
            )
            .await
        })
    }

    /// The workflow runs this node drives, with those of no node (written
    /// before nodes were kept) taken over on the way.
    fn running_workflow_runs(&self) -> StoreResult<Vec<WorkflowRun>> {
        self.block(|| async {
            let node: &str = &self.node;
            let mut runs = self
                .workflow_runs_of(
                    "UPDATE workflow_runs SET node = $1 WHERE NOT finished AND (node IS NULL OR node = $1)
                     RETURNING id, record",
                    &[&node],
                )
                .await?;
            runs.sort_by(|first, second| (&first.tenant, &first.id).cmp(&(&second.tenant, &second.id)));
            Ok(runs)
        })
    }

    fn going_workflow_runs(&self) -> Option<StoreResult<Vec<WorkflowRun>>> {
        Some(self.block(|| async {
            self.workflow_runs_of("SELECT id, record FROM workflow_runs WHERE NOT finished", &[])
                .await
        }))
    }

    fn join(&self, tenant: &str, job_id: &str) -> StoreResult<Option<Join>> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_opt(
                    "SELECT record FROM joins WHERE tenant = $1 AND job_id = $2",
                    &[&tenant, &job_id],
                )
                .await?;
            row.map(|row| from_json(job_id, row.get(0))).transpose()
        })
    }

    fn update_join(
        &self,
        tenant: &str,
        job_id: &str,
        update: &mut (dyn FnMut(&mut Join) -> Option<Run> + Send),
    ) -> Option<StoreResult<Option<Run>>> {
        Some(self.block(|| async {
            self.transact(async |transaction| {
                // A lock, not the row's: the first update finds no row.
                transaction
                    .execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended('sandcron.join:' || $1 || '/' || $2, 0))",
                        &[&tenant, &job_id],
                    )
                    .await?;
                let row = transaction
                    .query_opt(
                        "SELECT record FROM joins WHERE tenant = $1 AND job_id = $2",
                        &[&tenant, &job_id],
                    )
                    .await?;
                let mut join = match row {
                    Some(row) => from_json(job_id, row.get(0))?,
                    None => Join {
                        tenant: tenant.to_string(),
                        job_id: job_id.to_string(),
                        ..Join::default()
                    },
                };
                let fired = update(&mut join);
                transaction
                    .execute(
                        "INSERT INTO joins (tenant, job_id, record) VALUES ($1, $2, $3)
                         ON CONFLICT (tenant, job_id) DO UPDATE SET record = excluded.record",
                        &[&tenant, &job_id, &json(&join)],
                    )
                    .await?;
                let Some(run) = fired else {
                    return Ok(None);
                };
                // The same end told again (its node died before its outcome
                // was written) finds its run there: nothing new to tell.
                let inserted = RunRows::of(&self.node, std::iter::once(&run))
                    .insert_new(transaction)
                    .await?;
                Ok((!inserted.is_empty()).then_some(run))
            })
            .await
        }))
    }
}
