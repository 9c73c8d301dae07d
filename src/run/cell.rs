//! Executes a [`Cell`]: the shared setup once (cluster, images, Kyverno), then each member
//! scenario's plan (with its own LIFO teardown), then the cell's teardown, LIFO, unless kept.

use serde::Serialize;

use super::executor::{ScenarioResult, Settings, Status, TeardownResult, execute_guarded as execute, teardown_only};
use super::failure::FailureKind;
use crate::kube::api::ClusterApi;
use crate::plan::Plan;
use crate::plan::cells::Cell;

/// What happened in one cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellResult {
    /// The shared setup (its teardown is deferred to [`CellResult::teardown`]).
    pub setup: ScenarioResult,
    /// The members that ran, in order; none when the setup failed.
    pub members: Vec<(Plan, ScenarioResult)>,
    /// The cell's own teardown.
    pub teardown: Vec<TeardownResult>,
    /// Whether the run was cancelled inside this cell.
    pub cancelled: bool,
}

/// Executes `cell` (whose setup may have been adjusted, e.g. by `--reuse`, into `setup`).
/// `member_settings` gives each member's settings (its runner works in the member's directory).
pub async fn execute_cell<A: ClusterApi>(
    cell: &Cell,
    setup: &Plan,
    api: &A,
    setup_settings: &Settings,
    member_settings: impl Fn(&Plan) -> Settings,
) -> CellResult {
    // The shared setup keeps what it sets up: its teardown waits for the cell's end.
    let deferred = Settings { keep: true, defer_teardown: true, ..setup_settings.clone() };
    let setup_result = execute(setup, api, &deferred).await;
    let mut cancelled = setup_result.cancelled;
    let mut members = Vec::new();
    if setup_result.passed {
        for member in &cell.scenarios {
            if cancelled {
                break;
            }
            if member.provider == crate::plan::Provider::Local
                && let Some(broken) = setup_settings.processes.failure_report()
            {
                members.push((member.clone(), not_run(member, &broken)));
                continue;
            }
            let mut r = execute(member, api, &member_settings(member)).await;
            cancelled = r.cancelled;
            // After an infrastructure failure, or once a component died or hangs, the stack cannot
            // finish a reset (e.g. namespaces terminate only with the controller manager): no wait on
            // it, and the members after this one are not run on it.
            let broken = !setup_settings.processes.broken().is_empty();
            if member.provider == crate::plan::Provider::Local && !cancelled && !r.infra && !broken {
                // The next member gets the stack as the setup left it, or this one fails.
                let reset = crate::plan::build::limits::TEARDOWN;
                let failed = match crate::provider::local::op::reset_leftovers(api, reset).await {
                    Ok(left) if left.is_empty() => None,
                    Ok(left) => Some(format!("the reset left behind: {}", left.join(", "))),
                    Err(e) => {
                        r.infra = true;
                        Some(format!("infrastructure failure: the reset could not be checked: {e}"))
                    }
                };
                if let Some(why) = failed {
                    r.passed = false;
                    r.phases.push(super::executor::PhaseResult {
                        name: "reset".into(),
                        kind: None,
                        failure: Some(if r.infra { FailureKind::Infrastructure } else { FailureKind::Mismatch }),
                        status: Status::Failed(why),
                        seconds: 0.0,
                    });
                }
            }
            members.push((member.clone(), r));
        }
    }
    let started: Vec<crate::plan::PhaseKind> =
        setup_result.phases.iter().filter(|p| !matches!(p.status, Status::Skipped(_))).filter_map(|p| p.kind).collect();
    let teardown = teardown_only(setup, api, setup_settings, &started).await;
    CellResult { setup: setup_result, members, teardown, cancelled }
}

/// A member that cannot run: the cell's local stack broke (a component exited or hangs) before it.
fn not_run(member: &Plan, broken: &str) -> ScenarioResult {
    ScenarioResult {
        scenario: member.scenario.clone(),
        passed: false,
        cancelled: false,
        phases: vec![super::executor::PhaseResult {
            name: member.phases.first().map_or_else(|| "setup".into(), |p| p.kind.name().into()),
            kind: member.phases.first().map(|p| p.kind),
            status: Status::Failed(format!(
                "infrastructure failure: not run, the cell's local stack broke before it: {broken}"
            )),
            failure: Some(FailureKind::Infrastructure),
            seconds: 0.0,
        }],
        checks: Vec::new(),
        drift: Vec::new(),
        drift_notes: Vec::new(),
        infra: true,
        asserted: 0,
        teardown: Vec::new(),
        evidence: Vec::new(),
        judged_pod: None,
        denials: Vec::new(),
    }
}
