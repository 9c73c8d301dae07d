//! `kyvtel check` and the offline engine, under the real Kyverno CLI.
//!
//! A libtest-mimic harness (`harness = false`), so that a test needing the CLI is reported as
//! **ignored, with the reason** when the CLI is not found, never as passed. With
//! `KYVTEL_REQUIRE_KYVERNO=1` (CI, after `make kyverno-cli`) such a test fails instead.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kyvtel::check::kyverno::{self, ObjectRef};
use kyvtel::predict::{render, serialize};
use kyvtel::tools::Tool;
use kyvtel::tools::runner::DuctRunner;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A trial that needs the Kyverno CLI: ignored with the reason when it is missing, failed instead
/// under `KYVTEL_REQUIRE_KYVERNO=1`.
fn with_cli(name: &'static str, test: fn(&Path)) -> Trial {
    Trial::ignorable_test(name, move || {
        std::env::set_current_dir(root()).map_err(|e| Failed::from(format!("cd: {e}")))?;
        match kyverno::locate() {
            Ok(bin) => {
                test(&bin);
                Ok(Completion::Completed)
            }
            Err(e) if std::env::var("KYVTEL_REQUIRE_KYVERNO").as_deref() == Ok("1") => {
                Err(format!("KYVTEL_REQUIRE_KYVERNO=1 but {e}").into())
            }
            Err(e) => Ok(Completion::ignored_with(format!("needs the Kyverno CLI: {e}"))),
        }
    })
}

