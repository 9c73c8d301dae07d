//! The GitHub workflows: ci.yml runs `make test` on pushes and pull requests (no schedule, no kind);
//! nightly.yml runs the matrix. Every action is pinned by a full commit SHA with its tag in a comment,
//! every job has a timeout, and permissions are least.

mod common;

use common::root;
use serde_json::Value;

fn workflow(name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(root().join(".github/workflows").join(name)).expect("workflow");
    let value: Value = serde_saphyr::from_str(&text).expect("YAML");
    (text, value)
}

/// `uses:` lines: `owner/repo[/path]@<40 hex> # vX.Y.Z`.
fn pins_are_full_shas_with_their_tag(text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| l.trim_start().trim_start_matches("- ").starts_with("uses:")) {
        let rest = line.split("uses:").nth(1).unwrap_or_default().trim();
        let (action, comment) = rest.split_once(" # ").unwrap_or((rest, ""));
        let sha = action.split_once('@').map(|(_, s)| s).unwrap_or_default();
        let sha_ok = sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        let tag = comment.trim();
        let tag_ok = tag.starts_with('v')
            && tag[1..].split('.').count() == 3
            && tag[1..].split('.').all(|p| p.parse::<u32>().is_ok());
        if !sha_ok || !tag_ok {
            bad.push(line.trim().to_string());
        }
    }
    bad
}

#[test]
fn every_action_is_pinned_by_commit_sha_with_its_release_tag() {
    for name in ["ci.yml", "nightly.yml"] {
        let (text, _) = workflow(name);
        assert!(text.contains("uses:"), "{name} uses actions");
        assert_eq!(pins_are_full_shas_with_their_tag(&text), Vec::<String>::new(), "{name}");
    }
    // The check itself rejects what it must.
    for bad in [
        "uses: actions/checkout@v4",
        "uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        "uses: a/b@11BD71901BBE5B1630CEEA73D27597364C9AF683 # v4.2.2",
    ] {
        assert_eq!(pins_are_full_shas_with_their_tag(bad).len(), 1, "{bad}");
    }
}

#[test]
fn ci_runs_make_test_on_push_and_pull_request_without_schedule_or_kind() {
    let (text, ci) = workflow("ci.yml");
    let on = ci["on"].as_object().expect("on");
    assert!(on.contains_key("push") && on.contains_key("pull_request"), "{on:?}");
    assert!(!on.contains_key("schedule"), "no schedule in ci.yml");
    assert!(text.contains("bash .ci/run"), "ci runs .ci/run (make test)");
    assert!(!text.contains("kind"), "ci.yml never mentions kind");
}

#[test]
fn nightly_runs_one_job_per_cell_with_timeouts_least_permissions_and_concurrency() {
    let (text, nightly) = workflow("nightly.yml");
    assert!(nightly["on"]["schedule"][0]["cron"].is_string(), "a cron schedule");
    assert_eq!(nightly["permissions"], serde_json::json!({"contents": "read"}));
    assert!(nightly["concurrency"].is_object() || nightly["concurrency"].is_string());
    let jobs = nightly["jobs"].as_object().expect("jobs");
    for (name, job) in jobs {
        assert!(job["timeout-minutes"].as_u64().is_some_and(|m| m > 0), "job {name} has timeout-minutes");
    }
    for cells in ["kind", "local"] {
        let job = &jobs[cells];
        assert_eq!(job["strategy"]["fail-fast"], false, "{cells}");
        assert_eq!(job["needs"], "matrix");
        assert!(job["strategy"]["matrix"].as_str().is_some_and(|m| m.contains("needs.matrix.outputs")), "{cells}");
        let steps = job["steps"].as_array().expect("steps");
        let uploads = steps.iter().filter(|s| s["uses"].as_str().is_some_and(|u| u.contains("upload-artifact")));
        assert!(uploads.clone().count() == 1 && uploads.into_iter().all(|s| s["if"] == "always()"), "{cells}");
    }
    assert!(text.contains("--provider kind --cell"), "kind jobs run with --provider kind");
    assert!(text.contains("matrix --provider kind --output github"));
    // The component cache is keyed by every wrapper go.mod/go.sum, the Go version and the build flags.
    assert!(text.contains("hashFiles('tools/**/go.mod', 'tools/**/go.sum')"));
    assert!(text.contains("steps.go.outputs.go-version") && text.contains("env.GO_BUILD_FLAGS"));
}
