//! The PostgreSQL database of [`PgStore`]: the struct, its connection pool
//! and the runtime that drives it, the bridge from the store's synchronous
//! traits to the driver's futures, transactions retried when PostgreSQL
//! picks them as a deadlock's or a serialization failure's victim, the
//! store errors of the driver's, and durability (a commit is durable).
//!
//! The store's traits are synchronous: sled answers in microseconds, so
//! callers (the API's handlers among them) call it inline. The driver is
//! asynchronous, so the store owns a small runtime of its own and each call
//! blocks on its future there: on a worker of the daemon's multi-thread
//! runtime through `block_in_place` (the worker's other tasks move on
//! meanwhile), on a plain thread (a lane, the recorder) directly, and from a
//! current-thread runtime (a test) on a scoped thread.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::hooks::HooksCache;
use super::schema;
use crate::store::code_files::{CodeFiles, Kind};
use crate::store::error::{StoreError, StoreFuture, StoreResult};
use crate::store::traits::Durability;

/// Connections the pool keeps at most: enough for the recorder, the lanes
/// and the API's handlers at once.
const POOL_SIZE: usize = 16;

/// How long a call waits for a connection, and for one to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts of a transaction PostgreSQL aborted as a deadlock's or a
/// serialization failure's victim (it changed nothing; run it again).
const TRANSACTION_ATTEMPTS: usize = 5;

/// The store's runtime, shut down without waiting when the store goes (it
/// may go on a runtime thread, where waiting for a runtime panics).
struct OwnRuntime(Option<Runtime>);

impl OwnRuntime {
    fn handle(&self) -> &Handle {
        self.0
            .as_ref()
            .expect("the runtime lives until the store is dropped")
            .handle()
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// PostgreSQL-backed [`Store`](crate::store::Store): every node of a
/// cluster shares its database; compiled code stays on each node's disk.
#[derive(Clone)]
pub struct PgStore {
    runtime: Arc<OwnRuntime>,
    /// This node's id: the owner of the runs and workflow runs it writes.
    pub(super) node: Arc<str>,
    /// This process of the node, random per start (see `cluster`).
    pub(super) incarnation: Arc<str>,
    /// How to connect, for the connection hearing the other nodes.
    pub(super) config: tokio_postgres::Config,
    pub(super) pool: Pool,
    /// Compiled code of this node (and its records), in the data dir.
    pub(super) files: Arc<CodeFiles>,
    /// Jobs' hooks, while the other nodes' notices are heard.
    pub(super) hooks: Arc<HooksCache>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// A database URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unreadable URL)".to_string(),
    }
}

impl PgStore {
    /// Connects to the database at `url` as the node `node`, brings its
    /// schema up to date and keeps compiled code under `local_dir`. A tool
    /// that runs nothing (`sandcron migrate`) gives an empty `node`: the
    /// runs it writes belong to no node, and the first to start takes them.
    pub fn connect(url: &str, local_dir: &Path, node: &str) -> StoreResult<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|error| StoreError::Backend(format!("database_url {}: {error}", redacted(url))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives(true).keepalives_idle(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("sandcron");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sandcron-postgres")
            .enable_all()
            .build()
            .map_err(|error| StoreError::Backend(format!("starting the database runtime: {error}")))?;
        // Wrapped at once: dropped on a runtime thread (a failed connect),
        // a bare runtime would panic.
        let runtime = Arc::new(OwnRuntime(Some(runtime)));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _entered = runtime.handle().enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|error| StoreError::Backend(format!("the database pool: {error}")))?
        };
        let store = PgStore {
            runtime,
            node: Arc::from(node),
            incarnation: Arc::from(format!("{:016x}", rand::random::<u64>()).as_str()),
            config: config.clone(),
            pool,
            files: Arc::new(CodeFiles::open_kinds(local_dir, &[Kind::Code, Kind::Record])?),
            hooks: Arc::default(),
        };
        store.block(|| async {
            let mut client = store.client().await?;
            schema::migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The store's runtime, for tasks of its own.
    pub(super) fn runtime_handle(&self) -> &Handle {
        self.runtime.handle()
    }

    /// Runs `work`'s future to its end on the store's runtime (see the
    /// module's docs) and returns what it gave.
    pub(super) fn block<T, F, Fut>(&self, work: F) -> StoreResult<T>
    where
        T: Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = StoreResult<T>>,
    {
        block_on(self.runtime.handle(), work)
    }

    /// A connection of the pool.
    pub(super) async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|error| match error {
            deadpool_postgres::PoolError::Backend(error) => db_error(error),
            other => StoreError::Disconnected(format!("the database is unreachable: {other}")),
        })
    }

