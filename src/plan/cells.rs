//! Cells: the scenarios of one run that share one kind cluster and one Kyverno install.
//!
//! Scenarios with the same node image (by digest) and Kyverno chart form a cell. The cell's
//! [`Cell::setup`] creates the cluster, preloads the union of its scenarios' images and installs
//! Kyverno once; each scenario's plan ([`Cell::scenarios`]) is its normal plan without those phases,
//! run one after another on the cell's cluster. Policies and Telepresence are per scenario: each
//! scenario's teardown removes them before the next one starts.
//!
//! A scenario joins a cell only if the phases it would share are identical, built for that cell:
//! the same kind release and kind config, and the same `install-kyverno` phase (chart values,
//! timeouts), or none in both. Otherwise it gets a cell of its own. So does a scenario whose
//! `installKyverno` is not its first step, or expects a denial: its Kyverno install is part of what
//! it tests, so it stays in the scenario's own plan and its cell shares only the cluster.

use std::path::PathBuf;

use serde::Serialize;

use super::PhaseKind;
use super::action::{Phase, Plan, Teardown};
use super::build::{ClusterTarget, Options, build_in, images, preload_phase};
use crate::scenario::Loaded;
use crate::scenario::expect::StepOutcome;
use crate::scenario::model::Step;
use crate::tools::env;

/// The phases a cell runs once for all its scenarios, in order.
pub const SHARED_PHASES: [PhaseKind; 3] =
    [PhaseKind::CreateCluster, PhaseKind::PreloadImages, PhaseKind::InstallKyverno];

/// The shared phases of a cell whose scenario installs Kyverno itself (see the module docs).
const CLUSTER_PHASES: [PhaseKind; 2] = [PhaseKind::CreateCluster, PhaseKind::PreloadImages];

/// The local provider's shared phases: one stack (control plane, Kyverno) for the cell.
const LOCAL_SHARED_PHASES: [PhaseKind; 2] = [PhaseKind::StartControlPlane, PhaseKind::InstallKyverno];

/// The local provider's shared phases when a scenario installs Kyverno itself.
const LOCAL_CLUSTER_PHASES: [PhaseKind; 1] = [PhaseKind::StartControlPlane];

/// The shared phases for `provider`, and for a scenario that installs Kyverno itself (`exclusive`).
fn shared_phases(provider: super::Provider, exclusive: bool) -> &'static [PhaseKind] {
    match (provider == super::Provider::Local, exclusive) {
        (false, false) => &SHARED_PHASES,
        (false, true) => &CLUSTER_PHASES,
        (true, false) => &LOCAL_SHARED_PHASES,
        (true, true) => &LOCAL_CLUSTER_PHASES,
    }
}

/// A member's name and run directory: the scenario's name, with the Telepresence version on the
/// local provider (where one scenario runs once per version).
fn member_id(loaded: &Loaded, opts: &Options) -> String {
    match opts.provider {
        super::Provider::Local => format!("{}@{}", loaded.name(), loaded.versions.telepresence),
        _ => loaded.name().to_string(),
    }
}

/// The longest cell cluster name: well below kind's 50-character warning threshold (node container
/// host names append `-control-plane`).
// upstream: kubernetes-sigs/kind pkg/cluster/internal/create/create.go@main (`clusterNameMax = 50`).
const MAX_CLUSTER_NAME: usize = 40;

/// What scenarios must have in common to share a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellKey {
    /// The node image's digest, `sha256:<hex>`.
    pub node_image: String,
    /// The Kyverno chart version.
    pub kyverno_chart: String,
}

impl CellKey {
    /// The key of a loaded scenario.
    #[must_use]
    pub fn of(loaded: &Loaded) -> CellKey {
        let v = &loaded.versions;
        let digest = v.node_image.reference.rsplit_once('@').map_or(v.node_image.reference.as_str(), |(_, d)| d);
        CellKey { node_image: digest.to_string(), kyverno_chart: v.kyverno_chart.clone() }
    }
}

