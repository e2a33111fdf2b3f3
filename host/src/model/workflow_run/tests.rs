use serde_json::json;

use super::*;
use crate::model::workflow::{check, parse_spec};

fn workflow(body: Value) -> Workflow {
    check(parse_spec(&body).unwrap(), "t", None, 1 << 20, Utc::now()).unwrap()
}

fn new_run(workflow: &Workflow, input: Option<&str>) -> WorkflowRun {
    let now = Utc::now();
    WorkflowRun::new(
        "wr".into(),
        workflow,
        Trigger::Manual,
        input.map(|text| text.as_bytes().to_vec()),
        now,
        now,
    )
}

fn ids(step: &str, round: u32) -> String {
    format!("{step}.{round}")
}

fn advance(run: &mut WorkflowRun, outputs: &[(&str, &str)]) -> Vec<StepStart> {
    let outputs: Vec<(String, Vec<u8>)> = outputs
        .iter()
        .map(|(step, text)| (step.to_string(), text.as_bytes().to_vec()))
        .collect();
    let output = move |step: &str| {
        outputs
            .iter()
            .find(|(id, _)| id == step)
            .map(|(_, bytes)| bytes.clone())
    };
    run.advance(&output, &ids, 1 << 20, Utc::now())
}

fn started(starts: &[StepStart]) -> Vec<&str> {
    starts.iter().map(|start| start.step.as_str()).collect()
}

fn status(run: &WorkflowRun, step: &str) -> StepStatus {
    run.steps[step].status
}

/// Ends a started step's run with `status`.
fn end(run: &mut WorkflowRun, step: &str, status: RunStatus) {
    let run_id = run.steps[step].run_id.clone().unwrap();
    assert!(run.step_ended(&run_id, status, None));
}

#[test]
fn each_when_against_each_state_of_the_needed_steps_follows_the_table() {
    use StepStatus::{Cancelled, Failed, Skipped, Succeeded};
    // (when, the two needed steps' states) -> does the step start?
    let table = [
        ("success", [Succeeded, Succeeded], true),
        ("success", [Succeeded, Failed], false),
        ("success", [Succeeded, Skipped], false),
        ("success", [Skipped, Skipped], false),
        ("success", [Succeeded, Cancelled], false),
        ("failure", [Succeeded, Succeeded], false),
        ("failure", [Succeeded, Failed], true),
        ("failure", [Failed, Failed], true),
        ("failure", [Succeeded, Skipped], false),
        ("failure", [Skipped, Skipped], false),
        ("failure", [Skipped, Cancelled], true),
        ("always", [Succeeded, Succeeded], true),
        ("always", [Succeeded, Failed], true),
        ("always", [Skipped, Skipped], true),
        ("always", [Failed, Cancelled], true),
    ];
    for on_failure in ["continue", "stop"] {
        for (when, needed, starts) in table {
            let definition = workflow(json!({"name": "w", "on_failure": on_failure, "steps": [
                {"id": "a", "job": "j"},
                {"id": "b", "job": "j"},
                {"id": "c", "job": "j", "needs": ["a", "b"], "when": when},
            ]}));
            let mut run = new_run(&definition, None);
            run.steps.get_mut("a").unwrap().status = needed[0];
            run.steps.get_mut("b").unwrap().status = needed[1];
            let starts_now = advance(&mut run, &[]);
            // `stop` changes nothing here: a success step never starts after a
            // failure anyway, handlers and `always` steps still do.
            let expected = if starts {
                StepStatus::Queued
            } else {
                StepStatus::Skipped
            };
            assert_eq!(status(&run, "c"), expected, "{on_failure} {when} {needed:?}");
            assert_eq!(started(&starts_now).len(), usize::from(starts));
        }
    }
}

#[test]
fn a_skip_passes_down_a_chain_of_success_steps_and_always_steps_still_run() {
    let definition = workflow(json!({"name": "w", "on_failure": "continue", "steps": [
        {"id": "a", "job": "j"},
        {"id": "b", "job": "j", "needs": ["a"]},
        {"id": "c", "job": "j", "needs": ["b"]},
        {"id": "d", "job": "j", "needs": ["c"], "when": "always"},
        {"id": "e", "job": "j", "needs": ["c"], "when": "failure"},
    ]}));
    let mut run = new_run(&definition, None);
    assert_eq!(started(&advance(&mut run, &[])), ["a"]);
    end(&mut run, "a", RunStatus::Failed);
    assert_eq!(started(&advance(&mut run, &[])), ["d"]);
    assert_eq!(status(&run, "b"), StepStatus::Skipped);
    assert_eq!(status(&run, "c"), StepStatus::Skipped);
    assert_eq!(status(&run, "e"), StepStatus::Skipped, "a skipped step is no failure");
    end(&mut run, "d", RunStatus::Succeeded);
    assert!(advance(&mut run, &[]).is_empty());
    assert_eq!(run.status, WorkflowRunStatus::Failed, "a's failure is unhandled");
    assert_eq!(run.error.as_deref(), Some("step \"a\" failed"));
}

