//! Ctrl-C during `kyvtel run`: the running command is interrupted, the phase fails as cancelled,
//! and the teardown of what was set up still runs, then the reports are written.
//!
//! The tools are fake scripts in a temporary tools directory that log their arguments; the
//! cluster is an existing-cluster kubeconfig pointing at a closed loopback port. Nothing leaves
//! this machine.

mod common;

use common::fake_tools::{closed_port_kubeconfig, run_cannot_start_here, script, tools_with_chart};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for(log: &Path, needle: &str, limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if std::fs::read_to_string(log).unwrap_or_default().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn ctrl_c_interrupts_the_step_and_teardown_still_runs() {
    if run_cannot_start_here() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("kyvtel-ctrlc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let tools = tools_with_chart(&tmp);
    let log = tmp.join("calls.log");
    script(&tools, "helm", &log, "case \"$1\" in version) echo v3.21.4;; install) sleep 120;; esac");
    script(&tools, "telepresence", &log, "case \"$1\" in version) echo 'OSS Client : v2.32.1';; esac");
    let kubeconfig = tmp.join("kubeconfig");
    closed_port_kubeconfig(&kubeconfig, "not-a-real-token");
    let reports = tmp.join("reports");

    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kyvtel"))
        .current_dir(common::root())
        .args(["run", "scenarios/documented-recipe.yaml", "--provider", "existing", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--report-dir")
        .arg(&reports)
        .arg("--work-dir")
        .arg(tmp.join("work"))
        .env("KYVTEL_TOOLS_DIR", &tools)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_for(&log, "helm install kyverno", Duration::from_secs(60));
    if !started {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the run never reached `helm install`; log: {:?}; stderr: {err}", std::fs::read_to_string(&log));
    }
    // SAFETY: kill(2) on our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "the run did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let calls = std::fs::read_to_string(&log).unwrap();

    assert_eq!(status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(t0.elapsed() < Duration::from_secs(60), "the interrupted helm (sleep 120) was not stopped");
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("install-kyverno") && err.contains("cancelled"), "{err}");
    // The interrupted install did not succeed, and this is an existing cluster kyvtel does not own:
    // the release (possibly someone else's Kyverno) is left alone, and the teardown says so.
    assert!(calls.contains("helm install kyverno"), "{calls}");
    assert!(!calls.contains("helm uninstall"), "a release kyvtel did not install was uninstalled: {calls}");
    assert!(!calls.contains("telepresence helm install"), "a later phase ran after Ctrl-C: {calls}");
    assert!(out.trim_end().ends_with("0 passed, 1 failed, 0 ignored"), "{out}");
    let run_dir: PathBuf = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
    assert!(run_dir.join("documented-recipe/index.json").is_file(), "no evidence bundle in {}", run_dir.display());
    let result = std::fs::read_to_string(run_dir.join("documented-recipe/result.json")).unwrap();
    assert!(
        result.contains("uninstall Kyverno") && result.contains("left alone on a cluster it does not own"),
        "{result}"
    );
    // The run-private files (a copy of the kubeconfig, with its token) are gone, and never were in
    // the reports.
    assert!(!tmp.join("work").exists(), "the run-private directory was left behind: {err}");
    let mut stack = vec![reports.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                assert_ne!(path.file_name().unwrap(), "kubeconfig", "{}", path.display());
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                assert!(!text.contains("not-a-real-token"), "the kubeconfig token leaked into {}", path.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
