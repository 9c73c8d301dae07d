//! `kyvtel doctor`: one finding per prerequisite with a fix, exit 0 only when ready.

mod common;

use std::path::PathBuf;

use kyvtel::doctor::{self, Probe};
use kyvtel::scenario::pins::Pins;
use kyvtel::tools::Tool;
use kyvtel::tools::runner::{RecordingRunner, Scripted};

fn ready_machine() -> RecordingRunner {
    machine_with_docker("28.2.2")
}

fn machine_with_docker(version: &str) -> RecordingRunner {
    let r = RecordingRunner::new();
    r.on(Tool::Docker, &["info"], Scripted::ok(format!("{version}\n")));
    r.on(Tool::Kind, &["version"], Scripted::ok("kind v0.33.0 go1.24.1 linux/amd64\n"));
    r.on(Tool::Helm, &["version"], Scripted::ok("v3.21.4"));
    r.on(Tool::Telepresence, &["version"], Scripted::ok("OSS Client : v2.32.1\n"));
    r.on(Tool::Kubectl, &["version"], Scripted::NotFound);
    r.on(Tool::Sudo, &["-n", "true"], Scripted::ok(""));
    r.on(
        Tool::Df,
        &["-Pk"],
        Scripted::ok("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 1 52428800 1% /\n"),
    );
    r
}

fn findings(runner: &RecordingRunner, is_root: bool, tun: &str) -> Vec<doctor::Finding> {
    let pins = Pins::builtin();
    doctor::check(&Probe { runner, pins: &pins, is_root, tun: PathBuf::from(tun), work_dir: common::root() })
}

#[test]
fn a_ready_machine_passes_every_check() {
    let f = findings(&ready_machine(), false, "/");
    assert!(doctor::ready(&f), "{}", doctor::render(&f));
    assert_eq!(
        f.iter().map(|x| x.check.as_str()).collect::<Vec<_>>(),
        ["docker", "kind", "helm", "telepresence", "kubectl", "sudo", "tun", "disk"]
    );
}

#[test]
fn each_missing_prerequisite_is_named_with_a_fix() {
    let r = RecordingRunner::new();
    r.on(Tool::Docker, &["info"], Scripted::fail(1, "Cannot connect to the Docker daemon"));
    r.on(Tool::Kind, &["version"], Scripted::NotFound);
    r.on(Tool::Helm, &["version"], Scripted::ok("v3.20.0"));
    r.on(Tool::Telepresence, &["version"], Scripted::ok("OSS Client : v2.32.1\n"));
    r.on(Tool::Kubectl, &["version"], Scripted::NotFound);
    r.on(Tool::Sudo, &["-n", "true"], Scripted::fail(1, "a password is required"));
    r.on(
        Tool::Df,
        &["-Pk"],
        Scripted::ok("Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 1 1048576 1% /\n"),
    );
    let f = findings(&r, false, "/no/such/tun");
    let failed: Vec<&str> = f.iter().filter(|x| !x.ok).map(|x| x.check.as_str()).collect();
    assert_eq!(failed, ["docker", "kind", "helm", "sudo", "tun", "disk"], "{}", doctor::render(&f));
    assert!(f.iter().filter(|x| !x.ok).all(|x| !x.fix.is_empty()));
    let text = doctor::render(&f);
    assert!(text.contains("FAIL helm: 3.20.0 does not match the pin v3.21.4"), "{text}");
    assert!(text.contains("FAIL disk: 1 GiB free"), "{text}");
    assert!(text.contains("FAIL sudo: `sudo -n true` failed") && text.contains("NOPASSWD"), "{text}");
}

/// The kind path's image preload (`docker save --platform`) needs Docker 28 or newer (API 1.48).
#[test]
fn docker_older_than_28_is_a_missing_prerequisite() {
    let f = findings(&machine_with_docker("27.5.1"), true, "/");
    let docker = f.iter().find(|x| x.check == "docker").unwrap();
    assert!(!docker.ok && docker.detail.contains("older than 28"), "{docker:?}");
    assert!(doctor::ready(&findings(&machine_with_docker("29.1.0"), true, "/")));
}

#[test]
fn root_needs_no_sudo() {
    let r = ready_machine();
    r.on(Tool::Sudo, &["-n", "true"], Scripted::fail(1, "no sudo"));
    assert!(doctor::ready(&findings(&r, true, "/")));
}

#[test]
fn the_cli_exits_3_exactly_when_something_is_missing() {
    let out = common::kyvtel().arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let missing = text.lines().filter(|l| l.starts_with("FAIL ")).count();
    assert_eq!(out.status.code(), Some(if missing > 0 { 3 } else { 0 }), "{text}");
    assert!(text.lines().all(|l| l.starts_with("ok   ") || (l.starts_with("FAIL ") && l.contains("(fix: "))), "{text}");
    for check in ["docker", "kind", "helm", "telepresence", "sudo", "tun", "disk"] {
        assert!(text.contains(&format!(" {check}: ")), "no finding for {check}: {text}");
    }
}
