//! The local provider on real components (etcd, kube-apiserver, kube-controller-manager, Kyverno,
//! the Telepresence traffic-manager, all built from Go modules): what no double can prove.
//!
//! - Ctrl-C, SIGTERM and SIGKILL of kyvtel mid-run leave no process of the run (checked by PID:
//!   every process whose command line names the run's private work directory) and no listener.
//! - A run after another starts warm from the "stack ready" snapshot (restored, not installed) and
//!   asserts the same checks; `--cold` neither restores nor saves one.
//! - A copy of the documented recipe without one `ambassador` exclusion fails, with the real,
//!   located denial of the dropped rule (never a pass, never an infrastructure failure); under a
//!   current `--quarantine` entry that failure is tolerated (exit 0), an expired entry is refused.
//! - `--retries 1` runs an infrastructure failure (the API server killed) again on a fresh stack;
//!   the later pass is reported flaky with the first attempt's evidence kept.
//! - Confinement: every component is in a network namespace of its own whose only interface is
//!   `lo`, a connect to a non-loopback address fails there, and every credential is 0600 in a 0700
//!   directory, none left after the run.
//!
//! Where the local provider cannot run (no namespaces, components not built), each test says why
//! and returns; under `KYVTEL_REQUIRE_LIVE=1` (`make test`) that is a failure instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::local::{listeners_in, serial, skip_or_fail};

