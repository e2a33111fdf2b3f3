//! Several daemons on one PostgreSQL database. Each node holds a lease on
//! its row, renewed while it lives; one node at a time holds the leader
//! lease and is the one that plans fires, sweeps old runs, sends digests
//! and takes over the runs of nodes whose lease ran out. Everything else (the
//! API, running the runs a node queued or took) every node does.
//!
//! A leader trusts its lease only until the renewal that granted it was
//! sent plus the lease's length less a margin, on its own monotonic clock:
//! past that it stops planning at once, renewed or not, while the database
//! (whose clock says when a lease runs out) may still count it as leader a
//! little longer. Its fires are also refused by the database once another
//! node holds the lease (see `JobStore::record_fires`), and a fire's run id
//! derived from (job, instant) is the last guard. A node that finds its own
//! row gone (declared dead, its runs taken over) exits, for its supervisor
//! to start it again: the runs it still has belong to another node now.
//!
//! On sled there is one node, which always leads ([`Leadership::single`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};

use crate::store::{ClusterNotice, ClusterStore, NodeRecord, StopRuns, StoreError, StoreResult, TakenOver};
use crate::sync::lock;

/// How long a node's lease lasts unrenewed: a dead node's runs are taken
/// over this long after its last renewal (and up to a reaper period more).
pub const NODE_TTL: Duration = Duration::from_millis(1500);
/// How often a node renews its own lease.
const NODE_RENEWAL: Duration = Duration::from_millis(250);
/// How long the leader lease lasts unrenewed.
pub const LEADER_TTL: Duration = Duration::from_millis(1000);
/// How often the leader renews its lease.
const LEADER_RENEWAL: Duration = Duration::from_millis(200);
/// How often the others try for it.
const FOLLOWER_TRY: Duration = Duration::from_millis(100);
/// How much sooner than the database the leader stops trusting its lease.
const TRUST_MARGIN: Duration = Duration::from_millis(250);
/// How often the leader looks for dead nodes.
const REAPER_PERIOD: Duration = Duration::from_millis(250);
/// The exit code of a node that found itself declared dead.
pub const DECLARED_DEAD_EXIT_CODE: i32 = 75;

/// Whether this node leads: what the leader-only work waits on.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Sender<bool>,
}

impl Leadership {
    /// A node that always leads (one daemon, on sled).
    pub fn single() -> Arc<Leadership> {
        Arc::new(Leadership {
            leading: watch::Sender::new(true),
        })
    }

    /// A node of a cluster: not leading until elected.
    pub fn follower() -> Arc<Leadership> {
        Arc::new(Leadership {
            leading: watch::Sender::new(false),
        })
    }

    /// True while this node leads.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Waits until this node leads.
    pub async fn until_leader(&self) {
        let mut leading = self.leading.subscribe();
        let _ = leading.wait_for(|leading| *leading).await;
    }

    /// Changes of leadership, as they happen.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn set(&self, leading: bool) -> bool {
        self.leading.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        })
    }
}

/// What a node tells the cluster of itself, and does with what it takes
/// over.
pub struct Hooks {
    /// Runs this node is running now (shown in `GET /v1/cluster`).
    pub running_runs: RunningRuns,
    /// Resumes a dead node's unfinished runs and workflow runs here.
    pub take_over: Box<dyn Fn(TakenOver) -> BoxFuture<'static, ()> + Send + Sync>,
    /// Another node wrote a job or a workflow.
    pub job_changed: Arc<dyn Fn() + Send + Sync>,
    /// Another node wrote a tenant.
    pub tenant_changed: Arc<dyn Fn() + Send + Sync>,
    /// Runs wait in the cluster's queue for a node to claim them; the
    /// earliest is due then, if told.
    pub runs_queued: Arc<dyn Fn(Option<DateTime<Utc>>) + Send + Sync>,
    /// Events were appended to the cluster's event log.
    pub events_appended: Arc<dyn Fn() + Send + Sync>,
    /// Runs are to stop: those this node runs.
    pub stop_runs: Arc<dyn Fn(StopRuns) + Send + Sync>,
    /// The scheduler was paused or resumed through a node: read which.
    pub pause_changed: Arc<dyn Fn() + Send + Sync>,
}

/// Runs this node is running now, as the hooks tell.
type RunningRuns = Box<dyn Fn() -> usize + Send + Sync>;

