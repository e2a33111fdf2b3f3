//! The database's schema, in numbered migrations applied at start: each in
//! one transaction with the record of it, under an advisory lock so that
//! nodes starting together apply each once. A database a newer sandcron
//! migrated further is refused, not written.

use crate::store::error::{StoreError, StoreResult};

/// Every migration, in order: its number and its SQL.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_store.sql")),
    (2, include_str!("migrations/0002_cluster.sql")),
    (3, include_str!("migrations/0003_claims.sql")),
    (4, include_str!("migrations/0004_events.sql")),
    (5, include_str!("migrations/0005_pause.sql")),
    (6, include_str!("migrations/0006_quiet_usage.sql")),
    (7, include_str!("migrations/0007_due_notice.sql")),
    (8, include_str!("migrations/0008_concurrency.sql")),
    (9, include_str!("migrations/0009_replay.sql")),
];

/// The advisory lock nodes take to migrate ("sandcron" in ASCII).
const MIGRATION_LOCK: i64 = 0x73616e6463726f6e;

/// Applies the migrations the database lacks.
pub(super) async fn migrate(client: &mut deadpool_postgres::Object) -> StoreResult<()> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS sandcron_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: i32 = transaction
        .query_one("SELECT coalesce(max(version), 0) FROM sandcron_migrations", &[])
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if applied > known {
        return Err(StoreError::Backend(format!(
            "the database's schema is at version {applied}, newer than this sandcron knows ({known}): run a newer sandcron"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        transaction.batch_execute(sql).await?;
        transaction
            .execute("INSERT INTO sandcron_migrations (version) VALUES ($1)", &[version])
            .await?;
        tracing::info!(version, "database schema migrated");
    }
    transaction.commit().await?;
    Ok(())
}
