//! `kyvtel matrix` and `kyvtel run --cell`: the cells of scenarios/matrix.yaml, pruned by the pins'
//! Kubernetes ranges, and the GitHub Actions matrix of the nightly job.

mod common;

use common::kyvtel;
use serde_json::Value;

fn stdout(args: &[&str]) -> String {
    let out = kyvtel().args(args).output().expect("run");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn every_cell_is_listed_and_pruning_is_computed_from_the_pins() {
    let cells: Value = serde_json::from_str(&stdout(&["matrix", "--output", "json"])).expect("JSON");
    let cells = cells.as_array().expect("cells");
    let kind: Vec<&Value> = cells.iter().filter(|c| c["provider"] == "kind").collect();
    assert_eq!(kind.len(), 3 * 3 * 4, "kubernetes x charts x telepresence");
    // Every chart pins `kubernetes: <1.36`: exactly the 1.36 cells are pruned, each with that reason.
    for c in &kind {
        let on_136 = c["kubernetes"].as_str().is_some_and(|k| k.starts_with("1.36."));
        assert_eq!(c["pruned"].is_string(), on_136, "{c}");
        if on_136 {
            assert!(c["pruned"].as_str().unwrap().contains("supports Kubernetes >="), "{c}");
        } else {
            assert!(c["nodeImage"].as_str().is_some_and(|i| i.contains("@sha256:")), "{c}");
            assert!(!c["scenarios"].as_array().unwrap().is_empty(), "{c}");
        }
    }
    let local: Vec<&Value> = cells.iter().filter(|c| c["provider"] == "local").collect();
    let runs: Vec<&str> = local.iter().filter(|c| c["pruned"].is_null()).map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        runs,
        [
            "local-kyverno1.19.1-tp2.20.2",
            "local-kyverno1.19.1-tp2.31.0",
            "local-kyverno1.18.2-tp2.20.2",
            "local-kyverno1.18.2-tp2.31.0"
        ]
    );
}

#[test]
fn a_nightly_kyverno_without_a_wrapper_is_listed_not_buildable() {
    let dir = std::env::temp_dir().join(format!("kyvtel-cli-matrix-nightly-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("matrix.yaml");
    let matrix = "kind:\n  kind: v0.33.0\n  kubernetes: []\n  kyvernoCharts: []\n  telepresence: []\nlocal:\n  \
                  kyverno: ['1.19.1']\n  nightlyKyverno: ['1.17.9']\n  telepresence: ['2.31.0']\n";
    std::fs::write(&file, matrix).unwrap();
    let cells: Value =
        serde_json::from_str(&stdout(&["matrix", "--output", "json", "--file", file.to_str().unwrap()])).expect("JSON");
    let nightly =
        cells.as_array().unwrap().iter().find(|c| c["kyverno"] == "1.17.9").expect("the nightly cell").clone();
    let why = nightly["pruned"].as_str().unwrap_or_default();
    assert!(why.contains("not buildable") && why.contains("builds Kyverno 1.19.1, 1.18.2"), "{nightly}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_github_output_lists_only_runnable_cells_of_the_provider() {
    let m: Value =
        serde_json::from_str(&stdout(&["matrix", "--provider", "kind", "--output", "github"])).expect("JSON");
    let include = m["include"].as_array().expect("include");
    assert_eq!(include.len(), 2 * 3 * 4);
    assert!(include.iter().all(|c| c["provider"] == "kind" && c["cell"].as_str().unwrap().starts_with("kind-k1.3")));
    let text = stdout(&["matrix"]);
    assert!(text.starts_with("40 cell(s), 28 run, 12 pruned"), "{text}");
}

#[rstest::rstest]
#[case::unknown(&["--provider", "local", "--cell", "nope"], "no such cell")]
#[case::pruned(&["--provider", "kind", "--cell", "kind-k1.36-kyverno3.9.1-tp2.32.1"], "is pruned: Kyverno chart 3.9.1 supports")]
#[case::wrong_provider(&["--provider", "local", "--cell", "kind-k1.35-kyverno3.9.1-tp2.32.1"], "run it with --provider kind")]
fn run_cell_refuses_what_cannot_run_before_anything_executes(#[case] args: &[&str], #[case] says: &str) {
    let out = kyvtel().args(["run", "scenarios/documented-recipe.yaml"]).args(args).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn a_malformed_matrix_is_located() {
    let dir = std::env::temp_dir().join(format!("kyvtel-cli-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("matrix.yaml");
    std::fs::write(&file, "kind:\n  kind: v0.33.0\n  kubernetes: [\"1.35\"]\n  kyvernoCharts: [\"9.9.9\"]\n  telepresence: []\nlocal:\n  kyverno: []\n  telepresence: []\n").unwrap();
    let out = kyvtel().args(["matrix", "--file"]).arg(&file).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("matrix.yaml:4:19") && stderr.contains("unknown Kyverno chart `9.9.9`"), "{stderr}");
    std::fs::write(&file, "kind: {}\nbogus: 1\n").unwrap();
    let out = kyvtel().args(["matrix", "--file"]).arg(&file).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_cell_shows_the_nightly_kyverno_the_run_starts() {
    let text = stdout(&[
        "plan",
        "--provider",
        "local",
        "--cell",
        "local-kyverno1.18.2-tp2.31.0",
        "scenarios/documented-recipe.yaml",
    ]);
    assert!(text.contains("kyverno chart 3.8.2 (Kyverno v1.18.2)"), "{text}");
    assert!(text.contains("github.com/kyverno/kyverno@v1.18.2/charts/kyverno"), "{text}");
    assert!(text.contains("start .tools/local/kyverno-1.18.2 "), "{text}");
    assert!(text.contains("documented-recipe@2.31.0") && !text.contains("documented-recipe@2.20.2"), "{text}");
    let out = kyvtel()
        .args([
            "plan",
            "--provider",
            "kind",
            "--cell",
            "local-kyverno1.18.2-tp2.31.0",
            "scenarios/documented-recipe.yaml",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "a local cell is refused for kind");
}