/// This node's part in the cluster: its lease, the leader lease, and (while
/// it leads) taking over dead nodes.
pub struct Cluster {
    store: Arc<dyn ClusterStore>,
    leadership: Arc<Leadership>,
    /// Until when the leader lease is trusted (see the module's docs).
    trusted_until: Mutex<Option<Instant>>,
    /// Since when this node has led without a break: it takes dead nodes
    /// over only after leading a node lease's length, so that after an
    /// outage every live node has renewed its lease first.
    leading_since: Mutex<Option<Instant>>,
    /// This node's running runs, once the executor is there.
    running_runs: Mutex<Option<RunningRuns>>,
    /// Wakes the lease loop (a leader resigned: try now).
    try_now: Notify,
    /// No more tries for the leader lease (stopping).
    resigned: AtomicBool,
    /// The last try for the leader lease could not reach the database.
    lead_failing: AtomicBool,
    /// No more renewals of this node's lease (stopped).
    stopping: AtomicBool,
}

impl Cluster {
    /// This node in the cluster of `store` (not joined yet).
    pub fn new(store: Arc<dyn ClusterStore>) -> Arc<Cluster> {
        Arc::new(Cluster {
            store,
            leadership: Leadership::follower(),
            trusted_until: Mutex::new(None),
            leading_since: Mutex::new(None),
            running_runs: Mutex::new(None),
            try_now: Notify::new(),
            resigned: AtomicBool::new(false),
            lead_failing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        })
    }

    /// Whether this node leads.
    pub fn leadership(&self) -> Arc<Leadership> {
        self.leadership.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.store.node_id()
    }

    /// Registers this node and renews its lease from now on (before the
    /// daemon's start-up work, however long it takes). A node of the same
    /// id whose lease is still running is waited for up to the lease's
    /// length (this node's last life, killed a moment ago); refused if it
    /// still renews by then (two nodes were given one id).
    pub fn join(self: &Arc<Self>) -> StoreResult<()> {
        let deadline = Instant::now() + NODE_TTL + NODE_RENEWAL;
        loop {
            match self.store.join_cluster(NODE_TTL) {
                Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(()) => break,
                other => return other,
            }
        }
        let cluster = self.clone();
        tokio::spawn(async move { cluster.renewal_loop().await });
        Ok(())
    }

    /// Tries for the leader lease once, now (at start, so a node that can
    /// lead does before its first work).
    pub fn try_to_lead(&self) {
        self.attempt();
    }

