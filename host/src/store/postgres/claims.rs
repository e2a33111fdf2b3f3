//! The cluster's queue in PostgreSQL. A queued run is written as no
//! node's; a node with free slots claims the best due runs in one
//! transaction: it picks candidates with `FOR UPDATE SKIP LOCKED` (two
//! nodes never pick one run, and neither waits for the other), then, per
//! tenant whose runs it picked and that has a `concurrent_runs` limit or
//! exclusive runs among them, takes a transaction lock on the tenant and
//! counts what every node has of it, so claims racing on two nodes cannot
//! together pass a limit or start two exclusive runs of a job. A
//! workflow's step runs are not claimed: they are written as the node's
//! that drives their workflow run, which keeps it in memory. A run
//! stays claimed (its node set) until it finishes; the node's lease
//! stands for its runs' leases: when it runs out, the leader takes them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::database::{PgStore, big, count, json};
use super::runs::decode_run;
use crate::model::Run;
use crate::model::run::Activity;
use crate::store::error::StoreResult;
use crate::store::traits::{JobKey, RunClaims, StopRuns};

/// The channel that new claimable runs notify (the `runs_claimable`
/// trigger does for inserts).
pub const RUNS_CHANNEL: &str = "sandcron_runs";

/// The channel asking nodes to stop runs (a [`StopRuns`] as JSON).
pub const STOP_CHANNEL: &str = "sandcron_stop";

/// Candidates picked beyond what is wanted, for those a limit drops.
const SPARE_CANDIDATES: usize = 16;

/// A run picked to claim.
struct Candidate {
    tenant: String,
    id: String,
    job_id: String,
    exclusive: bool,
    /// Its concurrency group (tenant, key) and the group's limit.
    group: Option<(GroupKey, usize)>,
}

/// A concurrency group: (tenant, key).
type GroupKey = (String, String);

/// Runs claimed now: per tenant, per group, and the jobs with one.
#[derive(Default)]
struct Claimed {
    tenants: HashMap<String, usize>,
    groups: HashMap<GroupKey, usize>,
    jobs: HashSet<JobKey>,
}

/// The candidates to claim, in their order, within what the tenants'
/// limits and the concurrency groups' leave (`claimed`: what nodes have of
/// each locked tenant and group) and not an exclusive run of a job a node
/// has a run of, at most `max`.
fn choose<'a>(
    candidates: &'a [Candidate],
    max: usize,
    limits: &HashMap<String, usize>,
    mut claimed: Claimed,
) -> Vec<&'a Candidate> {
    let mut chosen = Vec::new();
    for candidate in candidates {
        if chosen.len() == max {
            break;
        }
        let job = (candidate.tenant.clone(), candidate.job_id.clone());
        if candidate.exclusive && claimed.jobs.contains(&job) {
            continue;
        }
        let taken = claimed.tenants.get(&candidate.tenant).copied().unwrap_or(0);
        if limits.get(&candidate.tenant).is_some_and(|limit| taken >= *limit) {
            continue;
        }
        if let Some((group, limit)) = &candidate.group
            && claimed.groups.get(group).copied().unwrap_or(0) >= *limit
        {
            continue;
        }
        *claimed.tenants.entry(candidate.tenant.clone()).or_default() += 1;
        if let Some((group, _)) = &candidate.group {
            *claimed.groups.entry(group.clone()).or_default() += 1;
        }
        claimed.jobs.insert(job);
        chosen.push(candidate);
    }
    chosen
}

