//! The harness's PostgreSQL server on its own (no daemon): it hands out
//! reachable databases, a fresh one per call and the same one per data dir,
//! and keeps their rows across a stop and a start.

mod common;

use std::sync::{PoisonError, RwLock};

use common::postgres;

/// The stop/start test takes this for writing, every other test for
/// reading: the tests of a binary share one server, and a query must not
/// land while it is down. (A panic under it poisons nothing that matters.)
static SERVER_UP: RwLock<()> = RwLock::new(());

#[test]
fn this_binary_runs_its_daemons_on_postgres() {
    assert!(common::on_postgres(), "a binary named postgres_* runs on PostgreSQL");
}

#[test]
fn a_new_database_is_reachable_by_its_url() {
    let _up = SERVER_UP.read().unwrap_or_else(PoisonError::into_inner);
    let url = postgres::server().database();
    assert!(url.starts_with("postgres://"), "a PostgreSQL URL: {url}");
    let name = url.rsplit('/').next().expect("a path");
    assert_eq!(postgres::server().psql(&url, "select 1"), "1");
    assert_eq!(postgres::server().psql(&url, "select current_database()"), name);
    // By name as well as by URL.
    assert_eq!(postgres::server().psql(name, "select 2"), "2");
}

#[test]
fn each_call_of_database_gives_a_database_of_its_own() {
    let _up = SERVER_UP.read().unwrap_or_else(PoisonError::into_inner);
    let server = postgres::server();
    let first = server.database();
    let second = server.database();
    assert_ne!(first, second);
    server.psql(&first, "create table mine (value int); insert into mine values (1)");
    assert_eq!(
        server.psql(&second, "select count(*) from pg_tables where tablename = 'mine'"),
        "0",
        "a table of the first database shows in the second"
    );
}

#[test]
fn the_same_data_dir_gets_the_same_database_and_another_dir_another() {
    let _up = SERVER_UP.read().unwrap_or_else(PoisonError::into_inner);
    let server = postgres::server();
    let one = tempfile::tempdir().expect("a temp dir");
    let other = tempfile::tempdir().expect("a temp dir");
    let first = server.database_for(one.path());
    assert_eq!(server.database_for(one.path()), first);
    assert_ne!(server.database_for(other.path()), first);
    assert_eq!(server.psql(&first, "select 1"), "1");
}

#[test]
fn rows_survive_a_stop_and_a_start() {
    let _down = SERVER_UP.write().unwrap_or_else(PoisonError::into_inner);
    if std::env::var(postgres::HOST_URL_ENV).is_ok() {
        eprintln!("skipped: the server of {} is not ours to stop", postgres::HOST_URL_ENV);
        return;
    }
    let server = postgres::server();
    let url = server.database();
    server.psql(
        &url,
        "create table kept (value int); insert into kept values (1), (2), (3)",
    );
    server.stop();
    assert!(
        server.try_psql(&url, "select 1").is_err(),
        "the server still answers after stop"
    );
    server.start();
    assert_eq!(
        server.psql(&url, "select string_agg(value::text, ',' order by value) from kept"),
        "1,2,3"
    );
    server.restart();
    server.psql(&url, "insert into kept values (4)");
    assert_eq!(server.psql(&url, "select count(*) from kept"), "4");
}