#[test]
fn stop_starts_only_handlers_after_a_failure_and_continue_runs_the_rest() {
    let steps = json!([
        {"id": "a", "job": "j"},
        {"id": "b", "job": "j"},
        {"id": "after_b", "job": "j", "needs": ["b"]},
        {"id": "handler", "job": "j", "needs": ["a"], "when": "failure"},
    ]);
    for (on_failure, after_b) in [("stop", StepStatus::Skipped), ("continue", StepStatus::Queued)] {
        let definition = workflow(json!({"name": "w", "on_failure": on_failure, "steps": steps}));
        let mut run = new_run(&definition, None);
        assert_eq!(started(&advance(&mut run, &[])), ["a", "b"]);
        end(&mut run, "a", RunStatus::Failed);
        assert_eq!(started(&advance(&mut run, &[])), ["handler"], "{on_failure}");
        end(&mut run, "b", RunStatus::Succeeded);
        advance(&mut run, &[]);
        assert_eq!(status(&run, "after_b"), after_b, "{on_failure}");
        if after_b == StepStatus::Queued {
            end(&mut run, "after_b", RunStatus::Succeeded);
        }
        end(&mut run, "handler", RunStatus::Succeeded);
        advance(&mut run, &[]);
        assert_eq!(
            run.status,
            WorkflowRunStatus::Succeeded,
            "{on_failure}: the failure was handled"
        );
        assert!(run.finished_at.is_some());
    }
}

#[test]
fn a_failed_handler_leaves_the_failure_unhandled() {
    let definition = workflow(json!({"name": "w", "steps": [
        {"id": "a", "job": "j"},
        {"id": "handler", "job": "j", "needs": ["a"], "when": "failure"},
    ]}));
    let mut run = new_run(&definition, None);
    advance(&mut run, &[]);
    end(&mut run, "a", RunStatus::Failed);
    advance(&mut run, &[]);
    end(&mut run, "handler", RunStatus::Failed);
    advance(&mut run, &[]);
    assert_eq!(run.status, WorkflowRunStatus::Failed);
}

