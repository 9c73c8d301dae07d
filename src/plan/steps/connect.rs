//! `connect`: `telepresence connect` after stopping daemons left by another run (they are machine-wide).

use super::super::action::Action;
use super::super::build::limits;
use super::{Ctx, skip_without_kubelet};
use crate::names::telepresence::{DAEMON_SOCKETS, TCP_DAEMONS_SINCE};
use crate::scenario::version::Version;
use crate::tools::telepresence;

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    if let Some(skip) = skip_without_kubelet(ctx) {
        return skip;
    }
    let s = &ctx.loaded.scenario.spec;
    let tp = ctx.loaded.versions.telepresence_version();
    let mut actions = vec![Action::Run {
        command: ctx.b.cmd(telepresence::quit()),
        timeout: limits::QUICK,
        expect_failure: false,
        best_effort: true,
    }];
    actions.push(ctx.b.run(telepresence::sudo_probe(), limits::QUICK));
    let mut undo = vec![ctx.b.run(telepresence::quit(), limits::QUICK)];
    if Version::parse(TCP_DAEMONS_SINCE).is_some_and(|tcp| tp < tcp) {
        // The daemons' fixed sockets must be gone once they stopped (a socket left behind makes
        // the next connect fail); `quit -s` may return before the root daemon has exited.
        undo.push(Action::PathsGone {
            paths: DAEMON_SOCKETS.iter().map(std::path::PathBuf::from).collect(),
            timeout: limits::QUICK,
        });
    }
    ctx.b.push_undo(ctx.phase(), "stop the Telepresence daemons", undo, vec![], false);
    actions.push(Action::Run {
        command: ctx.b.cmd(telepresence::connect(&s.workload.namespace, &s.telepresence.manager_namespace)),
        timeout: ctx.timeout(limits::CONNECT),
        expect_failure: ctx.denial.is_some(),
        best_effort: false,
    });
    actions.push(ctx.b.run(telepresence::status_json(&tp), limits::QUICK));
    actions
}
