//! `tests/replay.rs` again, every daemon it starts on PostgreSQL (the
//! harness reads the `postgres_` of this binary's name; see docs/testing.md).

#[path = "../replay.rs"]
mod on_postgres;
