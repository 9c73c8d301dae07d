//! Hostile and degenerate input that cannot live in the committed corpus (`tests/fixtures/bad`):
//! files that are not regular files, inputs past the size cap, endless standard input, paths and
//! symlinks out of the scenario root, scenarios pasted into a fresh directory, bytes that are not
//! UTF-8, and YAML built to exhaust a parser. Each must end at once with exit 2 and a message a
//! user can act on: no panic, no hang, no Rust internals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::root;

/// Far above what any refusal needs; a command that reaches it hangs, and the test fails.
const HANG: Duration = Duration::from_secs(30);
/// The documented input cap (README, "Exit codes": "Input cap"): 4 MiB.
const CAP: usize = 4 * 1024 * 1024;

fn kyvtel_in(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("kyvtel").expect("binary built");
    c.current_dir(dir).timeout(HANG);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2, `wanted` in the message, and nothing that only a Rust programmer would understand.
#[track_caller]
fn refused(out: &Output, wanted: &str) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2 (stdout: {})\nstderr:\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(wanted), "expected `{wanted}` in:\n{err}");
    for internal in
        ["panicked", "RUST_BACKTRACE", "Utf8Error", "invalid u16", "invalid u64", "Os {", "Error {", "serde"]
    {
        assert!(!err.contains(internal), "`{internal}` reached the user:\n{err}");
    }
}

/// A fresh directory holding the documented recipe with every file it refers to, the kind config
/// beside the scenario (`kind-config/`), so that it validates on its own.
fn pasted_recipe() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["policies", "values", "workloads", "kind-config"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    for (from, to) in [
        ("scenarios/policies/require-security-context.yaml", "policies/require-security-context.yaml"),
        ("scenarios/policies/restrict-image-registries.yaml", "policies/restrict-image-registries.yaml"),
        ("scenarios/values/telepresence-agent-security.yaml", "values/telepresence-agent-security.yaml"),
        ("scenarios/workloads/demo.yaml", "workloads/demo.yaml"),
        ("kind-config/default.yaml", "kind-config/default.yaml"),
    ] {
        std::fs::copy(root().join(from), d.join(to)).unwrap();
    }
    let scenario = std::fs::read_to_string(root().join("scenarios/documented-recipe.yaml"))
        .unwrap()
        .replace("../kind-config/default.yaml", "kind-config/default.yaml");
    std::fs::write(d.join("recipe.yaml"), scenario).unwrap();
    dir
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_fifo_as_scenario_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("scenario.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for cmd in ["validate", "plan"] {
        let out = kyvtel_in(dir.path()).arg(cmd).arg("scenario.yaml").output().unwrap();
        refused(&out, "scenario.yaml: not a regular file (a FIFO)");
    }
}

#[test]
fn devices_and_directories_are_refused_where_a_file_is_expected() {
    let out =
        kyvtel_in(&root()).args(["verify", "scenarios/documented-recipe.yaml", "--pod", "/dev/zero"]).output().unwrap();
    refused(&out, "/dev/zero: not a regular file (a character device)");
    let out = kyvtel_in(&root()).args(["explain", "scenarios"]).output().unwrap();
    refused(&out, "scenarios: not a regular file (a directory)");
    let out = kyvtel_in(&root()).args(["validate", "--crd", "/dev/null", "scenarios"]).output().unwrap();
    refused(&out, "/dev/null: not a regular file (a character device)");
}

