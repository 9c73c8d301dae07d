//! `kyvtel run` input and prerequisite handling: nothing runs on bad input (exit 2) or when the
//! provisioned tools cannot honour a scenario's versions (exit 3); a scenario runs the
//! Telepresence binary of its own version.

mod common;

use std::path::{Path, PathBuf};

use common::fake_tools::{closed_port_kubeconfig, run_cannot_start_here, script, script_at, tools_with_chart};
use common::kyvtel;

/// A fresh directory under the test target dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_missing_telepresence_binary_for_the_scenarios_version_is_refused_before_anything_runs() {
    let dir = scratch("tp-missing");
    let tools = tools_with_chart(&dir);
    let log = dir.join("calls.log");
    // The default binary is there, but it does not stand in for 2.27.4.
    script(&tools, "telepresence", &log, "echo 'OSS Client : v2.32.1'");
    let out = kyvtel()
        .args(["run", "--provider", "kind", "tests/fixtures/run/recipe-telepresence-2.27.yaml"])
        .env("KYVTEL_TOOLS_DIR", &tools)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("recipe-on-telepresence-2-27: needs Telepresence 2.27.4"), "{stderr}");
    assert!(stderr.contains(&tools.join("telepresence-2.27.4/telepresence").display().to_string()), "{stderr}");
    assert!(stderr.contains("fix: run `kyvtel tools install --telepresence 2.27.4`"), "{stderr}");
    assert!(out.stdout.is_empty());
    // Nothing ran but the prerequisite probes (`telepresence version`), which find every missing
    // prerequisite at once.
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.lines().all(|l| l == "telepresence version"), "only probes ran: {calls:?}");
}

#[test]
fn a_scenario_runs_its_own_telepresence_version() {
    if run_cannot_start_here() {
        return;
    }
    let dir = scratch("tp-versioned");
    let tools = tools_with_chart(&dir);
    let log = dir.join("calls.log");
    // Kyverno's install fails at once, so the scenario fails and its evidence bundle is written,
    // which runs `telepresence gather-logs` with the scenario's runner.
    script(&tools, "helm", &log, "case \"$1\" in version) echo v3.21.4;; install) echo denied >&2; exit 1;; esac");
    // The binary keeps its name in a directory of its own; `$0` shows which one ran.
    script_at(
        &tools.join("telepresence-2.27.4/telepresence"),
        "telepresence-2.27.4",
        &log,
        "case \"$1\" in version) echo 'OSS Client : v2.27.4';; esac",
    );
    // No default `telepresence` at all: a run that needs only 2.27.4 does not ask for it.
    let kubeconfig = dir.join("kubeconfig");
    closed_port_kubeconfig(&kubeconfig, "not-a-real-token");
    let out = kyvtel()
        .args(["run", "tests/fixtures/run/recipe-telepresence-2.27.yaml", "--provider", "existing", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .env("KYVTEL_TOOLS_DIR", &tools)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "{stderr}\ncalls:\n{calls}");
    assert!(calls.contains("helm install kyverno"), "{calls}");
    assert!(calls.contains("telepresence-2.27.4 gather-logs"), "the evidence used another binary:\n{calls}");
    assert!(calls.lines().all(|l| !l.starts_with("telepresence ")), "the default binary never runs:\n{calls}");
}

#[test]
fn a_report_dir_that_would_hold_the_run_private_files_is_refused() {
    let dir = scratch("work-in-reports");
    let out = kyvtel()
        .args(["run", "--provider", "kind", "scenarios/documented-recipe.yaml", "--report-dir"])
        .arg(&dir)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is inside the report directory") && stderr.contains("holds credentials"), "{stderr}");
    assert!(out.stdout.is_empty() && !dir.join("work").exists(), "nothing ran: {stderr}");
}

#[test]
fn provider_flags_that_do_not_fit_are_usage_errors() {
    for (args, msg) in [
        (vec!["--provider", "k3s"], "--provider k3s needs --k3s-image"),
        (vec!["--provider", "existing"], "--provider existing needs --kubeconfig"),
        (vec!["--k3s-image", "rancher/k3s:x"], "--k3s-image goes with --provider k3s"),
        (vec!["--reuse", "--provider", "existing", "--kubeconfig", "x"], "--reuse goes with --provider kind"),
        (vec!["--retries", "6", "--provider", "kind"], "--retries 6: at most 5"),
    ] {
        let out = kyvtel().args(["run", "scenarios/documented-recipe.yaml"]).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(msg), "{args:?}: {stderr}");
    }
}

#[test]
fn an_error_after_the_run_started_still_removes_the_run_private_files() {
    if run_cannot_start_here() {
        return;
    }
    let dir = scratch("early-error");
    let tools = tools_with_chart(&dir);
    let log = dir.join("calls.log");
    // Kyverno's install fails at once; then the reports cannot be written (their directory would
    // be below a file), so the run ends with an error after its work directory was in use.
    script(&tools, "helm", &log, "case \"$1\" in version) echo v3.21.4;; install) exit 1;; esac");
    script(&tools, "telepresence", &log, "case \"$1\" in version) echo 'OSS Client : v2.32.1';; esac");
    let kubeconfig = dir.join("kubeconfig");
    closed_port_kubeconfig(&kubeconfig, "t0k");
    std::fs::write(dir.join("not-a-dir"), "").unwrap();
    let work = dir.join("work");
    let out = kyvtel()
        .args(["run", "scenarios/documented-recipe.yaml", "--provider", "existing", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--report-dir")
        .arg(dir.join("not-a-dir/reports"))
        .arg("--work-dir")
        .arg(&work)
        .env("KYVTEL_TOOLS_DIR", &tools)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("write reports under"), "{stderr}");
    assert!(calls.contains("helm install kyverno"), "the run started: {calls}");
    assert!(!work.exists(), "the run-private directory was left behind: {stderr}");
}

/// A bad quarantine stops the run before anything executes (exit 2, located), on any provider; the
/// catalog's own (committed, empty) quarantine validates.
#[test]
fn a_bad_quarantine_entry_is_refused_before_anything_runs() {
    let dir = scratch("quarantine");
    let q = dir.join("q.yaml");
    for (entry, msg) in [
        ("  - scenario: documented-recipe\n    reason: r\n    expires: 2026-12-03\n", ":4:14: expired on 2026-12-03"),
        (
            "  - scenario: documented-recip\n    reason: r\n    expires: 2026-12-09\n",
            ":2:15: no scenario `documented-recip`",
        ),
        (
            "  - scenario: documented-recipe\n    reason: r\n    expires: 2027-12-09\n",
            "a quarantine lasts at most 90 days",
        ),
    ] {
        std::fs::write(&q, format!("entries:\n{entry}")).unwrap();
        for provider in ["kind", "local"] {
            let out = kyvtel()
                .env("KYVTEL_TODAY", "2026-12-04")
                .args(["run", "--provider", provider, "--quarantine"])
                .arg(&q)
                .arg("scenarios/documented-recipe.yaml")
                .arg("--report-dir")
                .arg(dir.join("reports"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{provider}: {stderr}");
            assert!(stderr.contains(msg), "{provider}: {stderr}");
            assert!(!dir.join("reports").exists(), "nothing ran");
        }
    }
    let out = kyvtel().env("KYVTEL_TODAY", "2026-12-04").args(["validate", "scenarios"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("scenarios/quarantine.yaml (0 quarantined)"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
