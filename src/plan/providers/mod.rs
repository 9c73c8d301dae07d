//! What each provider contributes to a plan: its setup phases (before the first step) and the
//! evidence it gathers on failure. One file per provider that has any.

pub mod kind;
pub mod local;

use super::action::Gather;
use super::build::{Builder, ClusterTarget, Options};
use super::provider::Provider;
use crate::scenario::Loaded;

/// Pushes the provider's setup phases and their teardown entries.
pub(crate) fn setup(b: &mut Builder, loaded: &Loaded, opts: &Options, target: &ClusterTarget) {
    match opts.provider {
        Provider::Kind => kind::setup(b, loaded, opts, target),
        Provider::Local => local::setup(b, loaded, opts),
        // k3s is started before the plan runs; an existing cluster is never created.
        Provider::K3s | Provider::Existing => {}
    }
}

/// The evidence commands, run on failure before the teardown.
pub(crate) fn evidence(b: &Builder, target: &ClusterTarget) -> Vec<Gather> {
    let mut g = super::build::gathers(b, &target.name);
    match b.provider {
        Provider::Kind => {}
        // No kind cluster to export logs from.
        Provider::K3s | Provider::Existing => g.retain(|x| x.command.tool != crate::tools::Tool::Kind),
        // No Telepresence client and no kind: the components' own logs go into the bundle instead.
        Provider::Local => g.clear(),
    }
    g
}