#[test]
fn a_referenced_file_that_is_a_fifo_is_refused_at_its_reference() {
    let dir = pasted_recipe();
    let values = dir.path().join("values/telepresence-agent-security.yaml");
    std::fs::remove_file(&values).unwrap();
    let c = std::ffi::CString::new(values.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    refused(&out, "values/telepresence-agent-security.yaml: not a regular file (a FIFO)");
}

#[test]
fn an_input_past_the_cap_is_refused_naming_the_cap() {
    let dir = pasted_recipe();
    let big = dir.path().join("recipe.yaml");
    let mut text = std::fs::read_to_string(&big).unwrap();
    text.push_str(&"# padding\n".repeat(CAP / 10 + 1));
    std::fs::write(&big, text).unwrap();
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    refused(&out, "recipe.yaml: larger than the 4 MiB input limit");
    let out = kyvtel_in(dir.path()).args(["explain", "recipe.yaml"]).output().unwrap();
    refused(&out, "recipe.yaml: larger than the 4 MiB input limit");
}

#[test]
fn endless_standard_input_is_refused_at_the_cap() {
    for cmd in [vec!["verify", "scenarios/documented-recipe.yaml", "--pod", "-"], vec!["explain", "-"]] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kyvtel"))
            .current_dir(root())
            .args(&cmd)
            .stdin(Stdio::from(std::fs::File::open("/dev/zero").unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > HANG {
                let _ = child.kill();
                panic!("{cmd:?} still reads endless standard input after {HANG:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        refused(&child.wait_with_output().unwrap(), "<stdin>: larger than the 4 MiB input limit");
    }
}

#[test]
fn a_pod_with_an_absurd_number_of_containers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let containers: Vec<serde_json::Value> = (0..5_000)
        .map(|i| serde_json::json!({"name": format!("c{i}"), "image": "registry.k8s.io/pause:3.10"}))
        .collect();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-1", "namespace": "kyvtel-app", "labels": {"app.kubernetes.io/name": "demo"}},
        "spec": {"containers": containers},
    });
    let file = dir.path().join("pod.json");
    std::fs::write(&file, serde_json::to_string(&pod).unwrap()).unwrap();
    let out =
        kyvtel_in(&root()).args(["verify", "scenarios/documented-recipe.yaml", "--pod"]).arg(&file).output().unwrap();
    refused(&out, "5000 containers: more than the 1000 kyvtel reads in one pod");
    // The same pod template in a workload given to `explain --pod`.
    let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"},
        "spec": {"template": {"spec": pod["spec"].clone()}}});
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, serde_json::to_string(&deployment).unwrap()).unwrap();
    let out = kyvtel_in(&root())
        .args(["explain", "tests/fixtures/denials/kubectl-agent-blocked.txt", "--pod"])
        .arg(&file)
        .output()
        .unwrap();
    refused(&out, "5000 containers: more than the 1000 kyvtel reads in one pod");
}

#[test]
fn bytes_that_are_not_utf8_are_named_as_such() {
    let dir = pasted_recipe();
    let file = dir.path().join("recipe.yaml");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\n# caf\xe9\n");
    std::fs::write(&file, bytes).unwrap();
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    refused(&out, "recipe.yaml: not UTF-8 text");
}

