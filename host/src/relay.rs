//! In a cluster, every node's events on every node's streams. A writer
//! appends this node's events to the cluster's event log (what came within
//! one append, up to [`BATCH`] at a time), and a reader publishes what
//! every node appended, with the log's ids, on the cluster's bus, which
//! the node's `/v1/events` streams read; a stream resuming after an id
//! reads what it missed from the log, so it resumes on any node. Webhooks,
//! e-mails and metrics stay on the node's own bus: each event is delivered
//! once, by the node it happened on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::events::{BUFFERED_EVENTS, Event, EventBus, EventData, Gap, KINDS};
use crate::store::{EventLog, StoreError, StoredEvent};
use crate::sync::lock;

/// Events appended at once, at most.
const BATCH: usize = 512;

/// Events kept in the log (the oldest go as new ones come).
const KEPT: u64 = 100_000;

/// Events appended between two prunes of the log.
const PRUNE_EVERY: u64 = 5_000;

/// Events waiting for the log while it cannot be reached, at most; the
/// oldest go first past it (the node's own streams have them meanwhile).
const MAX_PENDING: usize = 100_000;

/// How often the reader looks without being told.
const POLL: Duration = Duration::from_millis(250);

/// The longest wait between tries when the log cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Events read from the log at once.
const READ: usize = 1_000;

/// An event as the cluster's event log keeps it.
fn stored(event: &Event) -> StoredEvent {
    StoredEvent {
        id: event.id,
        tenant: event.tenant.clone(),
        kind: event.kind.to_string(),
        at: event.at,
        data: serde_json::to_vec(&event.data).unwrap_or_default(),
    }
}

/// The event the cluster's event log keeps; None for a kind or data this
/// build does not know (written by a newer node).
fn from_stored(stored: StoredEvent) -> Option<Event> {
    let kind = KINDS.into_iter().find(|kind| *kind == stored.kind)?;
    let data = match kind.split('.').next() {
        Some("run") => EventData::Run(serde_json::from_slice(&stored.data).ok()?),
        Some("job") => EventData::Job(serde_json::from_slice(&stored.data).ok()?),
        _ => EventData::Workflow(serde_json::from_slice(&stored.data).ok()?),
    };
    Some(Event {
        id: stored.id,
        tenant: stored.tenant,
        kind,
        at: stored.at,
        data,
    })
}

/// The relay between this node's events, the log and the cluster's bus.
pub struct Relay {
    log: Arc<dyn EventLog>,
    shared: Arc<EventBus>,
    /// This node's events, from the moment the relay was made, until the
    /// writer takes them.
    local: Mutex<Option<mpsc::UnboundedReceiver<Arc<Event>>>>,
    /// Events were appended (a NOTIFY came): read them.
    appended: Notify,
}

impl Relay {
    /// A relay of `local`'s events from now on to `log`, whose cluster bus
    /// starts empty.
    pub fn new(log: Arc<dyn EventLog>, local: &EventBus) -> Arc<Relay> {
        let (sender, events) = mpsc::unbounded_channel();
        local.tap(sender);
        Arc::new(Relay {
            log,
            shared: Arc::new(EventBus::new(BUFFERED_EVENTS, chrono::Utc::now())),
            local: Mutex::new(Some(events)),
            appended: Notify::new(),
        })
    }

    /// The cluster's bus: every node's events, with the log's ids.
    pub fn shared(&self) -> &Arc<EventBus> {
        &self.shared
    }

    /// Another node appended events: read them now.
    pub fn appended(&self) {
        self.appended.notify_one();
    }

    /// Starts the writer and the reader (once).
    pub fn start(self: &Arc<Self>) {
        let Some(events) = lock(&self.local).take() else {
            return;
        };
        let relay = self.clone();
        tokio::spawn(async move { relay.write_loop(events).await });
        let relay = self.clone();
        tokio::spawn(async move { relay.read_loop().await });
    }

