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

/// Each file of the corpus is one class of bad input. Its first lines say what must be reported,
/// each as a line of the output (exit 2 always): `# expect: [LINE:COL: ]MESSAGE` in the file itself,
/// `# expect-file: FILE:LINE:COL: MESSAGE` in a file it refers to (FILE relative to the bad file's
/// folder; `# expect-crd:` is the same, checked with the ClusterPolicy CRD). An empty file expects
/// "the file is empty". Each message is a prefix of the printed one.
#[rstest]
fn bad_input_is_reported_at_its_location(#[files("tests/fixtures/bad/*.yaml")] path: PathBuf) {
    let src = std::fs::read_to_string(&path).unwrap();
    let rel = path.strip_prefix(common::root()).unwrap().to_path_buf();
    let dir = rel.parent().unwrap().display().to_string();
    let mut cmd = kyvtel();
    cmd.arg("validate").arg(&rel).arg("--crd").arg(clusterpolicy_crd());
    let mut expected: Vec<String> = src
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|header| {
            if let Some(e) = header.strip_prefix("# expect-crd: ").or_else(|| header.strip_prefix("# expect-file: ")) {
                Some(format!("{dir}/{e}"))
            } else if let Some(e) = header.strip_prefix("# expect: ") {
                let located = e.split(':').take(2).all(|n| n.trim().parse::<u32>().is_ok());
                Some(if located { format!("{}:{e}", rel.display()) } else { format!("{}: {e}", rel.display()) })
            } else {
                None
            }
        })
        .collect();
    if expected.is_empty() {
        expected.push(format!("{}: the file is empty", rel.display()));
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: stderr:\n{stderr}", rel.display());
    // Several problems print one per line; only the first carries the `error: ` prefix.
    for wanted in &expected {
        assert!(
            stderr.lines().any(|l| l.trim_start_matches("error: ").starts_with(wanted.as_str())),
            "{}: expected a line starting with\n  {wanted}\nstderr:\n{stderr}",
            rel.display()
        );
    }
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
