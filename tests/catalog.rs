//! The catalog's committed outcomes: every fixture in `tests/fixtures/catalog/` (a judged pod or a
//! denial text from an actual run) passes `kyvtel verify` against its scenario and Telepresence
//! version, and every catalog scenario has one. Data-driven: one file, one case.

mod common;

use std::path::{Path, PathBuf};

use common::{kyvtel, root};

/// `(scenario, version, step)`: `step` is `None` for a pod.
fn parse(file: &Path) -> Option<(String, String, Option<String>)> {
    let name = file.file_name()?.to_str()?;
    let (stem, step) = if let Some(s) = name.strip_suffix(".pod.json") {
        (s, None)
    } else {
        let s = name.strip_suffix(".denial.txt")?;
        let (stem, step) = s.rsplit_once('.')?;
        (stem, Some(step.to_string()))
    };
    let (scenario, version) = stem.split_once('@')?;
    Some((scenario.to_string(), version.to_string(), step))
}

fn scenario_file(name: &str) -> PathBuf {
    kyvtel::scenario::catalog::files(&root().join("scenarios"))
        .expect("catalog")
        .into_iter()
        .find(|f| f.file_stem().is_some_and(|s| s == name))
        .unwrap_or_else(|| panic!("no catalog scenario `{name}`"))
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/catalog"))
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| parse(p).is_some())
        .collect();
    files.sort();
    files
}

fn verify(file: &Path, scenario: &str, version: &str, step: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = kyvtel();
    cmd.arg("verify").arg(scenario_file(scenario)).args(["--telepresence", version]);
    match step {
        None => cmd.arg("--pod").arg(file),
        Some(s) => cmd.arg("--denial").arg(file).args(["--step", s]),
    };
    let out = cmd.output().expect("run");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn every_committed_outcome_passes_verify_for_its_scenario_and_version() {
    let files = fixtures();
    assert!(files.len() >= 30, "{} fixtures", files.len());
    for f in &files {
        let (scenario, version, step) = parse(f).expect("parsed");
        let (code, out) = verify(f, &scenario, &version, step.as_deref());
        assert_eq!(code, Some(0), "{}: {out}", f.display());
    }
}

#[test]
fn every_catalog_scenario_has_a_committed_outcome() {
    let have: Vec<String> = fixtures().iter().filter_map(|f| parse(f).map(|p| p.0)).collect();
    for f in kyvtel::scenario::catalog::files(&root().join("scenarios")).expect("catalog") {
        let name = f.file_stem().expect("stem").to_string_lossy().into_owned();
        assert!(have.contains(&name), "scenario {name} has no fixture in tests/fixtures/catalog/");
    }
}

#[test]
fn an_outcome_of_another_scenario_or_version_fails() {
    let dir = root().join("tests/fixtures/catalog");
    // deniedOnly: the pod rule's ablation denial names a rule the container rule's ablation forbids.
    let pod_rule = dir.join("without-exclusion-pod-rule@2.31.0.install-telepresence.denial.txt");
    let (code, out) = verify(&pod_rule, "without-exclusion-container-rule", "2.31.0", Some("install-telepresence"));
    assert_eq!(code, Some(1), "{out}");
    // From 2.29 the copied context is denied; before, the same scenario expects no denial at all.
    let denied = dir.join("no-agent-override@2.31.0.intercept.denial.txt");
    let (code, out) = verify(&denied, "no-agent-override", "2.20.2", Some("intercept"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("expects no denial"), "{out}");
    // A pod with the recipe's agent is not what the least-privilege scenario expects.
    let recipe = dir.join("documented-recipe@2.31.0.pod.json");
    let (code, out) = verify(&recipe, "least-privilege", "2.31.0", None);
    assert_eq!(code, Some(1), "{out}");
}