/// One cluster and one Kyverno install, and the scenarios that run on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// What its scenarios have in common.
    pub key: CellKey,
    /// The kind cluster name, `kyvtel-cell-k<kubernetes>-kc<chart>` (with `-2`, `-3`… when taken).
    pub cluster: String,
    /// The cell's run directory (`<run_dir>/<cluster>`), holding the shared kubeconfig.
    pub run_dir: PathBuf,
    /// The kubeconfig every command of the cell uses, its scenarios' included.
    pub kubeconfig: PathBuf,
    /// The shared phases (those of [`SHARED_PHASES`] the scenarios have) and their teardown (Kyverno
    /// uninstall, cluster delete), which runs after the cell's last scenario. Its `scenario` field is
    /// the cluster name, its versions those of the first scenario.
    pub setup: Plan,
    /// The scenarios' plans, in input order, without the shared phases; each keeps its own run
    /// directory (`<run_dir>/<scenario>`) for Helm and Telepresence state.
    pub scenarios: Vec<Plan>,
}

impl Cell {
    /// The cluster every plan of the cell runs on.
    #[must_use]
    pub fn target(&self) -> ClusterTarget {
        ClusterTarget { name: self.cluster.clone(), kubeconfig: self.kubeconfig.clone() }
    }
}

/// The parts of a scenario's plan that a cell shares, built for that cell: they must be equal to join.
#[derive(Debug, PartialEq)]
struct SharedPart {
    kind: String,
    phases: Vec<Phase>,
    teardown: Vec<Teardown>,
}

/// A cell being grouped.
struct Draft {
    cell: Cell,
    shared: SharedPart,
    images: Vec<String>,
    /// The scenario installs Kyverno itself: nobody joins, only the cluster is shared.
    exclusive: bool,
}

/// Whether the scenario's Kyverno install can be done for it by a cell: absent, or its first step
/// and not expected to be denied.
fn kyverno_shareable(loaded: &Loaded) -> bool {
    let steps = &loaded.scenario.spec.steps;
    match steps.iter().position(|s| matches!(s, Step::InstallKyverno(_))) {
        None => true,
        Some(i) => i == 0 && matches!(steps[i].expect(), StepOutcome::Ok),
    }
}

/// The shared part of `loaded`'s plan, built for the cell at `cell_opts` and `target`.
fn shared_part(loaded: &Loaded, cell_opts: &Options, target: &ClusterTarget) -> SharedPart {
    // Images differ between members (their union is preloaded), so they are not compared.
    let p = build_in(loaded, cell_opts, target).only_phases(&[
        PhaseKind::CreateCluster,
        PhaseKind::StartControlPlane,
        PhaseKind::InstallKyverno,
    ]);
    SharedPart { kind: loaded.versions.kind.clone(), phases: p.phases, teardown: p.teardown }
}

/// Lower-case letters, digits and single dashes; no dash at either end.
fn dns_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// A cluster name for a cell of `loaded`, not in `taken`, DNS-safe and at most [`MAX_CLUSTER_NAME`] long.
fn cluster_name(loaded: &Loaded, taken: &[&str]) -> String {
    let v = &loaded.versions;
    let base = dns_safe(&format!("kyvtel-cell-k{}-kc{}", v.node_image.kubernetes, v.kyverno_chart));
    (1..)
        .map(|n| {
            let suffix = if n == 1 { String::new() } else { format!("-{n}") };
            let head: String = base.chars().take(MAX_CLUSTER_NAME - suffix.len()).collect();
            format!("{}{suffix}", head.trim_end_matches('-'))
        })
        .find(|name| !taken.contains(&name.as_str()))
        .unwrap_or(base)
}

