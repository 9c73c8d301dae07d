//! `kyvtel verify`: every exit code, JSON shape, List filtering, standard input.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use rstest::rstest;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pod(name: &str) -> PathBuf {
    root().join("tests/fixtures/pods").join(name)
}

fn verify(pod_arg: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("kyvtel").expect("the kyvtel binary");
    cmd.current_dir(root()).arg("verify").arg("scenarios/documented-recipe.yaml").arg("--pod").arg(pod_arg).args(extra);
    cmd
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[rstest]
#[case::recipe_2_32("agent-recipe-2.32.yaml", 0)]
#[case::reordered_capabilities_and_empty_drop("agent-recipe-reordered.yaml", 0)]
#[case::podlist_json_filtered_by_selector("podlist-recipe.json", 0)]
#[case::no_agent("no-agent.yaml", 1)]
#[case::agent_copies_app("agent-copies-app.yaml", 1)]
#[case::recipe_before_2_29("agent-recipe-2.28.yaml", 1)]
#[case::init_container("agent-init-net-admin.yaml", 1)]
#[case::list_with_an_old_pod_without_agent("list-two-demo-pods.yaml", 1)]
fn exit_code_follows_the_verdict(#[case] fixture: &str, #[case] code: i32) {
    let out = verify(&pod(fixture), &["--output", "json"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(code), "{}{}", stdout(&out), stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(v["passed"], Value::Bool(code == 0));
    let checks = v["checks"].as_array().expect("checks");
    assert!(!checks.is_empty());
    for c in checks {
        for key in ["target", "field", "expected", "actual", "ok"] {
            assert!(c.get(key).is_some(), "check without {key}: {c}");
        }
    }
    let failed = checks.iter().filter(|c| c["ok"] == Value::Bool(false)).count();
    assert_eq!(failed == 0, code == 0);
}

#[test]
fn json_names_target_field_expected_and_actual() {
    let out = verify(&pod("agent-recipe-2.28.yaml"), &["--output", "json"]).output().expect("runs");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let failed: Vec<&Value> = v["checks"].as_array().unwrap().iter().filter(|c| c["ok"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["target"], "container/traffic-agent");
    assert_eq!(failed[0]["field"], "securityContext.runAsGroup");
    assert_eq!(failed[0]["expected"], 7439);
    assert_eq!(failed[0]["actual"], Value::Null);
}

#[test]
fn human_table_says_the_agent_was_not_injected_first() {
    let out = verify(&pod("no-agent.yaml"), &[]).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let first_fail = text.lines().find(|l| l.starts_with("FAIL")).expect("a FAIL row");
    assert!(first_fail.contains("container/traffic-agent") && first_fail.contains("present"), "{text}");
    assert!(text.contains("traffic-agent was not injected"), "{text}");
    assert!(text.contains("FAILED: 2 of"), "{text}");
}

#[test]
fn reads_standard_input() {
    let src = std::fs::read_to_string(pod("agent-recipe-2.32.yaml")).unwrap();
    let out = verify(Path::new("-"), &[]).write_stdin(src).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("PASSED: all"), "{}", stdout(&out));
}

#[rstest]
#[case::not_a_pod("not-a-pod.yaml", "not-a-pod.yaml:3:7: expected a Pod, List or PodList, found `Deployment`")]
#[case::wrong_types(
    "bad-capabilities.yaml",
    "bad-capabilities.yaml:13:16: expected `add` to be a list of capability names"
)]
#[case::no_pod_matches("list-no-match.yaml", "no pod matches the workload selector app.kubernetes.io/name=demo")]
#[case::missing_file("does-not-exist.yaml", "does-not-exist.yaml: file not found")]
fn bad_input_exits_2_with_a_precise_message(#[case] fixture: &str, #[case] says: &str) {
    let out = verify(&pod(fixture), &[]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(says), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
    assert!(stdout(&out).is_empty());
}

#[test]
fn malformed_yaml_on_stdin_is_located() {
    let out = verify(Path::new("-"), &[]).write_stdin("kind: Pod\nspec: [\n").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: <stdin>:"), "{}", stderr(&out));
}