/// A trial that needs nothing outside the crate.
fn offline(name: &'static str, test: fn()) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        with_cli(
            "namespace_selector_rules_see_the_namespace_labels_of_the_manifests",
            namespace_selector_rules_see_the_namespace_labels_of_the_manifests,
        ),
        with_cli(
            "a_policy_the_engine_rejects_is_exit_2_at_the_policy",
            a_policy_the_engine_rejects_is_exit_2_at_the_policy,
        ),
        with_cli("a_rule_error_is_exit_2_naming_policy_and_rule", a_rule_error_is_exit_2_naming_policy_and_rule),
        with_cli(
            "a_workload_no_policy_applies_to_is_admitted_as_a_verdict",
            a_workload_no_policy_applies_to_is_admitted_as_a_verdict,
        ),
        with_cli(
            "every_shipped_scenario_matches_under_the_real_engine",
            every_shipped_scenario_matches_under_the_real_engine,
        ),
        with_cli(
            "literal_recipe_denies_the_agent_as_facts_5_1_predicts",
            literal_recipe_denies_the_agent_as_facts_5_1_predicts,
        ),
        with_cli(
            "name_only_exemption_admits_a_spoofed_agent_and_the_hardened_one_denies_it",
            name_only_exemption_admits_a_spoofed_agent_and_the_hardened_one_denies_it,
        ),
        with_cli(
            "empty_drop_passes_raw_but_fails_as_the_api_server_serialises_it",
            empty_drop_passes_raw_but_fails_as_the_api_server_serialises_it,
        ),
        with_cli("a_wrong_expectation_is_a_mismatch_with_exit_1", a_wrong_expectation_is_a_mismatch_with_exit_1),
        offline("a_missing_kyverno_cli_exits_3", a_missing_kyverno_cli_exits_3),
        offline("bad_input_exits_2_before_looking_for_the_cli", bad_input_exits_2_before_looking_for_the_cli),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn kyvtel() -> Command {
    let mut c = Command::cargo_bin("kyvtel").expect("binary");
    c.current_dir(root());
    c
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let src = kyvtel::yaml::read(path).expect("read");
    kyvtel::yaml::documents(path, &src).expect("parse").into_iter().map(|d| d.value).collect()
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kyvtel-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Judges `resources` against the policy files with the real engine.
fn judge(
    bin: &Path,
    name: &str,
    policy_files: &[&str],
    resources: &[Value],
) -> std::collections::BTreeMap<ObjectRef, kyverno::Judgement> {
    let policies: Vec<Value> = policy_files.iter().flat_map(|p| yaml_docs(&root().join(p))).collect();
    let dir = workdir(name);
    let runner = DuctRunner::new(&dir).with_program(Tool::Kyverno, bin.to_path_buf());
    let out = kyverno::evaluate(&runner, &dir, &policies, resources).expect("kyverno apply").judgements;
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn scenario_files() -> Vec<String> {
    kyvtel::scenario::catalog::files(&root().join("scenarios"))
        .expect("scenarios/")
        .iter()
        .map(|p| p.strip_prefix(root()).expect("under the root").display().to_string())
        .collect()
}

fn every_shipped_scenario_matches_under_the_real_engine(_bin: &Path) {
    let out = kyvtel().args(["check", "--output", "json"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["matches"], true);
    let checked: Vec<String> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| s["file"].as_str().expect("file").to_string())
        .collect();
    assert_eq!(checked, scenario_files(), "every file under scenarios/ is checked");
    // The text form says the same.
    let mut text = kyvtel();
    text.arg("check");
    assert!(run(text, 0).0.contains("all match"));
}

/// Runs `cmd`, asserts its exit code, and returns (stdout, stderr).
fn run(mut cmd: Command, code: i32) -> (String, String) {
    let out = cmd.output().expect("run kyvtel");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(out.status.code(), Some(code), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

fn literal_recipe_denies_the_agent_as_facts_5_1_predicts(_bin: &Path) {
    let out =
        kyvtel().args(["check", "scenarios/documented-recipe-literal.yaml", "--output", "json"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let objects = report["scenarios"][0]["objects"].as_array().expect("objects");
    let pod = objects.iter().find(|o| o["role"] == "intercepted").expect("intercepted pod");
    assert_eq!(pod["admitted"], false);
    let denied: Vec<(String, String, Vec<String>)> = pod["judgement"]["denied"]
        .as_array()
        .expect("denied")
        .iter()
        .map(|v| {
            let paths =
                v["paths"].as_array().expect("paths").iter().map(|p| p.as_str().expect("str").to_string()).collect();
            (v["policy"].as_str().expect("p").to_string(), v["rule"].as_str().expect("r").to_string(), paths)
        })
        .collect();
    let has = |policy: &str, rule: &str, prefix: &str| {
        denied.iter().any(|(p, r, paths)| p == policy && r == rule && paths.iter().any(|x| x.starts_with(prefix)))
    };
    assert!(
        has("require-security-context", "require-security-context-constraints", "/spec/containers/1/securityContext/"),
        "{denied:?}"
    );
    assert!(has("restrict-image-registries", "validate-registries", "/spec/containers/1/image"), "{denied:?}");
    // The app container itself passes: nothing is reported for /spec/containers/0.
    assert!(
        !denied.iter().any(|(_, _, paths)| paths.iter().any(|x| x.starts_with("/spec/containers/0/"))),
        "{denied:?}"
    );
}

fn name_only_exemption_admits_a_spoofed_agent_and_the_hardened_one_denies_it(bin: &Path) {
    let spoof = yaml_docs(&root().join("tests/fixtures/check/spoofed-agent-pod.yaml"));
    let key = ObjectRef::of(&spoof[0]);
    let name_only = judge(
        bin,
        "name-only",
        &["scenarios/policies/require-security-context.yaml", "scenarios/policies/restrict-image-registries.yaml"],
        &spoof,
    );
    assert!(name_only[&key].admitted(), "the name-only exemption lets the spoof through: {:?}", name_only[&key]);

    let hardened = judge(
        bin,
        "hardened",
        &[
            "scenarios/policies/require-security-context-hardened.yaml",
            "scenarios/policies/restrict-image-registries.yaml",
        ],
        &spoof,
    );
    let j = &hardened[&key];
    assert!(!j.admitted(), "the hardened policy denies the spoof");
    assert!(
        j.denied.iter().any(|v| v.policy == "require-security-context"
            && v.rule == "require-traffic-agent-image"
            && v.paths.iter().any(|p| p.starts_with("/spec/containers/1/image"))),
        "{j:?}"
    );

    // The hardened policy still admits the genuine agent of the documented recipe.
    let loaded = kyvtel::scenario::load(&root().join("scenarios/documented-recipe.yaml")).expect("load");
    let genuine = render::injected_pod(&loaded).expect("render");
    let key = ObjectRef::of(&genuine);
    let out = judge(
        bin,
        "genuine",
        &[
            "scenarios/policies/require-security-context-hardened.yaml",
            "scenarios/policies/restrict-image-registries.yaml",
        ],
        &[genuine],
    );
    assert!(out[&key].admitted(), "{:?}", out[&key]);
}

fn empty_drop_passes_raw_but_fails_as_the_api_server_serialises_it(bin: &Path) {
    let raw = yaml_docs(&root().join("tests/fixtures/check/empty-drop-pod.yaml"));
    let key = ObjectRef::of(&raw[0]);
    let policy = ["scenarios/policies/require-security-context.yaml"];
    let offline = judge(bin, "raw", &policy, &raw);
    assert!(offline[&key].admitted(), "raw `drop: []` satisfies drop: [ALL] offline: {:?}", offline[&key]);
    let served = [serialize::api_server_form(&raw[0])];
    let live = judge(bin, "served", &policy, &served);
    let j = &live[&key];
    assert!(
        j.denied
            .iter()
            .any(|v| v.paths.iter().any(|p| p.starts_with("/spec/containers/0/securityContext/capabilities/"))),
        "{j:?}"
    );
}

fn a_wrong_expectation_is_a_mismatch_with_exit_1(_bin: &Path) {
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/mismatch-recipe.yaml"]);
    let (stdout, _) = run(cmd, 1);
    assert!(stdout.contains("MISMATCH") && stdout.contains("expected denied, but admitted"), "{stdout}");
}

fn a_missing_kyverno_cli_exits_3() {
    let mut cmd = kyvtel();
    cmd.args(["check", "scenarios/documented-recipe.yaml"]).env("KYVERNO_BIN", "/nonexistent/kyverno");
    assert!(run(cmd, 3).1.contains("KYVERNO_BIN"));
}

fn bad_input_exits_2_before_looking_for_the_cli() {
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/no-such-scenario.yaml"]).env("KYVERNO_BIN", "/nonexistent/kyverno");
    assert!(run(cmd, 2).1.contains("no-such-scenario.yaml: file not found"));
}

/// A policy the engine would skip or reject is bad input (exit 2) located at the policy: never a
/// missing report (exit 3), never a verdict that silently ignores it.
fn a_policy_the_engine_rejects_is_exit_2_at_the_policy(_bin: &Path) {
    // A field the API server prunes: the CLI skips the whole file without a word.
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/bad/policy-pruned-field.yaml"]);
    let (_, stderr) = run(cmd, 2);
    assert!(
        stderr.contains("tests/fixtures/bad/policies/typo-policy.yaml:20:15: unknown field `namespace`"),
        "{stderr}"
    );
    // A policy the engine's own validation rejects: two rules with one name.
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/engine/engine-rejects-policy.yaml"]);
    let (_, stderr) = run(cmd, 2);
    assert!(
        stderr.contains("tests/fixtures/check/engine/policies/duplicate-rule.yaml:")
            && stderr.contains("the Kyverno engine rejects policy `duplicate-rule`: spec.rules[1].name: Invalid value"),
        "{stderr}"
    );
    assert!(!stderr.contains("Some("), "{stderr}");
    // A pattern the engine rejects (an existence anchor on a map), located at the pattern.
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/engine/engine-rejects-pattern.yaml"]);
    let (_, stderr) = run(cmd, 2);
    assert!(
        stderr.contains("tests/fixtures/check/engine/policies/bad-anchor.yaml:17:7: the Kyverno engine rejects policy `dn-invalid-bad-anchor`")
            && stderr.contains("existence anchor should have value of type list"),
        "{stderr}"
    );
}

fn a_rule_error_is_exit_2_naming_policy_and_rule(_bin: &Path) {
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/engine/rule-error.yaml"]);
    let (_, stderr) = run(cmd, 2);
    assert!(
        stderr.contains("tests/fixtures/check/engine/policies/unresolvable-variable.yaml:")
            && stderr.contains(
                "rule `require-run-as-non-root` of policy `unresolvable-variable` errors on Deployment kyvtel-app/demo"
            )
            && stderr.contains("variable substitution failed"),
        "{stderr}"
    );
}

fn a_workload_no_policy_applies_to_is_admitted_as_a_verdict(_bin: &Path) {
    // Every object is judged "admitted: no policy applies"; the workload matches its expectation,
    // and only the canary (which `applyPolicies` expects denied) is a mismatch: exit 1, a verdict.
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/engine/no-policy-applies.yaml", "--output", "json"]);
    let (stdout, _) = run(cmd, 1);
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    let objects = report["scenarios"][0]["objects"].as_array().expect("objects");
    assert!(!objects.is_empty());
    for o in objects {
        assert_eq!(o["admitted"], true, "{o}");
        assert_eq!(o["judgement"]["applied"], false, "no rule applies: {o}");
        let mismatch = o["role"] != "canary" && !o["mismatch"].is_null();
        assert!(!mismatch, "only the canary may mismatch: {o}");
    }
    let mut cmd = kyvtel();
    cmd.args(["check", "tests/fixtures/check/engine/no-policy-applies.yaml"]);
    let text = run(cmd, 1).0;
    assert!(
        text.contains("workload: Deployment kyvtel-app/demo") && text.contains("ok        admitted: no policy applies"),
        "{text}"
    );
}

/// A rule with a `namespaceSelector` is judged with the labels of the workload namespace as the
/// scenario's manifests declare it: it applies (and denies) only when they match.
fn namespace_selector_rules_see_the_namespace_labels_of_the_manifests(_bin: &Path) {
    let pod_of = |variant: &str| -> Value {
        let out = kyvtel()
            .args([
                "check",
                &format!("tests/fixtures/check/engine/namespace-selector-{variant}.yaml"),
                "--output",
                "json",
            ])
            .output()
            .expect("run");
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        report["scenarios"][0]["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["role"] == "workloadPod")
            .cloned()
            .expect("the workload pod")
    };
    let labelled = pod_of("labelled");
    assert_eq!(labelled["admitted"], false, "{labelled}");
    assert_eq!(labelled["judgement"]["denied"][0]["policy"], "ns-selected", "{labelled}");
    assert_eq!(labelled["judgement"]["denied"][0]["rule"], "require-team-label", "{labelled}");
    let unlabelled = pod_of("unlabelled");
    assert_eq!(
        (&unlabelled["admitted"], &unlabelled["judgement"]["applied"]),
        (&Value::Bool(true), &Value::Bool(false)),
        "{unlabelled}"
    );
}
