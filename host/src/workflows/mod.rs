//! Workflows: definitions checked against the tenant's jobs, their runs
//! started on demand or on schedule, moved on as their steps' runs end
//! (through the executor's [`StepHook`](crate::executor::StepHook), in the
//! write that records each outcome), cancelled, retried, timed out.

mod after;
mod definitions;
mod elsewhere;
mod engine;
mod error;
mod planner;
mod schedule;

pub use engine::{Workflows, WorkflowsParts};
pub use error::WorkflowError;
