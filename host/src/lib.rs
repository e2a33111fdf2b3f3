pub mod config;
pub mod model;
pub mod sandbox;
pub mod schedule;
pub mod store;
pub mod units;
