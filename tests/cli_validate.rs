//! `kyvtel validate`: shipped scenarios pass; every bad-input file fails with its exact location.

mod common;

use std::path::PathBuf;

use common::{clusterpolicy_crd, kyvtel};
use rstest::rstest;

#[test]
fn every_shipped_scenario_validates() {
    let out = kyvtel().arg("validate").env("KYVTEL_SHARED_DIR", common::shared_dir()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: scenarios/documented-recipe.yaml (documented-recipe)"), "{stdout}");
}

/// Each file's first line says what must be reported: `# expect: [FILE:]LINE:COL: MESSAGE` (FILE
/// relative to the bad file's folder), `# expect: MESSAGE` for a problem without a location,
/// `# expect-crd: ...` when the check needs the ClusterPolicy CRD. An empty file expects
/// "the file is empty".
#[rstest]
fn bad_input_is_reported_at_its_location(#[files("tests/fixtures/bad/*.yaml")] path: PathBuf) {
    let src = std::fs::read_to_string(&path).unwrap();
    let rel = path.strip_prefix(common::root()).unwrap().to_path_buf();
    let dir = rel.parent().unwrap().display().to_string();
    let header = src.lines().next().unwrap_or("");
    let mut cmd = kyvtel();
    cmd.arg("validate").arg(&rel);
    let expected = if let Some(e) = header.strip_prefix("# expect-crd: ") {
        let Some(crd) = clusterpolicy_crd() else { return };
        cmd.arg("--crd").arg(crd);
        format!("error: {dir}/{e}")
    } else if let Some(e) = header.strip_prefix("# expect: ") {
        let located = e.split(':').take(2).all(|n| n.trim().parse::<u32>().is_ok());
        if located { format!("error: {}:{e}", rel.display()) } else { format!("error: {}: {e}", rel.display()) }
    } else {
        format!("error: {}: the file is empty", rel.display())
    };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: stderr:\n{stderr}", rel.display());
    // Several problems print one per line; only the first carries the `error: ` prefix.
    let wanted = expected.trim_start_matches("error: ");
    assert!(
        stderr.lines().any(|l| l.trim_start_matches("error: ").starts_with(wanted)),
        "{}: expected a line starting with\n  {wanted}\nstderr:\n{stderr}",
        rel.display()
    );
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    assert!(
        out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("valid"),
        "nothing may be reported valid"
    );
}

#[test]
fn a_missing_scenario_file_exits_2() {
    let out = kyvtel().args(["validate", "scenarios/does-not-exist.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "error: scenarios/does-not-exist.yaml: file not found");
}

#[test]
fn bad_input_never_executes_anything() {
    // `plan` and `run` load the scenario first: a bad file stops them with exit 2 before any step.
    for cmd in [["plan", "tests/fixtures/bad/unknown-version.yaml"], ["run", "tests/fixtures/bad/unknown-version.yaml"]]
    {
        let out = kyvtel().args(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{cmd:?} printed: {}", String::from_utf8_lossy(&out.stdout));
    }
}
