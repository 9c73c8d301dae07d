//! local: the control plane from the run's own PKI (etcd, kube-apiserver, kube-controller-manager),
//! each stopped newest first; Kyverno and the traffic-manager are started by their install steps.
//!
//! What the local provider contributes to a plan lives here, so that `kyvtel plan` prints it: its
//! operations ([`LocalOp`]), the components' command lines and files ([`components`]), where its
//! binaries and charts come from ([`paths`]), its snapshot policy ([`snapshot`]) and how it differs
//! from a real cluster ([`adapt`]). `provider::local` executes them.

pub mod adapt;
pub mod components;
pub mod op;
pub mod paths;
pub mod snapshot;

pub use op::{LocalOp, Ready, StackStart};

use super::super::action::{Action, Phase};
use super::super::build::{Builder, Options, limits};
use crate::plan::PhaseKind;
use crate::scenario::Loaded;
use components::Layout;

/// The binaries of `l` a stack-ready snapshot's key covers: those the shared setup runs, with the
/// Kyverno binary `kyverno`.
fn snapshot_binaries(l: &Layout, kyverno: &str) -> Vec<std::path::PathBuf> {
    ["etcd", "kube-apiserver", "kube-controller-manager", kyverno, "helm"].iter().map(|b| l.binary(b)).collect()
}

/// The name in `.tools/local/` of the Kyverno admission controller `loaded` runs: `kyverno`, or a
/// nightly one's (`kyverno-1.18.2`).
#[must_use]
pub fn kyverno_binary(loaded: &Loaded) -> String {
    let pins = crate::scenario::pins::Pins::builtin();
    pins.local.kyverno(&loaded.versions.kyverno).map_or("kyverno", |k| k.name).to_string()
}

/// `a`, run only on a cold start when warm starts are possible (a snapshot store is configured).
pub(crate) fn cold_only(opts: &Options, a: Action) -> Action {
    match opts.local.snapshots {
        Some(_) => Action::Only { start: StackStart::Cold, action: Box::new(a) },
        None => a,
    }
}

/// `a`, run only on a warm start; nothing when every start is cold.
pub(crate) fn warm_only(opts: &Options, a: Action) -> Option<Action> {
    opts.local.snapshots.as_ref().map(|_| Action::Only { start: StackStart::Warm, action: Box::new(a) })
}

/// Saving the clean "stack ready" state, the last action of the shared setup (cold starts only).
pub(crate) fn save_snapshot(opts: &Options, kyverno: &str) -> Option<Action> {
    let store = opts.local.snapshots.clone()?;
    let l = layout(opts);
    let binaries = snapshot_binaries(&l, kyverno);
    Some(cold_only(opts, Action::Local(LocalOp::SaveSnapshot { store, stack: l.dir, binaries })))
}

/// The run's local layout: run-private files under `<run>/local`, binaries from the options.
#[must_use]
pub fn layout(opts: &Options) -> Layout {
    let dir = opts.local.stack.clone().unwrap_or_else(|| opts.run_dir.join("local"));
    Layout { dir, bin: opts.local.bin.clone(), ports: opts.local.ports }
}

/// The stop entry of a component.
pub(crate) fn push_stop(b: &mut Builder, phase: PhaseKind, name: &str) {
    let stop = Action::Local(LocalOp::Stop { name: name.into(), grace: limits::STOP_GRACE });
    // Never kept: no process outlives kyvtel, even with --keep (the data directory and PKI stay).
    b.push_undo(phase, &format!("stop {name}"), vec![stop], vec![], false);
}

/// `start-control-plane`.
pub(crate) fn setup(b: &mut Builder, loaded: &Loaded, opts: &Options) {
    let name = PhaseKind::StartControlPlane;
    let l = layout(opts);
    let mut actions = Vec::new();
    if let Some(store) = opts.local.snapshots.clone() {
        let binaries = snapshot_binaries(&l, &kyverno_binary(loaded));
        actions.push(Action::Local(LocalOp::RestoreSnapshot { store, stack: l.dir.clone(), binaries }));
    }
    let credentials = LocalOp::Credentials { dir: l.pki().dir, kubeconfig: l.admin_kubeconfig(), server: l.server() };
    actions.push(cold_only(opts, Action::Local(credentials)));
    let starts = [
        (components::etcd(&l), Ready::Listening { port: l.ports.etcd_client }),
        (components::apiserver(&l), Ready::ApiServer),
        (
            components::controller_manager(&l),
            Ready::ServiceAccount { namespace: "default".into(), name: "default".into() },
        ),
    ];
    for (spawn, ready) in starts {
        let component = spawn.name.clone();
        actions.push(Action::Local(LocalOp::Start { spawn, ready, timeout: limits::COMPONENT }));
        push_stop(b, name, &component);
    }
    b.phases.push(Phase { kind: name, expects_denial: false, actions });
}

/// Every component's log file, for the evidence bundle (redacted there).
#[must_use]
pub fn component_logs(opts: &Options) -> Vec<(String, std::path::PathBuf)> {
    let l = layout(opts);
    crate::names::local::COMPONENTS
        .into_iter()
        .map(|n| (n.to_string(), l.log(n)))
        .filter(|(_, p)| p.is_file())
        .collect()
}