/// Takes the transaction locks that keep claims racing on two nodes
/// within the rules: one per tenant with a `concurrent_runs` limit among
/// the candidates, one per concurrency group of a candidate, one per job
/// of an exclusive candidate (all in one order, so two claims cannot wait
/// for each other). Then counts what every node has, claims included: of
/// each limited tenant, of each group, and which exclusive candidates'
/// jobs have a run on a node.
async fn lock_and_count(
    transaction: &deadpool_postgres::Transaction<'_>,
    candidates: &[Candidate],
    limits: &HashMap<String, usize>,
) -> StoreResult<Claimed> {
    let mut tenants: Vec<&str> = candidates
        .iter()
        .filter(|candidate| limits.contains_key(&candidate.tenant))
        .map(|candidate| candidate.tenant.as_str())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let exclusive: HashSet<(&str, &str)> = candidates
        .iter()
        .filter(|candidate| candidate.exclusive)
        .map(|candidate| (candidate.tenant.as_str(), candidate.job_id.as_str()))
        .collect();
    let (job_tenants, jobs): (Vec<&str>, Vec<&str>) = exclusive.into_iter().unzip();
    let groups: HashSet<(&str, &str)> = candidates
        .iter()
        .filter_map(|candidate| candidate.group.as_ref())
        .map(|((tenant, key), _)| (tenant.as_str(), key.as_str()))
        .collect();
    let (group_tenants, group_keys): (Vec<&str>, Vec<&str>) = groups.into_iter().unzip();
    let mut claimed = Claimed::default();
    if tenants.is_empty() && jobs.is_empty() && group_keys.is_empty() {
        return Ok(claimed);
    }
    let names: Vec<String> = tenants
        .iter()
        .map(|tenant| format!("sandcron.claims:{tenant}"))
        .chain(
            job_tenants
                .iter()
                .zip(&jobs)
                .map(|(tenant, job)| format!("sandcron.claims:{tenant}/{job}")),
        )
        .chain(
            group_tenants
                .iter()
                .zip(&group_keys)
                .map(|(tenant, key)| format!("sandcron.claims:{tenant}#{key}")),
        )
        .collect();
    transaction
        .execute(
            "SELECT count(pg_advisory_xact_lock(key)) FROM (
                 SELECT DISTINCT hashtextextended(name, 0) AS key FROM unnest($1::text[]) AS name ORDER BY key
             ) AS locks",
            &[&names],
        )
        .await?;
    let rows = transaction
        .query(
            "SELECT tenant, job_id, count(*) FROM runs
             WHERE NOT finished AND node IS NOT NULL AND tenant = ANY($1::text[])
             GROUP BY tenant, job_id
             UNION ALL
             SELECT runs.tenant, runs.job_id, 0 FROM runs
                 JOIN unnest($2::text[], $3::text[]) AS job (tenant, id)
                     ON runs.tenant = job.tenant AND runs.job_id = job.id
             WHERE NOT runs.finished AND runs.node IS NOT NULL",
            &[&tenants, &job_tenants, &jobs],
        )
        .await?;
    for row in &rows {
        let (tenant, job_id): (String, String) = (row.get(0), row.get(1));
        let held = count(row.get(2)) as usize;
        if held > 0 {
            *claimed.tenants.entry(tenant.clone()).or_default() += held;
        }
        claimed.jobs.insert((tenant, job_id));
    }
    if !group_keys.is_empty() {
        let rows = transaction
            .query(
                "SELECT runs.tenant, runs.concurrency_key, count(*) FROM runs
                     JOIN unnest($1::text[], $2::text[]) AS grouped (tenant, key)
                         ON runs.tenant = grouped.tenant AND runs.concurrency_key = grouped.key
                 WHERE NOT runs.finished AND runs.node IS NOT NULL
                 GROUP BY runs.tenant, runs.concurrency_key",
                &[&group_tenants, &group_keys],
            )
            .await?;
        for row in &rows {
            claimed
                .groups
                .insert((row.get(0), row.get(1)), count(row.get(2)) as usize);
        }
    }
    Ok(claimed)
}