    /// Every node, with which leads.
    pub fn nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        self.store.nodes()
    }

    /// True when no other node's lease is live: this node, starting, is
    /// the cluster (its last life's fires recorded ahead are its own to
    /// plan again; no other leader fires those jobs meanwhile).
    pub fn alone(&self) -> StoreResult<bool> {
        let live_since = Utc::now() - chrono::Duration::from_std(NODE_TTL).unwrap_or_default();
        Ok(self
            .store
            .nodes()?
            .iter()
            .all(|node| node.id == self.node_id() || node.last_seen < live_since))
    }

    /// Pauses (or resumes) every node's scheduler.
    pub fn set_paused(&self, paused: bool) -> StoreResult<()> {
        self.store.set_paused(paused)
    }

    /// Whether the cluster's scheduler is paused.
    pub fn paused(&self) -> StoreResult<bool> {
        self.store.paused()
    }

    /// Starts the loops: the leader lease, the trust check and the
    /// reaper; and hears the other nodes.
    pub fn start(self: &Arc<Self>, hooks: Hooks) {
        let Hooks {
            running_runs,
            take_over,
            job_changed,
            tenant_changed,
            runs_queued,
            events_appended,
            stop_runs,
            pause_changed,
        } = hooks;
        *lock(&self.running_runs) = Some(running_runs);
        let heard = Arc::downgrade(self);
        self.store.listen(Arc::new(move |notice| match notice {
            ClusterNotice::LeaderResigned => {
                if let Some(cluster) = heard.upgrade() {
                    cluster.try_now.notify_one();
                }
            }
            ClusterNotice::JobChanged => job_changed(),
            ClusterNotice::TenantChanged => tenant_changed(),
            ClusterNotice::RunsQueued(due) => runs_queued(due),
            ClusterNotice::EventsAppended => events_appended(),
            ClusterNotice::Stop(stop) => stop_runs(stop),
            ClusterNotice::PauseChanged => pause_changed(),
            // What was said while not listening was missed.
            ClusterNotice::Listening => {
                tenant_changed();
                job_changed();
                runs_queued(None);
                events_appended();
                pause_changed();
            }
        }));
        let cluster = self.clone();
        tokio::spawn(async move { cluster.lease_loop().await });
        let cluster = self.clone();
        tokio::spawn(async move { cluster.trust_loop().await });
        let cluster = self.clone();
        tokio::spawn(async move { cluster.reaper_loop(take_over).await });
    }

    /// One attempt at the leader lease; what it says of leading.
    fn attempt(&self) -> bool {
        if self.resigned.load(Ordering::SeqCst) {
            return false;
        }
        let sent = Instant::now();
        let trusted_until = sent + LEADER_TTL - TRUST_MARGIN;
        let leading = match self.store.lead(LEADER_TTL) {
            // A grant that took too long to come back is not trusted.
            Ok(true) if Instant::now() < trusted_until && !self.resigned.load(Ordering::SeqCst) => {
                *lock(&self.trusted_until) = Some(trusted_until);
                if self.leadership.set(true) {
                    *lock(&self.leading_since) = Some(Instant::now());
                    tracing::info!(node = self.node_id(), "this node leads the cluster");
                }
                true
            }
            Ok(true) => self.leadership.is_leader(),
            Ok(false) => {
                self.stop_leading("another node holds the leader lease");
                false
            }
            Err(error) => {
                // Once per streak of failures (a database outage).
                if !self.lead_failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(%error, "cannot reach the leader lease; trying again");
                }
                return self.leadership.is_leader();
            }
        };
        self.lead_failing.store(false, Ordering::SeqCst);
        leading
    }

    fn stop_leading(&self, why: &str) {
        *lock(&self.trusted_until) = None;
        *lock(&self.leading_since) = None;
        if self.leadership.set(false) {
            tracing::warn!(node = self.node_id(), "this node stopped leading: {why}");
        }
    }

    async fn lease_loop(&self) {
        while !self.resigned.load(Ordering::SeqCst) {
            let leading = self.attempt();
            let pause = if leading { LEADER_RENEWAL } else { FOLLOWER_TRY };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.try_now.notified() => {}
            }
        }
    }

    /// Renews this node's lease until it stops; exits the process if the
    /// lease was found gone (see the module's docs).
    async fn renewal_loop(&self) {
        let mut failing = false;
        while !self.stopping.load(Ordering::SeqCst) {
            let running = lock(&self.running_runs).as_ref().map_or(0, |count| count());
            match self.store.renew_node(NODE_TTL, running) {
                Ok(true) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("this node's lease is renewed again");
                    }
                }
                Ok(false) => {
                    tracing::error!(
                        node = self.node_id(),
                        exit_code = DECLARED_DEAD_EXIT_CODE,
                        "this node's lease ran out and another node took its runs over; exiting to start again"
                    );
                    std::process::exit(DECLARED_DEAD_EXIT_CODE);
                }
                Err(error) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "cannot renew this node's lease; trying again");
                    }
                }
            }
            tokio::time::sleep(NODE_RENEWAL).await;
        }
    }

    /// Stops leading once the lease is no longer trusted, whether or not a
    /// renewal is stuck on the way.
    async fn trust_loop(&self) {
        while !self.stopping.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let expired = lock(&self.trusted_until).is_some_and(|until| Instant::now() >= until);
            if expired {
                self.stop_leading("its lease was not renewed in time");
            }
        }
    }

    async fn reaper_loop(&self, take_over: Box<dyn Fn(TakenOver) -> BoxFuture<'static, ()> + Send + Sync>) {
        while !self.stopping.load(Ordering::SeqCst) {
            self.leadership.until_leader().await;
            let settled = lock(&self.leading_since).is_some_and(|since| since.elapsed() >= NODE_TTL);
            if settled {
                match self.store.take_over_dead_nodes() {
                    Ok(taken) => {
                        for over in taken {
                            tracing::warn!(
                                dead = %over.node,
                                runs = over.runs.len(),
                                workflow_runs = over.workflow_runs.len(),
                                "a node's lease ran out: its runs go on here"
                            );
                            take_over(over).await;
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot look for dead nodes"),
                }
            }
            tokio::time::sleep(REAPER_PERIOD).await;
        }
    }

    /// Stops leading for good and gives the leader lease up (the others
    /// take it at once): the first step of a clean stop, before this
    /// node's runs are waited for.
    pub fn resign(&self) {
        self.resigned.store(true, Ordering::SeqCst);
        self.stop_leading("it is stopping");
        if let Err(error) = self.store.resign() {
            tracing::warn!(%error, "cannot give the leader lease up");
        }
    }

    /// The last step of a clean stop, once this node's runs are done:
    /// resigns if it has not, and removes this node's row.
    pub fn leave(&self) {
        if !self.resigned.load(Ordering::SeqCst) {
            self.resign();
        }
        self.stopping.store(true, Ordering::SeqCst);
        if let Err(error) = self.store.leave_cluster() {
            tracing::warn!(%error, "cannot remove this node from the cluster");
        }
    }
}
