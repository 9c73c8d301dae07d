//! `--reuse`: a kind cluster is reused only when its fingerprint matches; otherwise the run
//! refuses and lists every difference.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::fake_api::FakeApi;
use kyvtel::plan::{self, Options};
use kyvtel::run::reuse::{self, Decision};
use kyvtel::tools::Tool;
use kyvtel::tools::runner::{RecordingRunner, Scripted};

fn recipe_plan() -> kyvtel::plan::Plan {
    let loaded = kyvtel::scenario::load(&common::root().join("scenarios/documented-recipe.yaml")).unwrap();
    plan::build(&loaded, &Options::default())
}

fn kind_config() -> String {
    std::fs::read_to_string(common::root().join("kind-config/default.yaml")).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kyvtel-reuse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn decide(runner: RecordingRunner, api: &FakeApi, kubeconfig: &Path) -> Decision {
    let p = recipe_plan();
    let want = reuse::expected(&p, &kind_config());
    reuse::decide(&p, api, Arc::new(runner), &want, kubeconfig).await.unwrap()
}

fn cluster_exists() -> RecordingRunner {
    let r = RecordingRunner::new();
    r.on(
        Tool::Kind,
        &["get", "kubeconfig", "--name", "kyvtel-documented-recipe"],
        Scripted::ok("apiVersion: v1\nkind: Config\n"),
    );
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cluster_yet_means_create_and_record() {
    let r = RecordingRunner::new();
    r.on(Tool::Kind, &["get", "kubeconfig"], Scripted::fail(1, "ERROR: could not locate any control plane nodes"));
    let api = FakeApi::new();
    let kc = tmp("none").join("kubeconfig");
    assert_eq!(decide(r, &api, &kc).await, Decision::Create);
    assert!(!kc.exists(), "nothing is written for a cluster that does not exist");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_matching_fingerprint_reuses_the_cluster_and_skips_its_setup() {
    let p = recipe_plan();
    let api = FakeApi::new();
    api.fingerprint_is(Some(reuse::expected(&p, &kind_config())));
    let dir = tmp("match");
    let kc = dir.join("kubeconfig");
    assert_eq!(decide(cluster_exists(), &api, &kc).await, Decision::Reuse);
    assert_eq!(std::fs::read_to_string(&kc).unwrap(), "apiVersion: v1\nkind: Config\n");
    let reused = reuse::reused(p.clone());
    let names: Vec<&str> = reused.phases.iter().map(|ph| ph.kind.name()).collect();
    assert!(!names.contains(&"create-cluster") && !names.contains(&"install-kyverno"), "{names:?}");
    assert!(names.contains(&"preload-images") && names.contains(&"apply-policies"), "{names:?}");
    let text = plan::render::text(&reused);
    assert!(!text.contains("kind delete cluster") && !text.contains("helm uninstall kyverno"), "{text}");
    assert_eq!(reused.teardown.len(), p.teardown.len() - 2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mismatching_fingerprint_is_refused_with_every_difference() {
    let p = recipe_plan();
    let mut found: BTreeMap<String, String> = reuse::expected(&p, &kind_config());
    found.insert("kyvernoChart".into(), "3.8.2".into());
    found.insert("configHash".into(), "sha256:other".into());
    let api = FakeApi::new();
    api.fingerprint_is(Some(found));
    let dir = tmp("mismatch");
    let Decision::Refuse(why) = decide(cluster_exists(), &api, &dir.join("kubeconfig")).await else {
        panic!("expected a refusal")
    };
    assert!(why.starts_with("cluster kyvtel-documented-recipe cannot be reused"), "{why}");
    assert!(why.contains("kyvernoChart: run needs 3.9.1, cluster has 3.8.2"), "{why}");
    assert!(why.contains("configHash: run needs sha256:"), "{why}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_without_fingerprint_is_refused() {
    let api = FakeApi::new();
    api.fingerprint_is(None);
    let dir = tmp("missing");
    let d = decide(cluster_exists(), &api, &dir.join("kubeconfig")).await;
    assert!(matches!(d, Decision::Refuse(_)), "{d:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_fingerprint_covers_versions_digest_and_config() {
    let p = recipe_plan();
    let fp = reuse::expected(&p, &kind_config());
    assert_eq!(fp["kind"], "v0.33.0");
    assert!(fp["nodeImage"].contains("@sha256:07b2536e"));
    assert_eq!(fp["kyvernoChart"], "3.9.1");
    assert_ne!(fp["configHash"], reuse::expected(&p, "kind: Cluster\n")["configHash"]);
}