impl PgStore {
    /// Gives this node's claimed, unstarted runs back to the queue: those
    /// of `only` (tenants, ids), or all of them; the others are told.
    pub(super) async fn release(&self, only: Option<(&[&str], &[&str])>) -> StoreResult<()> {
        let node: &str = &self.node;
        self.transact(async |transaction| {
            let released = match only {
                Some((tenants, ids)) => {
                    transaction
                        .execute(
                            "UPDATE runs SET node = NULL FROM unnest($2::text[], $3::text[]) AS run (tenant, id)
                             WHERE runs.tenant = run.tenant AND runs.id = run.id AND runs.node = $1
                                 AND runs.status = 'queued' AND NOT runs.step",
                            &[&node, &tenants, &ids],
                        )
                        .await?
                }
                None => {
                    transaction
                        .execute(
                            "UPDATE runs SET node = NULL
                             WHERE node = $1 AND NOT finished AND status = 'queued' AND NOT step",
                            &[&node],
                        )
                        .await?
                }
            };
            if released > 0 {
                transaction
                    .execute("SELECT pg_notify($1, '')", &[&RUNS_CHANNEL])
                    .await?;
            }
            Ok(())
        })
        .await
    }
}

impl RunClaims for PgStore {
    fn claim_runs(
        &self,
        max: usize,
        now: DateTime<Utc>,
        limits: &HashMap<String, usize>,
    ) -> StoreResult<(Vec<Run>, bool)> {
        if max == 0 {
            return Ok((Vec::new(), false));
        }
        let node: &str = &self.node;
        let incarnation: &str = &self.incarnation;
        let picked = big((max + SPARE_CANDIDATES) as u64);
        let limited: Vec<&str> = limits.keys().map(String::as_str).collect();
        self.block(|| async {
            self.transact(async |transaction| {
                // Tenants at their limit already: none of their runs is picked.
                let full = if limited.is_empty() {
                    Vec::new()
                } else {
                    let rows = transaction
                        .query(
                            "SELECT tenant, count(*) FROM runs
                             WHERE NOT finished AND node IS NOT NULL AND tenant = ANY($1::text[])
                             GROUP BY tenant",
                            &[&limited],
                        )
                        .await?;
                    rows.iter()
                        .filter(|row| {
                            let tenant: &str = row.get(0);
                            limits
                                .get(tenant)
                                .is_some_and(|limit| count(row.get(1)) >= *limit as u64)
                        })
                        .map(|row| row.get::<_, String>(0))
                        .collect()
                };
                // What the concurrency groups hold: a run of a group at its
                // (the run's own) limit is not picked either.
                let held_groups = transaction
                    .query(
                        "SELECT tenant, concurrency_key, count(*) FROM runs
                         WHERE concurrency_key IS NOT NULL AND NOT finished AND node IS NOT NULL
                         GROUP BY tenant, concurrency_key",
                        &[],
                    )
                    .await?;
                let group_tenants: Vec<String> = held_groups.iter().map(|row| row.get(0)).collect();
                let group_keys: Vec<String> = held_groups.iter().map(|row| row.get(1)).collect();
                let group_held: Vec<i64> = held_groups.iter().map(|row| row.get(2)).collect();
                let statement = transaction
                    .prepare_cached(
                        "SELECT tenant, id, job_id, exclusive, concurrency_key, concurrency_limit FROM runs
                         WHERE status = 'queued' AND node IS NULL AND due_at <= $1 AND NOT (tenant = ANY($3::text[]))
                             AND (concurrency_key IS NULL OR NOT EXISTS (
                                 SELECT 1 FROM unnest($4::text[], $5::text[], $6::bigint[]) AS held_group (tenant, key, held)
                                 WHERE held_group.tenant = runs.tenant AND held_group.key = runs.concurrency_key
                                     AND held_group.held >= runs.concurrency_limit))
                             AND NOT (exclusive AND EXISTS (
                                 SELECT 1 FROM runs AS other WHERE other.tenant = runs.tenant
                                     AND other.job_id = runs.job_id AND NOT other.finished
                                     AND other.node IS NOT NULL))
                         ORDER BY priority DESC, due_at, job_id, id
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED",
                    )
                    .await?;
                let rows = transaction
                    .query(&statement, &[&now, &picked, &full, &group_tenants, &group_keys, &group_held])
                    .await?;
                let more = rows.len() > max;
                let candidates: Vec<Candidate> = rows
                    .iter()
                    .map(|row| Candidate {
                        tenant: row.get(0),
                        id: row.get(1),
                        job_id: row.get(2),
                        exclusive: row.get(3),
                        group: row.get::<_, Option<String>>(4).map(|key| {
                            let limit = row.get::<_, Option<i32>>(5).unwrap_or(1).max(1);
                            ((row.get::<_, String>(0), key), limit as usize)
                        }),
                    })
                    .collect();
                let claimed = lock_and_count(transaction, &candidates, limits).await?;
                let chosen = choose(&candidates, max, limits, claimed);
                if chosen.is_empty() {
                    return Ok((Vec::new(), false));
                }
                let tenants: Vec<&str> = chosen.iter().map(|candidate| candidate.tenant.as_str()).collect();
                let ids: Vec<&str> = chosen.iter().map(|candidate| candidate.id.as_str()).collect();
                // Only while this process is the node's live incarnation.
                let rows = transaction
                    .query(
                        "UPDATE runs SET node = $1 FROM unnest($3::text[], $4::text[]) AS run (tenant, id)
                         WHERE runs.tenant = run.tenant AND runs.id = run.id
                             AND EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND incarnation = $2)
                         RETURNING runs.tenant, runs.id, runs.record, runs.node",
                        &[&node, &incarnation, &tenants, &ids],
                    )
                    .await?;
                let runs = rows.iter().map(decode_run).collect::<StoreResult<Vec<Run>>>()?;
                let more = more || (chosen.len() < candidates.len() && !runs.is_empty());
                Ok((runs, more))
            })
            .await
        })
    }

    fn ahead_runs(
        &self,
        tenant: Option<&str>,
        job_id: Option<&str>,
        not_due_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Vec<Run>> {
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT tenant, id, record, node FROM runs
                     WHERE status = 'queued' AND node IS NULL AND NOT step
                         AND ($1::timestamptz IS NULL OR due_at > $1)
                         AND ($2::text IS NULL OR tenant = $2) AND ($3::text IS NULL OR job_id = $3)",
                    &[&not_due_at, &tenant, &job_id],
                )
                .await?;
            let mut ahead = Vec::new();
            for row in &rows {
                let run = decode_run(row)?;
                // Ahead of its fire's instant (due_at adds the jitter).
                if run.is_recorded_ahead() && not_due_at.is_none_or(|now| run.scheduled_at > now) {
                    ahead.push(run);
                }
            }
            Ok(ahead)
        })
    }

    fn claim_run(&self, tenant: &str, id: &str) -> StoreResult<bool> {
        let node: &str = &self.node;
        self.block(|| async {
            let claimed = self
                .client()
                .await?
                .execute(
                    "UPDATE runs SET node = $3 WHERE tenant = $1 AND id = $2 AND node IS NULL AND status = 'queued'",
                    &[&tenant, &id, &node],
                )
                .await?;
            Ok(claimed > 0)
        })
    }

    fn release_runs(&self, runs: &[JobKey]) -> StoreResult<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = runs.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let ids: Vec<&str> = runs.iter().map(|(_, id)| id.as_str()).collect();
        self.block(|| self.release(Some((&tenants, &ids))))
    }

    fn job_activities(&self, jobs: &[JobKey]) -> StoreResult<HashMap<JobKey, Activity>> {
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        let tenants: Vec<&str> = jobs.iter().map(|(tenant, _)| tenant.as_str()).collect();
        let ids: Vec<&str> = jobs.iter().map(|(_, id)| id.as_str()).collect();
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT runs.tenant, runs.job_id, count(*) FILTER (WHERE runs.node IS NULL),
                         count(*) FILTER (WHERE runs.node IS NOT NULL)
                     FROM runs JOIN unnest($1::text[], $2::text[]) AS job (tenant, id)
                         ON runs.tenant = job.tenant AND runs.job_id = job.id
                     WHERE NOT runs.finished
                     GROUP BY runs.tenant, runs.job_id",
                )
                .await?;
            let rows = client.query(&statement, &[&tenants, &ids]).await?;
            Ok(rows
                .iter()
                .map(|row| {
                    let activity = Activity {
                        waiting: count(row.get(2)) as usize,
                        running: count(row.get(3)) as usize,
                    };
                    ((row.get(0), row.get(1)), activity)
                })
                .collect())
        })
    }

    fn stop_runs(&self, stop: &StopRuns) -> StoreResult<()> {
        let payload = String::from_utf8(json(stop)).unwrap_or_default();
        self.block(|| async {
            self.client()
                .await?
                .execute("SELECT pg_notify($1, $2)", &[&STOP_CHANNEL, &payload])
                .await?;
            Ok(())
        })
    }

    fn waiting_runs(&self, tenant: &str) -> StoreResult<usize> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_one(
                    "SELECT count(*) FROM runs WHERE tenant = $1 AND NOT finished AND status = 'queued'",
                    &[&tenant],
                )
                .await?;
            Ok(count(row.get(0)) as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(tenant: &str, id: &str, job: &str, exclusive: bool) -> Candidate {
        Candidate {
            tenant: tenant.to_string(),
            id: id.to_string(),
            job_id: job.to_string(),
            exclusive,
            group: None,
        }
    }

    fn held(tenants: &[(&str, usize)], jobs: &[(&str, &str)]) -> Claimed {
        Claimed {
            tenants: tenants
                .iter()
                .map(|(tenant, count)| (tenant.to_string(), *count))
                .collect(),
            groups: HashMap::new(),
            jobs: jobs
                .iter()
                .map(|(tenant, job)| (tenant.to_string(), job.to_string()))
                .collect(),
        }
    }

    fn ids(chosen: &[&Candidate]) -> Vec<String> {
        chosen.iter().map(|candidate| candidate.id.clone()).collect()
    }

    #[test]
    fn a_tenant_at_its_limit_gives_way_to_the_next_candidates() {
        let candidates = [
            candidate("a", "1", "j", false),
            candidate("a", "2", "j", false),
            candidate("a", "3", "j", false),
            candidate("b", "4", "k", false),
        ];
        let limits = HashMap::from([("a".to_string(), 3)]);
        let chosen = choose(&candidates, 10, &limits, held(&[("a", 1)], &[]));
        assert_eq!(ids(&chosen), ["1", "2", "4"]);
        let chosen = choose(&candidates, 2, &limits, Claimed::default());
        assert_eq!(ids(&chosen), ["1", "2"], "no more than asked for");
    }

    #[test]
    fn an_exclusive_run_waits_while_its_job_has_a_run_with_a_node() {
        let candidates = [
            candidate("a", "1", "j", true),
            candidate("a", "2", "j", true),
            candidate("a", "3", "k", true),
            candidate("a", "4", "j", false),
        ];
        let chosen = choose(&candidates, 10, &HashMap::new(), Claimed::default());
        assert_eq!(
            ids(&chosen),
            ["1", "3", "4"],
            "one exclusive run of j, beside a run that allows overlap"
        );
        let chosen = choose(&candidates, 10, &HashMap::new(), held(&[], &[("a", "k")]));
        assert_eq!(ids(&chosen), ["1", "4"]);
    }

    #[test]
    fn a_concurrency_group_at_its_limit_gives_way_to_runs_of_other_groups_and_none() {
        let grouped = |id: &str, tenant: &str, key: &str| Candidate {
            group: Some(((tenant.to_string(), key.to_string()), 2)),
            ..candidate(tenant, id, id, false)
        };
        let candidates = [
            grouped("1", "a", "db"),
            grouped("2", "a", "db"),
            grouped("3", "a", "db"),
            grouped("4", "b", "db"),
            candidate("a", "5", "free", false),
        ];
        let chosen = choose(&candidates, 10, &HashMap::new(), Claimed::default());
        assert_eq!(
            ids(&chosen),
            ["1", "2", "4", "5"],
            "two of a's db group, b's group is its own"
        );
        let mut claimed = Claimed::default();
        claimed.groups.insert(("a".to_string(), "db".to_string()), 1);
        let chosen = choose(&candidates, 10, &HashMap::new(), claimed);
        assert_eq!(ids(&chosen), ["1", "4", "5"], "one place left on the cluster");
    }
}