    /// Runs `body` in a transaction and commits it; runs it again when
    /// PostgreSQL aborted it as a deadlock's or serialization failure's
    /// victim, which changed nothing.
    pub(super) async fn transact<T, F>(&self, mut body: F) -> StoreResult<T>
    where
        F: AsyncFnMut(&Transaction<'_>) -> StoreResult<T>,
    {
        let mut client = self.client().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let transaction = client.transaction().await.map_err(Failure::Driver)?;
                let value = body(&transaction).await.map_err(Failure::Store)?;
                transaction.commit().await.map_err(Failure::Driver)?;
                Ok(value)
            }
            .await;
            match result {
                Ok(value) => return Ok(value),
                Err(Failure::Driver(error)) if is_retryable(&error) && attempt < TRANSACTION_ATTEMPTS => continue,
                Err(Failure::Store(StoreError::Retry(_))) if attempt < TRANSACTION_ATTEMPTS => continue,
                Err(Failure::Driver(error)) => return Err(db_error(error)),
                Err(Failure::Store(StoreError::Retry(message))) => return Err(StoreError::Backend(message)),
                Err(Failure::Store(error)) => return Err(error),
            }
        }
    }
}

/// Runs `work`'s future to its end on the runtime of `handle`, from
/// wherever the caller is (see the module's docs).
fn block_on<T, F, Fut>(handle: &Handle, work: F) -> StoreResult<T>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = StoreResult<T>>,
{
    match Handle::try_current().map(|current| current.runtime_flavor()) {
        Ok(RuntimeFlavor::CurrentThread) => std::thread::scope(|scope| {
            scope
                .spawn(|| handle.block_on(work()))
                .join()
                .unwrap_or_else(|_| Err(StoreError::Backend("a database call panicked".to_string())))
        }),
        Ok(_) => tokio::task::block_in_place(|| handle.block_on(work())),
        Err(_) => handle.block_on(work()),
    }
}

/// How a transaction failed: the driver's error, or the body's own.
enum Failure {
    Driver(tokio_postgres::Error),
    Store(StoreError),
}

/// True for the errors a transaction is run again after.
fn is_retryable(error: &tokio_postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// The store error of a driver error: the database's own message, or that
/// it cannot be reached. A deadlock's victim is [`StoreError::Retry`], so
/// that [`PgStore::transact`] runs it again.
pub(super) fn db_error(error: tokio_postgres::Error) -> StoreError {
    if is_retryable(&error) {
        return StoreError::Retry(error.to_string());
    }
    match error.as_db_error() {
        // The server is shutting down, starting up or cut the connection
        // (class 57P), or the connection failed (class 08).
        Some(database) if is_going_away(database.code()) => {
            StoreError::Disconnected(format!("the database is unreachable: {}", database.message()))
        }
        Some(database) => StoreError::Backend(format!("database: {}", database.message())),
        None if error.is_closed() => StoreError::Disconnected(format!("the database connection closed: {error}")),
        // No answer from the server: the connection failed on the way.
        None => StoreError::Disconnected(format!("the database is unreachable: {error}")),
    }
}

/// True for the codes of a server going away or a connection failing.
fn is_going_away(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("57P") || code.starts_with("08")
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        db_error(error)
    }
}

/// True for a unique-constraint violation (a name or key already taken).
pub(super) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A record as JSON bytes.
pub(super) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialize")
}

/// A JSON record of the row named `key`, [`StoreError::Corrupt`] when it
/// does not decode.
pub(super) fn from_json<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|error| corrupt(key, error.to_string()))
}

/// A stored record that does not decode.
pub(super) fn corrupt(key: &str, message: String) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        message,
    }
}

/// A count as PostgreSQL's `bigint` (counts past it are not kept).
pub(super) fn big(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A `bigint` read back as a count (negative ones are none).
pub(super) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Durability for PgStore {
    // A committed transaction is durable: there is nothing to flush.
    fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    fn flush_async(&self) -> StoreFuture {
        Box::pin(async { Ok(()) })
    }

    fn flush_soon(&self) {}
}
