//! What the other nodes say, heard on a connection of its own: a job
//! changed (`sandcron_jobs`: the leader looks at its due jobs again), the
//! leader resigned (`sandcron_leader`: the others try for the lease at
//! once), a tenant changed (`sandcron_tenants`: its quotas are read
//! again), runs wait for a node (`sandcron_runs`: claim them), events
//! were appended (`sandcron_events`: read them), runs are to stop
//! (`sandcron_stop`: those this node runs), the scheduler was paused or
//! resumed (`sandcron_pause`: read which). The connection is made
//! again with backoff when it drops, and each time it listens again the
//! caller is told, since what was said meanwhile was missed.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use super::claims::{RUNS_CHANNEL, STOP_CHANNEL};
use super::cluster::{LEADER_CHANNEL, PAUSE_CHANNEL};
use super::database::PgStore;
use super::events::EVENTS_CHANNEL;
use crate::store::traits::ClusterNotice;

/// The channel job (and workflow) writes notify.
pub const JOBS_CHANNEL: &str = "sandcron_jobs";

/// The channel tenant writes notify.
pub const TENANTS_CHANNEL: &str = "sandcron_tenants";

/// The longest wait between attempts to connect again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl PgStore {
    /// Hears the other nodes' notices from now on, telling `on` of each.
    pub(super) fn hear(&self, on: Arc<dyn Fn(ClusterNotice) + Send + Sync>) {
        let config = self.config.clone();
        let node = self.node.clone();
        let hooks = self.hooks.clone();
        self.runtime_handle().spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match config.connect(NoTls).await {
                    Ok((client, mut connection)) => {
                        let (sender, mut heard) = tokio::sync::mpsc::unbounded_channel();
                        let driver = tokio::spawn(async move {
                            let mut messages =
                                futures_util::stream::poll_fn(move |context| connection.poll_message(context));
                            while let Some(Ok(message)) = messages.next().await {
                                if let AsyncMessage::Notification(notice) = message
                                    && sender.send(notice).is_err()
                                {
                                    return;
                                }
                            }
                        });
                        let listening = client
                            .batch_execute(&format!(
                                "LISTEN {JOBS_CHANNEL}; LISTEN {LEADER_CHANNEL}; LISTEN {TENANTS_CHANNEL}; LISTEN {RUNS_CHANNEL}; LISTEN {EVENTS_CHANNEL}; LISTEN {STOP_CHANNEL}; LISTEN {PAUSE_CHANNEL}"
                            ))
                            .await;
                        match listening {
                            Ok(()) => {
                                backoff = Duration::from_millis(100);
                                hooks.forget_all(true);
                                on(ClusterNotice::Listening);
                                while let Some(notice) = heard.recv().await {
                                    if notice.payload() == &*node {
                                        continue;
                                    }
                                    match notice.channel() {
                                        JOBS_CHANNEL => {
                                            hooks.forget_all(true);
                                            on(ClusterNotice::JobChanged);
                                        }
                                        LEADER_CHANNEL => on(ClusterNotice::LeaderResigned),
                                        TENANTS_CHANNEL => on(ClusterNotice::TenantChanged),
                                        RUNS_CHANNEL => on(ClusterNotice::RunsQueued(
                                            notice.payload().parse().ok().and_then(DateTime::from_timestamp_millis),
                                        )),
                                        EVENTS_CHANNEL => on(ClusterNotice::EventsAppended),
                                        PAUSE_CHANNEL => on(ClusterNotice::PauseChanged),
                                        STOP_CHANNEL => match serde_json::from_str(notice.payload()) {
                                            Ok(stop) => on(ClusterNotice::Stop(stop)),
                                            Err(error) => tracing::warn!(%error, "a request to stop runs did not read"),
                                        },
                                        _ => {}
                                    }
                                }
                                hooks.forget_all(false);
                                tracing::warn!("the connection hearing the other nodes dropped; connecting again");
                            }
                            Err(error) => {
                                hooks.forget_all(false);
                                tracing::warn!(%error, "cannot listen for the other nodes' notices");
                            }
                        }
                        driver.abort();
                    }
                    Err(error) => tracing::warn!(%error, "cannot connect to hear the other nodes' notices"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}