/// Groups scenarios into cells, in input order (a cell is where its first scenario is).
///
/// `opts.run_dir` is the parent of the run directories: each cell gets `<run_dir>/<cluster>`, each
/// scenario `<run_dir>/<scenario name>`.
#[must_use]
pub fn group(loaded: &[Loaded], opts: &Options) -> Vec<Cell> {
    let mut drafts: Vec<Draft> = Vec::new();
    for l in loaded {
        let key = CellKey::of(l);
        let mut member_opts = Options { run_dir: opts.run_dir.join(member_id(l, opts)), ..opts.clone() };
        let exclusive = !kyverno_shareable(l);
        let shared_phases = shared_phases(opts.provider, exclusive);
        let joined = drafts.iter_mut().filter(|d| !exclusive && !d.exclusive && d.cell.key == key).find(|d| {
            let cell_opts = Options { run_dir: d.cell.run_dir.clone(), ..opts.clone() };
            shared_part(l, &cell_opts, &d.cell.target()) == d.shared
        });
        let d = match joined {
            Some(d) => d,
            None => {
                let taken: Vec<&str> = drafts.iter().map(|d| d.cell.cluster.as_str()).collect();
                let cluster = cluster_name(l, &taken);
                let run_dir = opts.run_dir.join(&cluster);
                let kubeconfig = match opts.provider {
                    super::Provider::Local => run_dir.join("local/admin.kubeconfig"),
                    _ => env::kubeconfig(&run_dir),
                };
                let target = ClusterTarget { name: cluster.clone(), kubeconfig: kubeconfig.clone() };
                let cell_opts = Options { run_dir: run_dir.clone(), ..opts.clone() };
                let shared = shared_part(l, &cell_opts, &target);
                // Filled in below, once every member is known.
                let setup = build_in(l, &cell_opts, &target).only_phases(shared_phases);
                let cell = Cell { key, cluster, run_dir, kubeconfig, setup, scenarios: Vec::new() };
                drafts.push(Draft { cell, shared, images: Vec::new(), exclusive });
                drafts.last_mut().expect("just pushed")
            }
        };
        for img in images(l) {
            if !d.images.contains(&img) {
                d.images.push(img);
            }
        }
        if opts.provider == super::Provider::Local {
            // Every member joins the cell's stack: its PKI, components and admin kubeconfig.
            member_opts.local.stack = Some(d.cell.run_dir.join("local"));
        }
        d.cell.scenarios.push(build_in(l, &member_opts, &d.cell.target()).without_phases(shared_phases));
    }
    drafts
        .into_iter()
        .map(|d| {
            let mut cell = d.cell;
            let preload = preload_phase(&d.images, &cell.run_dir, &cell.target());
            for p in &mut cell.setup.phases {
                if p.kind == preload.kind {
                    *p = preload.clone();
                }
            }
            cell.setup.scenario = cell.cluster.clone();
            // The shared setup has no Telepresence yet: on its failure, only kind's logs are gathered.
            cell.setup.evidence.retain(|g| g.command.tool != crate::tools::Tool::Telepresence);
            cell
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Action;
    use crate::scenario::{self, Loaded};

    fn load(path: &str) -> Loaded {
        scenario::load(Path::new(path)).unwrap()
    }

    fn recipe() -> Loaded {
        load("scenarios/documented-recipe.yaml")
    }

    fn literal() -> Loaded {
        load("scenarios/documented-recipe-literal.yaml")
    }

    fn names(c: &Cell) -> Vec<&str> {
        c.scenarios.iter().map(|p| p.scenario.as_str()).collect()
    }

    fn phase_names(p: &Plan) -> Vec<PhaseKind> {
        p.phases.iter().map(|ph| ph.kind).collect()
    }

    fn commands(p: &Plan) -> Vec<String> {
        p.phases
            .iter()
            .flat_map(|ph| &ph.actions)
            .chain(p.teardown.iter().flat_map(|t| &t.actions))
            .filter_map(|a| match a {
                Action::Run { command, .. } => Some(command.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The first release listed for the pinned kind that is not `current`, e.g. another Kubernetes minor.
    fn other_node_image(current: &str) -> String {
        let pins = crate::scenario::pins::Pins::builtin();
        let kind = pins.kind.release(&pins.kind.default).unwrap();
        kind.node_images.iter().find(|i| i.as_str() != current).cloned().expect("the pins list two node images")
    }

    #[test]
    fn scenarios_with_the_same_image_and_chart_share_one_cell() {
        let cells = group(&[recipe(), literal()], &Options::default());
        assert_eq!(cells.len(), 1);
        let c = &cells[0];
        assert_eq!(c.cluster, "kyvtel-cell-k1-35-8-kc3-9-1");
        assert_eq!(names(c), ["documented-recipe", "documented-recipe-literal"]);
        assert_eq!(phase_names(&c.setup), SHARED_PHASES);
        let labels: Vec<&str> = c.setup.teardown.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["delete the kind cluster", "uninstall Kyverno"]);
        for p in &c.scenarios {
            assert!(phase_names(p).iter().all(|n| !SHARED_PHASES.contains(n)), "{:?}", phase_names(p));
            assert!(p.teardown.iter().all(|t| !SHARED_PHASES.contains(&t.registered_by)));
            assert_eq!(p.cluster, c.cluster);
            assert_eq!(p.run_dir, Path::new("target/kyvtel-work/RUN_ID").join(&p.scenario));
            let kubeconfig = c.kubeconfig.display().to_string();
            assert_eq!(kubeconfig, "target/kyvtel-work/RUN_ID/kyvtel-cell-k1-35-8-kc3-9-1/kubeconfig");
            assert!(p.env.contains(&("KUBECONFIG".into(), kubeconfig.clone())), "{:?}", p.env);
            for cmd in p.phases.iter().flat_map(|ph| &ph.actions).filter_map(|a| match a {
                Action::Run { command, .. } => Some(command),
                _ => None,
            }) {
                assert!(cmd.env.contains(&("KUBECONFIG".into(), kubeconfig.clone())), "{cmd}");
            }
        }
        assert!(commands(&c.setup).iter().any(|c| c.contains("--kubeconfig target/kyvtel-work/RUN_ID/kyvtel-cell-")));
    }

    #[test]
    fn a_different_chart_makes_another_cell() {
        let mut other = literal();
        let pins = crate::scenario::pins::Pins::builtin();
        let chart = pins.kyverno_chart.releases.keys().find(|k| **k != other.versions.kyverno_chart).cloned();
        let chart = chart.expect("the pins list two Kyverno charts");
        other.versions.kyverno_chart = chart.clone();
        let cells = group(&[recipe(), other], &Options::default());
        assert_eq!(cells.len(), 2);
        assert_eq!(names(&cells[1]), ["documented-recipe-literal"]);
        assert_ne!(cells[0].cluster, cells[1].cluster);
        assert!(commands(&cells[1].setup).iter().any(|c| c.contains(&format!("kyverno-{chart}.tgz"))));
    }

    #[test]
    fn a_different_node_image_makes_another_cell() {
        let mut other = literal();
        let image = other_node_image(&other.versions.node_image.reference);
        other.versions.node_image = crate::scenario::pins::NodeImage::parse(&image).unwrap();
        let cells = group(&[recipe(), other], &Options::default());
        assert_eq!(cells.len(), 2);
        assert!(commands(&cells[1].setup).iter().any(|c| c.contains(&image)));
    }

    #[test]
    fn different_kyverno_values_make_separate_cells_with_distinct_names() {
        let mut other = literal();
        let values = other.scenario.spec.kyverno.values.get_or_insert_default();
        values.insert("admissionController".into(), serde_json::json!({"replicas": 3}));
        let cells = group(&[recipe(), other, recipe()], &Options::default());
        assert_eq!(cells.len(), 2);
        assert_eq!(names(&cells[0]), ["documented-recipe", "documented-recipe"]);
        assert_eq!(names(&cells[1]), ["documented-recipe-literal"]);
        assert_eq!(cells[1].cluster, "kyvtel-cell-k1-35-8-kc3-9-1-2");
    }

    #[rstest::rstest]
    #[case::not_the_first_step(false)]
    #[case::expected_to_be_denied(true)]
    fn a_scenario_that_tests_its_kyverno_install_keeps_it(#[case] denied: bool) {
        let mut other = literal();
        let steps = &mut other.scenario.spec.steps;
        if denied {
            steps[0] = Step::InstallKyverno(crate::scenario::model::StepOptions {
                expect: Some(StepOutcome::Denied(Vec::new())),
                timeout: None,
                when: None,
            });
        } else {
            let first = steps.remove(0);
            steps.insert(1, first);
        }
        let cells = group(&[recipe(), other, literal()], &Options::default());
        assert_eq!(cells.len(), 2, "{:?}", cells.iter().map(names).collect::<Vec<_>>());
        // The unmodified scenarios still share their Kyverno install.
        assert_eq!(names(&cells[0]), ["documented-recipe", "documented-recipe-literal"]);
        assert_eq!(phase_names(&cells[0].setup), SHARED_PHASES);
        assert_eq!(names(&cells[1]), ["documented-recipe-literal"]);
        assert_eq!(cells[1].cluster, "kyvtel-cell-k1-35-8-kc3-9-1-2");
        assert_eq!(phase_names(&cells[1].setup), CLUSTER_PHASES);
        let own = &cells[1].scenarios[0];
        assert!(phase_names(own).contains(&PhaseKind::InstallKyverno), "{:?}", phase_names(own));
        assert!(own.teardown.iter().any(|t| t.label == "uninstall Kyverno"));
        assert!(own.teardown.iter().all(|t| t.registered_by != PhaseKind::CreateCluster));
    }

    #[test]
    fn undo_still_points_at_the_intercept_leave_entry() {
        let cells = group(&[recipe(), literal()], &Options::default());
        for p in &cells[0].scenarios {
            let undo: Vec<usize> = p
                .phases
                .iter()
                .flat_map(|ph| &ph.actions)
                .filter_map(|a| match a {
                    Action::Undo { index } => Some(*index),
                    _ => None,
                })
                .collect();
            if p.scenario == "documented-recipe" {
                assert_eq!(undo.len(), 1);
            }
            for i in undo {
                assert!(p.teardown[i].label.starts_with("leave the intercept"), "{}", p.teardown[i].label);
            }
        }
    }

    #[test]
    fn the_cell_preloads_the_union_of_images_once_in_first_seen_order() {
        let a = recipe();
        let mut b = literal();
        // A second workload image only b needs.
        let extra = "registry.k8s.io/pause:3.10";
        for f in &mut b.manifests {
            for d in &mut f.documents {
                if d.value["kind"] == "Deployment" {
                    d.value["spec"]["template"]["spec"]["initContainers"] =
                        serde_json::json!([{"name": "init", "image": extra}]);
                }
            }
        }
        let cells = group(&[a.clone(), b.clone()], &Options::default());
        let pulls: Vec<String> =
            commands(&cells[0].setup).into_iter().filter(|c| c.starts_with("docker pull")).collect();
        let mut expected = images(&a);
        expected.extend(images(&b).into_iter().filter(|i| !images(&a).contains(i)));
        assert!(expected.contains(&extra.to_string()), "{expected:?}");
        let expected: Vec<String> =
            expected.iter().map(|i| format!("docker pull --platform linux/amd64 {i}")).collect();
        assert_eq!(pulls, expected);
    }

    #[test]
    fn cluster_names_are_dns_safe_and_bounded() {
        let mut l = recipe();
        l.versions.kyverno_chart = "3.9.0-RC.1+Build_7".into();
        l.versions.node_image.kubernetes = "1.35.8".repeat(8);
        let name = cluster_name(&l, &[]);
        assert!(name.len() <= MAX_CLUSTER_NAME, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
        assert!(!name.ends_with('-') && !name.contains("--"), "{name}");
        let taken = [name.as_str()];
        let second = cluster_name(&l, &taken);
        assert!(second.ends_with("-2") && second.len() <= MAX_CLUSTER_NAME, "{second}");
        assert_eq!(dns_safe("3.9.0-RC.1+Build_7"), "3-9-0-rc-1-build-7");
    }
}
