//! The cluster's event log in PostgreSQL: every node appends its events in
//! batches and notifies `sandcron_events`; every node reads what came after
//! the last id it read, so its streams carry every node's events, and a
//! stream resumes on any node from the table. Ids come from one sequence,
//! taken under a transaction lock held to commit, so they commit in order
//! and a reader never skips an id a slower transaction fills in later.

use super::database::{PgStore, big, count};
use crate::store::error::StoreResult;
use crate::store::traits::{EventLog, StoredEvent};

/// The channel appends notify.
pub const EVENTS_CHANNEL: &str = "sandcron_events";

/// The transaction lock appends take ("sc-event" in ASCII).
const APPEND_LOCK: i64 = 0x73632d6576656e74;

/// An event of a row (id, tenant, kind, at, data).
fn stored(row: &tokio_postgres::Row) -> StoredEvent {
    StoredEvent {
        id: count(row.get(0)),
        tenant: row.get(1),
        kind: row.get(2),
        at: row.get(3),
        data: row.get(4),
    }
}

impl EventLog for PgStore {
    fn append_events(&self, events: &[StoredEvent]) -> StoreResult<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let tenants: Vec<&str> = events.iter().map(|event| event.tenant.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|event| event.kind.as_str()).collect();
        let ats: Vec<_> = events.iter().map(|event| event.at).collect();
        let data: Vec<&[u8]> = events.iter().map(|event| event.data.as_slice()).collect();
        self.block(|| async {
            self.transact(async |transaction| {
                transaction
                    .execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
                    .await?;
                let statement = transaction
                    .prepare_cached(
                        "INSERT INTO events (id, tenant, kind, at, data)
                         SELECT nextval('events_ids'), tenant, kind, at, data
                         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[])
                             WITH ORDINALITY AS event (tenant, kind, at, data, position)
                         ORDER BY position
                         RETURNING id",
                    )
                    .await?;
                let rows = transaction.query(&statement, &[&tenants, &kinds, &ats, &data]).await?;
                transaction
                    .execute("SELECT pg_notify($1, '')", &[&EVENTS_CHANNEL])
                    .await?;
                let mut ids: Vec<u64> = rows.iter().map(|row| count(row.get(0))).collect();
                ids.sort_unstable();
                Ok(ids)
            })
            .await
        })
    }

    fn events_after(&self, tenant: Option<&str>, after: u64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        let (after, limit) = (big(after), big(limit as u64));
        self.block(|| async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id, tenant, kind, at, data FROM events
                     WHERE id > $1 AND ($2::text IS NULL OR tenant = $2)
                     ORDER BY id LIMIT $3",
                )
                .await?;
            let rows = client.query(&statement, &[&after, &tenant, &limit]).await?;
            Ok(rows.iter().map(stored).collect())
        })
    }

    fn newest_events_after(&self, tenant: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEvent>> {
        let (after, limit) = (big(after), big(limit as u64));
        self.block(|| async {
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT * FROM (SELECT id, tenant, kind, at, data FROM events
                         WHERE tenant = $1 AND id > $2 ORDER BY id DESC LIMIT $3) AS newest
                     ORDER BY id",
                    &[&tenant, &after, &limit],
                )
                .await?;
            Ok(rows.iter().map(stored).collect())
        })
    }

    fn last_event_id(&self) -> StoreResult<u64> {
        self.block(|| async {
            let row = self
                .client()
                .await?
                .query_one("SELECT coalesce(max(id), 0) FROM events", &[])
                .await?;
            Ok(count(row.get(0)))
        })
    }

    fn prune_events(&self, keep: u64) -> StoreResult<usize> {
        let keep = big(keep);
        self.block(|| async {
            let deleted = self
                .client()
                .await?
                .execute(
                    "DELETE FROM events WHERE id <= (SELECT coalesce(max(id), 0) FROM events) - $1",
                    &[&keep],
                )
                .await?;
            Ok(deleted as usize)
        })
    }
}