#[test]
fn a_diamond_merges_outputs_and_reads_conditions() {
    let definition = workflow(json!({"name": "w", "steps": [
        {"id": "a", "job": "j"},
        {"id": "b", "job": "j", "needs": ["a"], "input": {"from": "a"}},
        {"id": "c", "job": "j", "needs": ["a"], "input": {"value": {"fixed": true}}},
        {"id": "d", "job": "j", "needs": ["b", "c"], "input": {"merge": ["c", "b"]}},
        {"id": "e", "job": "j", "needs": ["b"], "if": {"from": "b", "pointer": "/rows", "gt": 5}},
    ]}));
    let mut run = new_run(&definition, Some(r#"{"day":"2026-12-03"}"#));
    let first = advance(&mut run, &[]);
    assert_eq!(
        first[0].input.as_deref(),
        Some(br#"{"day":"2026-12-03"}"#.as_slice()),
        "a root step takes the run's input"
    );
    assert_eq!(first[0].run_id, "a.0");
    end(&mut run, "a", RunStatus::Succeeded);
    let next = advance(&mut run, &[("a", "raw bytes")]);
    assert_eq!(started(&next), ["b", "c"]);
    assert_eq!(next[0].input.as_deref(), Some(b"raw bytes".as_slice()));
    assert_eq!(next[1].input.as_deref(), Some(br#"{"fixed":true}"#.as_slice()));
    end(&mut run, "b", RunStatus::Succeeded);
    end(&mut run, "c", RunStatus::Succeeded);
    let last = advance(&mut run, &[("b", r#"{"rows":3}"#), ("c", "plain text")]);
    assert_eq!(started(&last), ["d"]);
    assert_eq!(
        last[0].input.as_deref(),
        Some(br#"{"b":{"rows":3},"c":"plain text"}"#.as_slice()),
        "keyed by step id (in key order), each output as JSON when it parses"
    );
    assert_eq!(status(&run, "e"), StepStatus::Skipped, "rows 3 is not > 5");
    end(&mut run, "d", RunStatus::Succeeded);
    advance(&mut run, &[]);
    assert_eq!(run.status, WorkflowRunStatus::Succeeded);
}

#[test]
fn max_parallel_holds_ready_steps_until_a_slot_frees() {
    let steps: Vec<Value> = (0..5).map(|at| json!({"id": format!("s{at}"), "job": "j"})).collect();
    let definition = workflow(json!({"name": "w", "max_parallel": 2, "steps": steps}));
    let mut run = new_run(&definition, None);
    assert_eq!(started(&advance(&mut run, &[])), ["s0", "s1"]);
    assert!(advance(&mut run, &[]).is_empty());
    end(&mut run, "s1", RunStatus::Succeeded);
    assert_eq!(started(&advance(&mut run, &[])), ["s2"]);
    // A retry keeps the slot: the step stays queued under its next run.
    let first = run.steps["s0"].run_id.clone().unwrap();
    assert!(run.step_ended(&first, RunStatus::Failed, Some("s0-retry")));
    assert_eq!(run.steps["s0"].attempt, 2);
    assert!(advance(&mut run, &[]).is_empty());
    assert!(
        !run.step_ended(&first, RunStatus::Failed, None),
        "an old attempt's news is ignored"
    );
    assert!(run.step_ended("s0-retry", RunStatus::Succeeded, None));
    assert_eq!(started(&advance(&mut run, &[])), ["s3"]);
}

#[test]
fn an_input_past_the_limit_fails_the_step_without_a_run() {
    let definition = workflow(json!({"name": "w", "on_failure": "continue", "steps": [
        {"id": "a", "job": "j"},
        {"id": "b", "job": "j", "needs": ["a"], "input": {"from": "a"}},
    ]}));
    let mut run = new_run(&definition, None);
    advance(&mut run, &[]);
    end(&mut run, "a", RunStatus::Succeeded);
    let big = "x".repeat(100);
    let output = move |_: &str| Some(big.as_bytes().to_vec());
    assert!(run.advance(&output, &ids, 50, Utc::now()).is_empty());
    assert_eq!(status(&run, "b"), StepStatus::Failed);
    assert!(run.steps["b"].error.as_deref().unwrap().contains("100 bytes"));
    assert_eq!(run.status, WorkflowRunStatus::Failed);
}

#[test]
fn a_stop_cancels_what_runs_and_a_restart_keeps_what_succeeded() {
    let definition = workflow(json!({"name": "w", "steps": [
        {"id": "a", "job": "j"},
        {"id": "b", "job": "j"},
        {"id": "c", "job": "j", "needs": ["a", "b"]},
    ]}));
    let mut run = new_run(&definition, None);
    advance(&mut run, &[]);
    end(&mut run, "a", RunStatus::Succeeded);
    let to_cancel = run.stop(Stopping::Cancelled, Utc::now());
    assert_eq!(to_cancel, ["b.0"]);
    assert_eq!(status(&run, "c"), StepStatus::Cancelled);
    assert_eq!(run.status, WorkflowRunStatus::Running, "until b's run has ended");
    end(&mut run, "b", RunStatus::Cancelled);
    assert!(advance(&mut run, &[]).is_empty());
    assert_eq!(run.status, WorkflowRunStatus::Cancelled);

    assert!(run.restart(Utc::now()));
    assert_eq!(status(&run, "a"), StepStatus::Succeeded);
    let again = advance(&mut run, &[]);
    assert_eq!(started(&again), ["b"]);
    assert_eq!(again[0].run_id, "b.1", "a new round, a new run id");
    end(&mut run, "b", RunStatus::Succeeded);
    assert_eq!(started(&advance(&mut run, &[])), ["c"]);
    assert_eq!(run.steps["c"].run_id.as_deref(), Some("c.0"), "c never ran: round 0");
    end(&mut run, "c", RunStatus::Succeeded);
    advance(&mut run, &[]);
    assert_eq!(run.status, WorkflowRunStatus::Succeeded);
    assert!(!run.restart(Utc::now()), "nothing to retry");
}

#[test]
fn a_timeout_fails_the_run_and_says_so() {
    let definition = workflow(json!({"name": "w", "timeout": "90s", "steps": [{"id": "a", "job": "j"}]}));
    let mut run = new_run(&definition, None);
    advance(&mut run, &[]);
    assert_eq!(run.stop(Stopping::TimedOut, Utc::now()), ["a.0"]);
    end(&mut run, "a", RunStatus::Cancelled);
    advance(&mut run, &[]);
    assert_eq!(run.status, WorkflowRunStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("timed out after 1m 30s"));
}
