//! kind: create the cluster (kubeconfig from `kind get kubeconfig`), then preload the images.

use super::super::action::{Action, Phase};
use super::super::build::{Builder, ClusterTarget, Options, clean, images, limits, preload_phase};
use crate::plan::PhaseKind;
use crate::scenario::Loaded;
use crate::tools::kind;

/// `create-cluster` and `preload-images`.
pub(crate) fn setup(b: &mut Builder, loaded: &Loaded, opts: &Options, target: &ClusterTarget) {
    let name = PhaseKind::CreateCluster;
    let cluster = &target.name;
    let kubeconfig = &target.kubeconfig;
    let create = kind::create(
        cluster,
        &clean(&loaded.kind_config),
        &loaded.versions.node_image.reference,
        kubeconfig,
        kind::CREATE_WAIT,
    );
    // The run's kubeconfig is what `kind get kubeconfig` prints (facts.md §2), replacing the file
    // `create` wrote through `--kubeconfig` (which only keeps kind away from `~/.kube/config`).
    let save = Action::SaveOutput {
        command: b.cmd(kind::get_kubeconfig(cluster)),
        path: kubeconfig.clone(),
        timeout: limits::QUICK,
    };
    let actions = vec![b.run(create, limits::CREATE_CLUSTER), save];
    let del = b.run(kind::delete(cluster, kubeconfig), limits::TEARDOWN);
    let i = b.push_undo(name, "delete the kind cluster", vec![del], vec![], true);
    b.teardown[i].deletes_cluster = true;
    b.phases.push(Phase { kind: name, expects_denial: false, actions });
    // Pulled once on the host, loaded into kind.
    b.phases.push(preload_phase(&images(loaded), &opts.run_dir, target));
}
