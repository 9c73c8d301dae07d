//! Several scenarios in one cell: the cluster and Kyverno are set up once, each scenario runs its
//! own plan and teardown on it, and the cell's teardown (Kyverno, cluster) runs last, LIFO.

mod common;

use std::sync::Arc;

use common::fake_api::{FakeApi, Fault, JournalRunner, answer_the_rest};
use kyvtel::plan::Options;
use kyvtel::plan::cells::{Cell, group};
use kyvtel::run::Settings;
use kyvtel::run::cell::execute_cell;
use kyvtel::tools::install::ToolsDir;
use kyvtel::tools::runner::{RecordingRunner, Scripted};
use kyvtel::tools::{Runner, Tool};
use tokio::sync::watch;

fn the_cell(tmp: &std::path::Path) -> Cell {
    let root = common::root();
    let loaded: Vec<_> = ["scenarios/documented-recipe.yaml", "scenarios/documented-recipe-literal.yaml"]
        .iter()
        .map(|p| kyvtel::scenario::load(&root.join(p)).unwrap())
        .collect();
    let mut cells = group(
        &loaded,
        &Options { run_dir: tmp.to_path_buf(), tools: ToolsDir::at(tmp.join("tools")), ..Options::default() },
    );
    assert_eq!(cells.len(), 1, "both scenarios use the default node image and chart");
    cells.remove(0)
}

fn settings(runner: &Arc<RecordingRunner>, api: &FakeApi) -> Settings {
    let (_tx, rx) = watch::channel(false);
    let r: Arc<dyn Runner> = Arc::new(JournalRunner::new(runner.clone(), api.journal()));
    Settings {
        runner: r,
        token: "t".into(),
        keep: false,
        cancel: rx,
        progress: None,
        as_root: false,
        owns_cluster: true,
        processes: Default::default(),
        defer_teardown: false,
        strict_model: false,
    }
}

fn index_of(journal: &[String], needle: &str) -> Vec<usize> {
    journal.iter().enumerate().filter(|(_, l)| l.contains(needle)).map(|(i, _)| i).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cell_sets_up_once_runs_each_member_and_tears_down_last() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = the_cell(tmp.path());
    let api = FakeApi::new();
    // Each member stops at its workload wait; that is enough to see what each one set up and undid.
    api.on("wait", "DeploymentAvailable kyvtel-app/demo", Fault::Fail("no pods".into()));
    let runner = Arc::new(RecordingRunner::new());
    answer_the_rest(&runner);
    let s = settings(&runner, &api);
    let r = execute_cell(&cell, &cell.setup, &api, &s, |_| s.clone()).await;
    let j = api.calls();

    assert!(r.setup.passed, "{:?}", r.setup.phases);
    assert_eq!(r.members.len(), 2);
    assert!(r.members.iter().all(|(_, m)| !m.passed));
    assert_eq!(index_of(&j, "$ kind create cluster").len(), 1, "{j:#?}");
    assert_eq!(index_of(&j, "$ helm install kyverno").len(), 1, "{j:#?}");
    assert_eq!(index_of(&j, "$ telepresence helm install").len(), 2, "{j:#?}");
    assert_eq!(index_of(&j, "$ telepresence helm uninstall").len(), 2, "each member undoes its own install: {j:#?}");
    // The cell's teardown runs after both members: it deletes the cluster, so Kyverno is not
    // uninstalled first.
    let last_member_undo = *index_of(&j, "$ telepresence helm uninstall").last().unwrap();
    let cluster_delete = index_of(&j, "$ kind delete cluster");
    assert!(index_of(&j, "$ helm uninstall kyverno").is_empty(), "{j:#?}");
    assert_eq!(cluster_delete.len(), 1, "{j:#?}");
    assert!(last_member_undo < cluster_delete[0], "{j:#?}");
    assert!(r.teardown.iter().all(|t| !matches!(t.status, kyvtel::run::Status::Failed(_))), "{:?}", r.teardown);
    // Every member command targets the cell's cluster.
    assert!(j.iter().filter(|l| l.starts_with("$ kind ")).all(|l| l.contains(&cell.cluster)), "{j:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_shared_setup_runs_no_member_and_still_tears_down() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = the_cell(tmp.path());
    let api = FakeApi::new();
    let runner = Arc::new(RecordingRunner::new());
    runner.on(Tool::Helm, &["install", "kyverno"], Scripted::fail(1, "Error: INSTALLATION FAILED: timed out"));
    answer_the_rest(&runner);
    let s = settings(&runner, &api);
    let r = execute_cell(&cell, &cell.setup, &api, &s, |_| s.clone()).await;
    let j = api.calls();
    assert!(!r.setup.passed);
    assert!(r.setup.failure().unwrap().starts_with("install-kyverno: "), "{:?}", r.setup.failure());
    assert!(r.members.is_empty());
    assert!(index_of(&j, "$ telepresence").is_empty(), "no member may run: {j:#?}");
    let gathered = index_of(&j, "$ kind export logs");
    assert_eq!(gathered.len(), 1, "{j:#?}");
    let deleted = index_of(&j, "$ kind delete cluster");
    assert_eq!(deleted.len(), 1, "{j:#?}");
    assert!(gathered[0] < deleted[0], "kind's logs come before the teardown: {j:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_leaves_the_cells_cluster_and_kyverno() {
    let tmp = tempfile::tempdir().unwrap();
    let cell = the_cell(tmp.path());
    let api = FakeApi::new();
    api.on("wait", "DeploymentAvailable kyvtel-app/demo", Fault::Fail("no pods".into()));
    let runner = Arc::new(RecordingRunner::new());
    answer_the_rest(&runner);
    let s = Settings { keep: true, ..settings(&runner, &api) };
    execute_cell(&cell, &cell.setup, &api, &s, |_| s.clone()).await;
    let j = api.calls();
    assert!(
        index_of(&j, "$ helm uninstall kyverno").is_empty() && index_of(&j, "$ kind delete cluster").is_empty(),
        "{j:#?}"
    );
}
