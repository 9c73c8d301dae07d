//! `kyvtel run` input and prerequisite handling: nothing runs on bad input (exit 2) or when the
//! provisioned tools cannot honour a scenario's versions (exit 3).

mod common;

use common::kyvtel;

#[test]
fn a_telepresence_version_the_tools_cannot_run_is_refused_before_anything_runs() {
    let out = kyvtel().args(["run", "tests/fixtures/run/recipe-telepresence-2.27.yaml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("recipe-on-telepresence-2-27: needs Telepresence 2.27.4"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn provider_flags_that_do_not_fit_are_usage_errors() {
    for (args, msg) in [
        (vec!["--provider", "k3s"], "--provider k3s needs --k3s-image"),
        (vec!["--provider", "existing"], "--provider existing needs --kubeconfig"),
        (vec!["--k3s-image", "rancher/k3s:x"], "--k3s-image goes with --provider k3s"),
        (vec!["--reuse", "--provider", "existing", "--kubeconfig", "x"], "--reuse goes with --provider kind"),
    ] {
        let out = kyvtel().args(["run", "scenarios/documented-recipe.yaml"]).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(msg), "{args:?}: {stderr}");
    }
}