#[test]
fn yaml_built_to_exhaust_the_parser_is_refused() {
    let dir = pasted_recipe();
    let nested = dir.path().join("nested.yaml");
    std::fs::write(&nested, format!("{}{}", "[".repeat(200_000), "]".repeat(200_000))).unwrap();
    let out = kyvtel_in(dir.path()).args(["validate", "nested.yaml"]).output().unwrap();
    refused(&out, "invalid YAML: recursion limit exceeded");
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = if i == 1 { "a".to_string() } else { format!("a{}", i - 1) };
        bomb.push_str(&format!(
            "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    let file = dir.path().join("bomb.yaml");
    std::fs::write(&file, bomb).unwrap();
    let out = kyvtel_in(dir.path()).args(["explain", "--pod", "bomb.yaml", "recipe.yaml"]).output().unwrap();
    refused(&out, "past the YAML parser's limit on");
    // Many nodes in a file under the size cap: a pod listing 100 000 containers.
    let many: Vec<serde_json::Value> = (0..100_000).map(|i| serde_json::json!({"name": format!("c{i}")})).collect();
    let pod = serde_json::json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": many}});
    std::fs::write(dir.path().join("pod.json"), serde_json::to_string(&pod).unwrap()).unwrap();
    let out = kyvtel_in(&root())
        .args(["verify", "scenarios/documented-recipe.yaml", "--pod"])
        .arg(dir.path().join("pod.json"))
        .output()
        .unwrap();
    refused(&out, "past the YAML parser's limit on nodes");
}

#[test]
fn a_scenario_pasted_into_a_fresh_directory_is_its_own_root() {
    let dir = pasted_recipe();
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The catalog's own form (`../kind-config/...`) now points out of the pasted scenario's root.
    let outer = dir.path().join("kind-config");
    let inner = dir.path().join("scenarios");
    std::fs::create_dir(&inner).unwrap();
    for sub in ["policies", "values", "workloads"] {
        std::fs::rename(dir.path().join(sub), inner.join(sub)).unwrap();
    }
    std::fs::rename(dir.path().join("recipe.yaml"), inner.join("recipe.yaml")).unwrap();
    edit(&inner.join("recipe.yaml"), "kind-config/default.yaml", "../kind-config/default.yaml");
    assert!(outer.is_dir());
    // With `kind-config/` beside `scenarios/`, the root is their parent: accepted.
    let out = kyvtel_in(dir.path()).args(["validate", "scenarios/recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Without it, the root is the scenario's own directory, and `..` leaves it.
    std::fs::rename(&outer, dir.path().join("kind")).unwrap();
    edit(&inner.join("recipe.yaml"), "../kind-config/default.yaml", "../kind/default.yaml");
    let out = kyvtel_in(dir.path()).args(["validate", "scenarios/recipe.yaml"]).output().unwrap();
    refused(&out, "`../kind/default.yaml` is outside the scenario root");
    // `--root` names a wider root; `--allow-outside-root` lifts the check.
    let out = kyvtel_in(dir.path()).args(["validate", "--root", ".", "scenarios/recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kyvtel_in(dir.path()).args(["plan", "--allow-outside-root", "scenarios/recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_symlink_out_of_the_root_is_refused_unless_allowed() {
    let outside = tempfile::tempdir().unwrap();
    let dir = pasted_recipe();
    let policy = dir.path().join("policies/restrict-image-registries.yaml");
    let target = outside.path().join("restrict-image-registries.yaml");
    std::fs::rename(&policy, &target).unwrap();
    std::os::unix::fs::symlink(&target, &policy).unwrap();
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    refused(&out, "`policies/restrict-image-registries.yaml` resolves outside the scenario root");
    let out = kyvtel_in(dir.path()).args(["validate", "--allow-outside-root", "recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A symlink that stays inside the root is fine.
    std::fs::remove_file(&policy).unwrap();
    std::fs::rename(&target, dir.path().join("registries.yaml")).unwrap();
    std::os::unix::fs::symlink("../registries.yaml", &policy).unwrap();
    let out = kyvtel_in(dir.path()).args(["validate", "recipe.yaml"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_crd_flag_naming_a_missing_file_is_an_error_not_a_skip() {
    let out = kyvtel_in(&root()).args(["validate", "--crd", "no/such/crd.yaml", "scenarios"]).output().unwrap();
    refused(&out, "no/such/crd.yaml: file not found");
    assert!(!stderr(&out).contains("skipped"), "{}", stderr(&out));
}

#[test]
fn the_default_crd_is_found_from_any_working_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let scenario: PathBuf = root().join("scenarios/documented-recipe.yaml");
    let out = kyvtel_in(elsewhere.path())
        .env_remove("KYVTEL_CLUSTERPOLICY_CRD")
        .env("KYVTEL_SHARED_DIR", elsewhere.path())
        .arg("validate")
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("skipped"), "the policy schema check was skipped:\n{}", stderr(&out));
    // And it really checks: a pruned field in a policy is found from there too.
    let bad = root().join("tests/fixtures/bad/policy-pruned-field.yaml");
    let out = kyvtel_in(elsewhere.path())
        .env_remove("KYVTEL_CLUSTERPOLICY_CRD")
        .env("KYVTEL_SHARED_DIR", elsewhere.path())
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    refused(&out, "unknown field `namespace`");
}

/// The e2e harness built beside this test (cargo builds every target before running any).
fn e2e_binary() -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("e2e-") && p.extension().is_none()
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

#[test]
fn an_e2e_filter_that_matches_no_scenario_fails_and_lists_the_names() {
    let Some(e2e) = e2e_binary() else {
        panic!("the e2e test binary is not built beside this test; run with `cargo test --all-targets`");
    };
    for live in ["0", "1"] {
        let out = std::process::Command::new(&e2e)
            .args(["--exact", "no-such-scenario"])
            .env("KYVTEL_REQUIRE_LIVE", live)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(!out.status.success(), "KYVTEL_REQUIRE_LIVE={live}: a filter that matches nothing passed:\n{text}");
        assert!(text.contains("no-such-scenario") && text.contains("documented-recipe"), "{text}");
    }
}