    /// What a stream of `tenant` resuming after `last_seen` missed, from
    /// the log: the newest [`BUFFERED_EVENTS`] of them, and a gap when
    /// there were more.
    pub async fn missed(&self, tenant: &str, last_seen: u64) -> Result<(Vec<Arc<Event>>, Option<Gap>), StoreError> {
        let (log, tenant_name) = (self.log.clone(), tenant.to_string());
        let stored =
            tokio::task::spawn_blocking(move || log.newest_events_after(&tenant_name, last_seen, BUFFERED_EVENTS))
                .await
                .map_err(|error| StoreError::Backend(format!("reading events failed: {error}")))??;
        let gap = (stored.len() == BUFFERED_EVENTS)
            .then(|| stored.first().map(|event| Gap { oldest: event.id }))
            .flatten();
        let events = stored.into_iter().filter_map(from_stored).map(Arc::new).collect();
        Ok((events, gap))
    }

    async fn write_loop(self: Arc<Self>, mut events: mpsc::UnboundedReceiver<Arc<Event>>) {
        let mut pending: Vec<StoredEvent> = Vec::new();
        let mut since_prune = 0;
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        loop {
            if pending.is_empty() {
                match events.recv().await {
                    Some(event) => pending.push(stored(&event)),
                    None => return,
                }
            }
            while let Ok(event) = events.try_recv() {
                pending.push(stored(&event));
            }
            if pending.len() > MAX_PENDING {
                let dropped = pending.len() - MAX_PENDING;
                pending.drain(..dropped);
                tracing::warn!(dropped, "events the cluster's log could not take were dropped");
            }
            let batch: Vec<StoredEvent> = pending.drain(..pending.len().min(BATCH)).collect();
            let log = self.log.clone();
            let appended =
                tokio::task::spawn_blocking(move || log.append_events(&batch).map_err(|error| (error, batch))).await;
            match appended {
                Ok(Ok(ids)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("events reach the cluster's log again");
                    }
                    backoff = Duration::from_millis(100);
                    since_prune += ids.len() as u64;
                    if since_prune >= PRUNE_EVERY {
                        since_prune = 0;
                        let log = self.log.clone();
                        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || log.prune_events(KEPT)).await {
                            tracing::warn!(%error, "cannot delete old events from the cluster's log");
                        }
                    }
                }
                Ok(Err((error, batch))) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "cannot append events to the cluster's log; trying again");
                    }
                    pending.splice(..0, batch);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => tracing::error!(%error, "appending events failed"),
            }
        }
    }

    async fn read_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        let mut last = loop {
            let log = self.log.clone();
            match tokio::task::spawn_blocking(move || log.last_event_id()).await {
                Ok(Ok(last)) => break last,
                _ => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        let mut failing = false;
        loop {
            let log = self.log.clone();
            let read = tokio::task::spawn_blocking(move || log.events_after(None, last, READ)).await;
            let mut full = false;
            match read {
                Ok(Ok(events)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("reading the cluster's events again");
                    }
                    full = events.len() == READ;
                    for stored in events {
                        last = stored.id;
                        if let Some(event) = from_stored(stored) {
                            self.shared.publish_numbered(event);
                        }
                    }
                }
                Ok(Err(error)) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "cannot read the cluster's events; trying again");
                    }
                }
                Err(error) => tracing::error!(%error, "reading events failed"),
            }
            if full {
                continue;
            }
            tokio::select! {
                () = self.appended.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::JobData;
    use crate::model::Run;

    #[test]
    fn an_event_comes_back_from_the_log_as_it_went_in() {
        let bus = EventBus::new(8, chrono::Utc::now());
        let (sender, mut events) = mpsc::unbounded_channel();
        bus.tap(sender);
        let run = Run::sample("01JRUN", "01JJOB", chrono::Utc::now());
        bus.run("run.finished", &run);
        let job = EventData::Job(JobData {
            job_id: "01JJOB".into(),
            name: "greet".into(),
            enabled: false,
            next_fire_at: Some(chrono::Utc::now()),
            reason: None,
        });
        bus.publish("t", "job.paused", job);
        for _ in 0..2 {
            let event = events.try_recv().expect("the tap got the event");
            let mut kept = stored(&event);
            kept.id = 42;
            let back = from_stored(kept).expect("a known kind");
            assert_eq!(back.id, 42);
            assert_eq!(
                (back.kind, &back.tenant, back.at, &back.data),
                (event.kind, &event.tenant, event.at, &event.data)
            );
        }
        let unknown = StoredEvent {
            id: 1,
            tenant: "t".into(),
            kind: "run.teleported".into(),
            at: chrono::Utc::now(),
            data: b"{}".to_vec(),
        };
        assert!(from_stored(unknown).is_none(), "a kind a newer node wrote is left out");
    }
}
