//! `GET /v1/events`: server-sent events of the caller's tenant (runs queued,
//! started, finished; jobs created, updated, paused, resumed, deleted). A
//! client that reconnects with `Last-Event-ID` gets the events it missed
//! from a bounded buffer first; when some are gone it gets a `gap` event
//! saying from which id the buffer starts. Keep-alive comments every 15 s.
//! In a cluster a stream carries every node's events of its tenant, with
//! the cluster's ids, and resumes on any node (see `relay`).
//! A tenant holds at most `max_event_streams` streams at once: each holds
//! a connection of the server's shared `http_max_connections`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, Query};
use super::state::AppState;
use super::stream_slots::StreamSlot;
use crate::events::{Event, EventBus, Gap, KINDS};

/// How often an idle stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events of this job (id or name).
    job: Option<String>,
    /// Comma-separated kinds (`run.finished`) or families (`run`, `job`).
    types: Option<String>,
    /// Resume after this id (as the `Last-Event-ID` header does).
    last_event_id: Option<u64>,
}

/// Which events a stream carries.
struct Filter {
    tenant: String,
    job_id: Option<String>,
    kinds: Option<Vec<String>>,
}

impl Filter {
    fn keeps(&self, event: &Event) -> bool {
        event.tenant == self.tenant
            && self.job_id.as_deref().is_none_or(|job| event.job_id() == job)
            && self.kinds.as_ref().is_none_or(|kinds| {
                kinds
                    .iter()
                    .any(|kind| event.kind == kind || event.kind.split('.').next() == Some(kind.as_str()))
            })
    }
}

/// Families of events a stream can ask for (`run` for every `run.*`).
const FAMILIES: [&str; 3] = ["run", "job", "workflow"];

/// Whether `kind` names a kind of event or a family of them.
fn is_known(kind: &str) -> bool {
    FAMILIES.contains(&kind) || KINDS.contains(&kind)
}

fn sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind)
        .data(json!({"id": event.id, "kind": event.kind, "at": event.at, "data": event.data}).to_string())
}

fn gap_event(oldest: Option<u64>, missed: Option<u64>) -> SseEvent {
    SseEvent::default()
        .event("gap")
        .data(json!({"oldest_buffered": oldest, "missed": missed}).to_string())
}

struct StreamState {
    /// Held for as long as the stream lasts.
    _slot: StreamSlot,
    bus: Arc<EventBus>,
    gap: Option<Gap>,
    missed: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    filter: Filter,
    last_sent: Option<u64>,
}

impl StreamState {
    fn send(&mut self, event: &Event) -> SseEvent {
        self.last_sent = Some(event.id);
        sse(event)
    }
}

/// `GET /v1/events?job=&types=`: the stream.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    operation_id = "stream_events",
    params(("job" = Option<String>, Query), ("types" = Option<String>, Query), ("last_event_id" = Option<u64>, Query)),
    responses((status = 200, description = "server-sent events", body = String, content_type = "text/event-stream"), (status = 404, description = "no such job", body = ErrorBody), Refusals),
    description = "At most `max_event_streams` streams per tenant at once: past it, 429 `too_many_streams`."
)]
pub async fn stream(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let job_id = match &query.job {
        Some(job) => Some(super::jobs::find_job(&state, &caller.tenant, job)?.id),
        None => None,
    };
    let kinds = match &query.types {
        Some(types) => {
            let kinds: Vec<String> = types.split(',').map(|kind| kind.trim().to_string()).collect();
            if let Some(unknown) = kinds.iter().find(|kind| !is_known(kind)) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "types: {unknown:?} is not one of {}, {}",
                        FAMILIES.join(", "),
                        KINDS.join(", ")
                    ),
                ));
            }
            Some(kinds)
        }
        None => None,
    };
    let header = headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("invalid_header", "Last-Event-ID: expected an event id"))
        })
        .transpose()?;
    let filter = Filter {
        tenant: caller.tenant.clone(),
        job_id,
        kinds,
    };
    let slot = state.streams().take(&caller.tenant)?;
    let last_seen = header.or(query.last_event_id);
    let (bus, missed, gap, live) = match state.relay() {
        None => {
            let bus = state.events().clone();
            let (missed, gap, live) = bus.subscribe(&filter.tenant, last_seen, |event| filter.keeps(event));
            (bus, missed, gap, live)
        }
        // In a cluster: every node's events; what a resuming stream missed
        // comes from the cluster's log (read after subscribing, so nothing
        // falls between; what both give is sent once, by id).
        Some(relay) => {
            let bus = relay.shared().clone();
            let (_, _, live) = bus.subscribe(&filter.tenant, None, |_| false);
            let (missed, gap) = match last_seen {
                Some(last_seen) => relay.missed(&filter.tenant, last_seen).await?,
                None => (Vec::new(), None),
            };
            let missed = missed.into_iter().filter(|event| filter.keeps(event)).collect();
            (bus, missed, gap, live)
        }
    };
    let start = StreamState {
        _slot: slot,
        bus,
        gap,
        missed: missed.into(),
        live,
        filter,
        last_sent: last_seen,
    };
    let events = futures_util::stream::unfold(start, |mut state| async move {
        if let Some(gap) = state.gap.take() {
            return Some((Ok(gap_event(Some(gap.oldest), None)), state));
        }
        if let Some(event) = state.missed.pop_front() {
            let sent = state.send(&event);
            return Some((Ok(sent), state));
        }
        loop {
            match state.live.recv().await {
                Ok(event) if state.filter.keeps(&event) && state.last_sent.is_none_or(|last| event.id > last) => {
                    let sent = state.send(&event);
                    return Some((Ok(sent), state));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => match state.last_sent {
                    // Fell behind the live channel: catch up from the buffer.
                    Some(last) => {
                        let (missed, gap, live) = state
                            .bus
                            .subscribe(&state.filter.tenant, Some(last), |event| state.filter.keeps(event));
                        state.missed = missed.into();
                        state.gap = gap;
                        state.live = live;
                        if let Some(gap) = state.gap.take() {
                            return Some((Ok(gap_event(Some(gap.oldest), None)), state));
                        }
                        if let Some(event) = state.missed.pop_front() {
                            let sent = state.send(&event);
                            return Some((Ok(sent), state));
                        }
                    }
                    None => return Some((Ok(gap_event(None, Some(missed))), state)),
                },
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