fn tmp(name: &str) -> PathBuf {
    let d = common::root().join("target/tmp").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(scenario: &Path, dir: &Path) -> Child {
    start_with(scenario, dir, &[])
}

fn start_with(scenario: &Path, dir: &Path, extra: &[&str]) -> Child {
    start_wrapped(&[], scenario, dir, extra)
}

/// A finished run's stdout and stderr, as one text.
fn output_text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Every process whose command line mentions `needle`, as `pid: cmdline`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

/// The listening TCP ports of this network namespace.
fn listening_ports() -> Vec<u16> {
    let mut ports: Vec<u16> = listeners_in("/proc/net").into_iter().map(|(_, p)| p).collect();
    ports.sort_unstable();
    ports
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Signals kyvtel once the components it names are running, then checks what is left.
fn signal_mid_run(sig: i32, name: &str) {
    let _one = serial();
    if skip_or_fail(name) {
        return;
    }
    let dir = tmp(name);
    let work = dir.join("work").display().to_string();
    let ports_before = listening_ports();
    let mut child = start(&common::root().join("tests/fixtures/local/recipe-2.31.0.yaml"), &dir);
    // Mid-run: Kyverno (started from its chart) is up, so every kind of component is running.
    let up = wait_until(Duration::from_secs(120), || {
        processes_naming(&work).iter().any(|p| p.contains("/kyverno ") || p.contains("kyverno.kubeconfig"))
    });
    assert!(up, "{name}: Kyverno never started: {:?}", processes_naming(&work));
    assert!(processes_naming(&work).iter().any(|p| p.contains("etcd")), "{name}: no etcd");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let ended = wait_until(Duration::from_secs(90), || child.try_wait().ok().flatten().is_some());
    if !ended {
        let _ = child.kill();
    }
    assert!(ended, "{name}: kyvtel did not end within 90 s of the signal");
    let status = child.wait().unwrap();
    let left = wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty());
    assert!(left, "{name}: processes of the run are left: {:?}", processes_naming(&work));
    let ports_after = listening_ports();
    let new: Vec<&u16> = ports_after.iter().filter(|p| !ports_before.contains(p)).collect();
    assert!(new.is_empty(), "{name}: new listening ports after the run: {new:?}");
    if sig != libc::SIGKILL {
        // Stopped and torn down, reported as cancelled (exit 1), the private files removed.
        assert_eq!(status.code(), Some(1), "{name}: {status:?}");
        assert!(!dir.join("work").exists() || std::fs::read_dir(dir.join("work")).unwrap().next().is_none());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_mid_run_leaves_no_process_and_no_port() {
    signal_mid_run(libc::SIGINT, "local-sigint");
}

#[test]
fn sigterm_mid_run_leaves_no_process_and_no_port() {
    signal_mid_run(libc::SIGTERM, "local-sigterm");
}

#[test]
fn sigkill_mid_run_leaves_no_process_and_no_port() {
    signal_mid_run(libc::SIGKILL, "local-sigkill");
}

#[test]
fn a_recipe_without_one_exclusion_fails_with_the_real_located_denial() {
    let _one = serial();
    if skip_or_fail("local-dropped-exclusion") {
        return;
    }
    let dir = tmp("local-dropped-exclusion");
    let scenario = dropped_exclusion("recipe-without-registry-exclusion");
    let out = start(&scenario, &dir).wait_with_output().unwrap();
    let _ = std::fs::remove_file(&scenario);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "a policy verdict, not an infrastructure failure: {text}");
    // The phase's failure, from its line in the summary to the next phase's line.
    let start = text.find("  install-telepresence ").unwrap_or_else(|| panic!("{text}"));
    let end = text[start..].find("  deploy-workload ").map_or(text.len(), |e| start + e);
    let failure = &text[start..end];
    assert!(failure.contains("FAILED") && !failure.contains("infrastructure failure"), "{failure}");
    // Kyverno's real denial of the traffic-manager Deployment by the dropped rule only, located.
    assert!(failure.contains("resource Deployment/ambassador/traffic-manager was blocked"), "{failure}");
    assert!(
        failure.contains("autogen-validate-registries")
            && failure.contains("failed at path /spec/template/spec/containers/0/image/"),
        "{failure}"
    );
    assert!(!failure.contains("require-security-context"), "only the dropped rule: {failure}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the 2.31.0 recipe fixture named `name` (beside it) without the `validate-registries`
/// exclusion: the traffic-manager's pods (ghcr.io) are then denied by the registry rule at install.
fn dropped_exclusion(name: &str) -> PathBuf {
    let src = std::fs::read_to_string(common::root().join("tests/fixtures/local/recipe-2.31.0.yaml")).unwrap();
    let dropped = src.replace(
        "      - policy: restrict-image-registries\n        rules:\n          - validate-registries\n        namespaces:\n          - ambassador\n",
        "",
    );
    assert_ne!(src, dropped, "the fixture's registry exclusion was not found");
    let scenario = common::root().join(format!("tests/fixtures/local/{name}.yaml"));
    std::fs::write(&scenario, dropped.replace("recipe-on-local-2-31", name)).unwrap();
    scenario
}

/// A failure `--quarantine` tolerates (today from `KYVTEL_TODAY`) is reported quarantined with the
/// real denial, and the run exits 0; the same entry once expired is refused before anything runs.
#[test]
fn a_quarantined_failure_is_tolerated_until_its_entry_expires() {
    let _one = serial();
    if skip_or_fail("local-quarantined") {
        return;
    }
    let dir = tmp("local-quarantined");
    let scenario = dropped_exclusion("recipe-quarantined");
    let q = dir.join("quarantine.yaml");
    std::fs::write(
        &q,
        "entries:\n  - scenario: recipe-quarantined\n    reason: the test's own\n    expires: 2026-12-20\n",
    )
    .unwrap();
    let today = |d: &str| strings(&["env", &format!("KYVTEL_TODAY={d}")]);
    let quarantine = ["--quarantine", q.to_str().unwrap()];
    let expired = start_wrapped(&today("2026-12-21"), &scenario, &dir, &quarantine).wait_with_output().unwrap();
    let text = output_text(&expired);
    assert_eq!(expired.status.code(), Some(2), "{text}");
    assert!(text.contains("quarantine.yaml:4:14: expired on 2026-12-20 (today is 2026-12-21)"), "{text}");
    assert!(!dir.join("reports").exists(), "nothing ran: {text}");
    let out = start_wrapped(&today("2026-12-04"), &scenario, &dir, &quarantine).wait_with_output().unwrap();
    let _ = std::fs::remove_file(&scenario);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 passed, 0 failed, 0 ignored, 1 quarantined"), "{text}");
    let s = &summary(&dir.join("reports"))["scenarios"][0];
    assert_eq!(s["verdict"], "failed", "{s}");
    assert_eq!(s["quarantined"], "quarantined until 2026-12-20 (the test's own)", "{s}");
    let message = s["message"].as_str().unwrap_or_default();
    assert!(message.contains("autogen-validate-registries") && !message.contains("infrastructure"), "{message}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (up to 120 s) until Kyverno of the run in `work` runs, then kills its API server.
fn kill_apiserver_once_kyverno_runs(work: &str) {
    let up = wait_until(Duration::from_secs(120), || {
        processes_naming(work).iter().any(|p| p.contains("kyverno.kubeconfig"))
    });
    assert!(up, "Kyverno never started: {:?}", processes_naming(work));
    let apiserver = processes_naming(work)
        .into_iter()
        .find(|p| p.contains("kube-apiserver --etcd-servers"))
        .and_then(|p| p.split(':').next().and_then(|pid| pid.parse::<i32>().ok()))
        .expect("the API server's pid");
    // SAFETY: killing a process of the run this test started.
    unsafe { libc::kill(apiserver, libc::SIGKILL) };
}

/// A component that dies mid-run is an infrastructure failure (exit 3, named), never a policy verdict,
/// and the rest of the stack is still stopped.
#[test]
fn a_component_killed_mid_run_is_an_infrastructure_failure() {
    let _one = serial();
    if skip_or_fail("local-component-killed") {
        return;
    }
    let dir = tmp("local-component-killed");
    let work = dir.join("work").display().to_string();
    let child = start(&common::root().join("tests/fixtures/local/recipe-2.31.0.yaml"), &dir);
    kill_apiserver_once_kyverno_runs(&work);
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("infrastructure failure"), "{text}");
    assert!(
        wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty()),
        "{:?}",
        processes_naming(&work)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `--retries 1`, the same infrastructure failure (the API server killed once) is retried on
/// a fresh stack: the scenario passes on its second attempt and is reported flaky, with the first
/// attempt's message and evidence kept; no process of either attempt is left.
#[test]
fn an_infrastructure_failure_is_retried_and_a_later_pass_is_flaky() {
    let _one = serial();
    if skip_or_fail("local-retried") {
        return;
    }
    let dir = tmp("local-retried");
    let work = dir.join("work").display().to_string();
    let child = start_with(&common::root().join("tests/fixtures/local/recipe-2.31.0.yaml"), &dir, &["--retries", "1"]);
    kill_apiserver_once_kyverno_runs(&work);
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("attempt 2 of 2: recipe-on-local-2-31@2.31.0"), "{text}");
    let s = &summary(&dir.join("reports"))["scenarios"];
    assert_eq!(s.as_array().map(Vec::len), Some(1), "one report per scenario: {s}");
    assert_eq!(s[0]["verdict"], "passed", "{s}");
    // Its own line, and the shared setup's when that is what failed; the bundle kept either way.
    let attempts: Vec<String> =
        s[0]["failedAttempts"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(String::from)).collect();
    assert!(
        !attempts.is_empty()
            && attempts.iter().all(|a| a.starts_with("attempt 1: ") && a.contains("infrastructure failure")),
        "{s}"
    );
    let kept = attempts
        .iter()
        .find_map(|a| a.split_once("(evidence: ").and_then(|(_, e)| e.split_once(')').map(|(p, _)| p.to_string())))
        .expect("an attempt's evidence");
    assert!(Path::new(&kept).is_dir() && kept.ends_with(".attempt-1"), "{attempts:?}");
    let run = std::fs::read_dir(dir.join("reports")).unwrap().flatten().next().unwrap().path();
    let junit = std::fs::read_to_string(run.join("junit.xml")).unwrap();
    assert!(junit.contains("<flakyFailure") && !junit.contains("<failure"), "{junit}");
    assert!(
        wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty()),
        "{:?}",
        processes_naming(&work)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The run's JSON report, `<reports>/<run-id>/summary.json`.
fn summary(reports: &Path) -> serde_json::Value {
    let run = std::fs::read_dir(reports).unwrap().flatten().next().expect("a run's report directory").path();
    let text = std::fs::read_to_string(run.join("summary.json")).unwrap_or_else(|e| panic!("summary.json: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The number of checks the run's JSON report says were asserted, per scenario.
fn asserted(reports: &Path) -> Vec<u64> {
    summary(reports)["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["checksAsserted"].as_u64().unwrap_or(0))
        .collect()
}

/// A run after another restores the snapshot of the clean "stack ready" state (nothing installed
/// again), and its scenario still passes on real admissions with as many checks as a cold run's.
#[test]
fn a_second_run_starts_warm_from_the_snapshot_and_asserts_the_same_checks() {
    let _one = serial();
    if skip_or_fail("local-warm") {
        return;
    }
    let dir = tmp("local-warm");
    let scenario = common::root().join("tests/fixtures/local/recipe-2.31.0.yaml");
    let run = |name: &str, extra: &[&str]| {
        let out = start_with(&scenario, &dir.join(name), extra).wait_with_output().unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {text}");
        (text, asserted(&dir.join(name).join("reports")))
    };
    let (cold, cold_checks) = run("cold", &["--cold"]);
    assert!(!cold.contains("stack: "), "--cold neither restores nor saves a snapshot: {cold}");
    // The first run with snapshots saves one (cold) unless an earlier run did; the second restores it.
    let (first, _) = run("first", &[]);
    assert!(first.contains("stack: saved snapshot") || first.contains("stack: warm start from snapshot"), "{first}");
    let (warm, warm_checks) = run("warm", &[]);
    assert!(warm.contains("stack: warm start from snapshot"), "{warm}");
    assert!(!warm.contains("stack: saved snapshot"), "a warm start saves nothing: {warm}");
    assert!(!cold_checks.is_empty() && cold_checks.iter().all(|n| *n > 0), "{cold_checks:?}");
    assert_eq!(cold_checks, warm_checks, "a warm start asserts what a cold one does");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The local run judges the real injected pod with exactly the checks `kyvtel verify` makes of that
/// pod: same number, same fields, same expected and actual values, same verdicts.
#[test]
fn the_local_run_asserts_what_kyvtel_verify_asserts_on_the_same_pod() {
    let _one = serial();
    if skip_or_fail("local-vs-verify") {
        return;
    }
    let dir = tmp("local-vs-verify");
    let scenario = common::root().join("tests/fixtures/local/recipe-2.31.0.yaml");
    let out = start(&scenario, &dir).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = summary(&dir.join("reports"));
    let s = &report["scenarios"][0];
    let local = s["podChecks"].as_array().cloned().unwrap_or_default();
    assert!(!local.is_empty(), "the local run judged no pod: {s}");
    let pod = s["pod"].as_str().expect("the judged pod's file");
    let verify = Command::new(assert_cmd::cargo::cargo_bin("kyvtel"))
        .current_dir(common::root())
        .args(["verify", "--output", "json", "--pod", pod])
        .arg(&scenario)
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stderr));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let verified = v["checks"].as_array().cloned().unwrap_or_default();
    assert_eq!(local.len(), verified.len(), "local {local:#?}\nverify {verified:#?}");
    assert_eq!(local, verified);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Telepresence 2.20.2's trap, for real (facts.md §7): a workload without its Service crashes the
/// 2.20.2 manager (nil pointer, `mutator/watcher.go:714`), after which its webhook would fail open and
/// admit the pod without an agent. The run must end as an infrastructure failure naming the crash
/// (exit 3), never as a pass and never as a policy verdict.
#[test]
fn the_2_20_2_manager_crash_on_a_workload_without_service_is_an_infrastructure_failure() {
    let _one = serial();
    if skip_or_fail("local-trap-no-service") {
        return;
    }
    let dir = tmp("local-trap-no-service");
    let scenario = common::root().join("tests/fixtures/local/trap-no-service-2.20.2.yaml");
    let out = start(&scenario, &dir).wait_with_output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("infrastructure failure: component exited: traffic-manager"), "{text}");
    assert!(text.contains("crashed: panic: runtime error: invalid memory address or nil pointer"), "{text}");
    assert!(text.contains("mutator/watcher.go:714"), "{text}");
    assert!(!text.contains("1 passed"), "{text}");
    let s = &summary(&dir.join("reports"))["scenarios"][0];
    assert_eq!(s["verdict"], "failed", "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kyvtel run --provider local`, wrapped in `prefix` when it is not empty (a command that ends by
/// executing its arguments).
fn start_wrapped(prefix: &[String], scenario: &Path, dir: &Path, extra: &[&str]) -> Child {
    let kyvtel = assert_cmd::cargo::cargo_bin("kyvtel");
    let mut argv: Vec<std::ffi::OsString> = prefix.iter().map(Into::into).collect();
    argv.push(kyvtel.into());
    let program = argv.remove(0);
    Command::new(program)
        .args(argv)
        .current_dir(common::root())
        .args(["run", "--provider", "local"])
        .args(extra)
        .arg(scenario)
        .arg("--report-dir")
        .arg(dir.join("reports"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| (*s).to_string()).collect()
}

/// Without root, kyvtel makes its namespaces inside a user namespace. As root, the test first drops
/// root: euid 65534 in a user namespace of its own, without any capability (the files stay
/// reachable: their host owner is the mapped user). Without root, kyvtel is unprivileged already.
#[test]
fn without_root_the_run_confines_itself_in_a_user_namespace() {
    let _one = serial();
    if skip_or_fail("local-userns") {
        return;
    }
    let dir = tmp("local-userns");
    let work = dir.join("work").display().to_string();
    // SAFETY: geteuid has no preconditions.
    let prefix = if unsafe { libc::geteuid() } == 0 {
        strings(&["unshare", "--user", "--map-user=65534", "--map-group=65534", "--"])
    } else {
        Vec::new()
    };
    let scenario = common::root().join("tests/fixtures/local/recipe-2.31.0.yaml");
    let out = start_wrapped(&prefix, &scenario, &dir, &[]).wait_with_output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("confined: private network, mount and PID namespaces, in a user namespace (without root)"),
        "{text}"
    );
    let checks = asserted(&dir.join("reports"));
    assert!(!checks.is_empty() && checks.iter().all(|n| *n > 0), "{checks:?}");
    assert!(
        wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty()),
        "{:?}",
        processes_naming(&work)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The listening TCP sockets of the network namespace of process `pid`, as (address, port); none
/// while it is still in this test's namespace (before its `unshare --net`).
fn listeners_of(pid: u32) -> Vec<(String, u16)> {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
    if ns(&pid.to_string()).is_none_or(|n| Some(n) == ns("self")) {
        return Vec::new();
    }
    listeners_in(&format!("/proc/{pid}/net"))
}

/// 127.0.0.1 or ::1 as /proc/net/tcp{,6} print them.
fn is_loopback(addr: &str) -> bool {
    addr == "0100007F" || addr == "00000000000000000000000001000000"
}

/// Where no namespace can be made (here: user namespaces nested until the kernel refuses one more,
/// as non-root), the run refuses with exit 3 and names the fixes; `--unconfined` runs without
/// namespaces: every listener on loopback at a port picked free, the traffic-manager not started and
/// the steps that need its injector skipped with the reason, never passed. The test keeps it in a
/// network namespace of its own.
#[test]
fn where_no_namespace_can_be_made_the_run_refuses_unless_unconfined() {
    let _one = serial();
    if skip_or_fail("local-unconfined") {
        return;
    }
    let dir = tmp("local-unconfined");
    let work = dir.join("work").display().to_string();
    let deep = dir.join("deep.sh");
    std::fs::write(
        &deep,
        "#!/bin/sh\n# Nests user namespaces until the kernel refuses one more, then runs \"$@\".\n\
         if unshare --user --map-current-user true 2>/dev/null; then exec unshare --user --map-current-user \"$0\" \"$@\"; fi\n\
         exec \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&deep, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut prefix = strings(&[
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
        "unshare",
        "--user",
        "--map-user=65534",
        "--map-group=65534",
        "--",
    ]);
    prefix.push(deep.display().to_string());
    let scenario = common::root().join("tests/fixtures/local/recipe-2.31.0.yaml");

    let refused = start_wrapped(&prefix, &scenario, &dir.join("refused"), &[]).wait_with_output().unwrap();
    let text = output_text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{text}");
    assert!(text.contains("an unprivileged user namespace was refused"), "{text}");
    assert!(text.contains("--unconfined"), "the fixes name the flag: {text}");

    let mut child = start_wrapped(&prefix, &scenario, &dir, &["--unconfined"]);
    let mut seen = std::collections::BTreeSet::new();
    let ended = wait_until(Duration::from_secs(300), || {
        seen.extend(listeners_of(child.id()));
        child.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let text = output_text(&out);
    assert!(ended, "the unconfined run did not end within 300 s: {text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("unconfined: no private namespaces"), "{text}");
    assert!(seen.len() >= 4, "the components' listeners were seen: {seen:?}");
    assert!(seen.iter().all(|(a, _)| is_loopback(a)), "every listener on loopback: {seen:?}");
    for fixed in [2379, 6443, 9443] {
        assert!(seen.iter().all(|(_, p)| *p != fixed), "ports are picked free, not the confined {fixed}: {seen:?}");
    }
    let s = &summary(&dir.join("reports"))["scenarios"][0];
    assert!(s["checksAsserted"].as_u64().unwrap_or(0) > 0, "{s}");
    let skipped = s["skippedSteps"].as_array().cloned().unwrap_or_default();
    let deploy = skipped.iter().find(|k| k["name"] == "deploy-workload").unwrap_or_else(|| panic!("{s}"));
    assert!(deploy["reason"].as_str().unwrap_or_default().contains("unconfined"), "{deploy}");
    assert!(
        wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty()),
        "{:?}",
        processes_naming(&work)
    );

    // SIGKILL mid-run: without a PID namespace, PR_SET_PDEATHSIG alone must end every component.
    let killed = dir.join("killed");
    let work = killed.join("work").display().to_string();
    let mut child = start_wrapped(&prefix, &scenario, &killed, &["--unconfined"]);
    let up = wait_until(Duration::from_secs(120), || {
        processes_naming(&work).iter().any(|p| p.contains("kyverno.kubeconfig"))
    });
    assert!(up, "Kyverno never started: {:?}", processes_naming(&work));
    // SAFETY: signalling our own child (kyvtel, after the wrappers' execs).
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let gone = wait_until(Duration::from_secs(10), || processes_naming(&work).is_empty());
    assert!(gone, "processes of the killed unconfined run are left: {:?}", processes_naming(&work));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The interfaces of process `pid`'s network namespace (`/proc/<pid>/net/dev`, after its two
/// header lines).
fn interfaces_of(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

/// A TCP connect from inside process `pid`'s network namespace (`nsenter`, bash's `/dev/tcp`):
/// `Ok` when it connected, else what failed.
fn connect_inside(pid: u32, addr: &str, port: u16) -> Result<(), String> {
    let mut c = Command::new("nsenter");
    c.arg(format!("--target={pid}")).arg("--net");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        c.args(["--user", "--preserve-credentials"]);
    }
    let out = c
        .args(["--", "timeout", "5", "bash", "-c", &format!("exec 3<>/dev/tcp/{addr}/{port}")])
        .output()
        .map_err(|e| format!("nsenter: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

/// Every file under `dir` that holds a credential: a private key, a kubeconfig, a token.
fn credentials_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if name.ends_with(".key") || name.contains("kubeconfig") || name.contains("token") {
                out.push(p);
            }
        }
    }
    out
}

/// Security of the confined run, mid-run: every component is in a network namespace other than the
/// host's, whose only interface is `lo`; inside it a connect to loopback works and one to a
/// non-loopback address (192.0.2.1, TEST-NET-1 of RFC 5737) fails at once; no new listener appears
/// on the host. Every credential (keys, kubeconfigs, tokens) is 0600 in a 0700 directory, and after
/// Ctrl-C none is left.
#[test]
fn the_confined_stack_has_only_loopback_and_private_credentials() {
    use std::os::unix::fs::PermissionsExt as _;
    let _one = serial();
    if skip_or_fail("local-confinement") {
        return;
    }
    let dir = tmp("local-confinement");
    let work = dir.join("work");
    let w = work.display().to_string();
    let host_before = listening_ports();
    let mut child = start(&common::root().join("tests/fixtures/local/recipe-2.31.0.yaml"), &dir);
    let up = wait_until(Duration::from_secs(300), || processes_naming(&w).iter().any(|p| p.contains("/kyverno ")));
    let components: Vec<u32> = processes_naming(&w)
        .iter()
        .filter(|p| p.contains("/.tools/local/"))
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect();
    let report = (|| -> Result<usize, String> {
        if !up {
            return Err(format!("Kyverno never started: {:?}", processes_naming(&w)));
        }
        let host_ns = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        for pid in &components {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
            if ns == host_ns {
                return Err(format!("component {pid} is in the host's network namespace"));
            }
            let ifaces = interfaces_of(*pid);
            if ifaces != ["lo"] {
                return Err(format!("component {pid} sees interfaces {ifaces:?}, not only lo"));
            }
        }
        let pid = *components.first().ok_or("no component found")?;
        let (_, port) = listeners_in(&format!("/proc/{pid}/net"))
            .into_iter()
            .find(|(a, _)| is_loopback(a))
            .ok_or("no loopback listener inside")?;
        connect_inside(pid, "127.0.0.1", port).map_err(|e| format!("a loopback connect inside failed: {e}"))?;
        match connect_inside(pid, "192.0.2.1", 443) {
            Ok(()) => return Err("a connect to 192.0.2.1 succeeded inside".into()),
            Err(e) if e.contains("Network is unreachable") => {}
            Err(e) => return Err(format!("the connect to 192.0.2.1 failed otherwise than unreachable: {e}")),
        }
        let creds = credentials_under(&work);
        if creds.is_empty() {
            return Err("no credential found under the work directory".into());
        }
        for c in &creds {
            let mode = std::fs::metadata(c).map_err(|e| e.to_string())?.permissions().mode() & 0o777;
            let parent = c.parent().unwrap();
            let dmode = std::fs::metadata(parent).map_err(|e| e.to_string())?.permissions().mode() & 0o777;
            if mode != 0o600 || dmode != 0o700 {
                return Err(format!("{} is {mode:o} in a {dmode:o} directory", c.display()));
            }
        }
        Ok(creds.len())
    })();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let ended = wait_until(Duration::from_secs(120), || child.try_wait().ok().flatten().is_some());
    if !ended {
        let _ = child.kill();
    }
    let _ = child.wait();
    let left = credentials_under(&work);
    let new: Vec<u16> = listening_ports().into_iter().filter(|p| !host_before.contains(p)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    let n = report.unwrap();
    eprintln!("confinement: {} components only on lo; {n} credentials 0600 in 0700 directories", components.len());
    assert!(ended, "kyvtel did not end within 120 s of Ctrl-C");
    assert!(left.is_empty(), "credentials left after the run: {left:?}");
    assert!(new.is_empty(), "new listeners on the host: {new:?}");
}
