//! Fake external tools for driving the real `kyvtel run` binary offline: shell scripts in a tools
//! directory that log their arguments, the pinned chart file, and a kubeconfig for a cluster that
//! is never reachable.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// A fake tool at `path` (its directory is created) that appends `<logged_as> <args>` to `log`,
/// then runs `body`.
pub fn script_at(path: &Path, logged_as: &str, log: &Path, body: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, format!("#!/bin/sh\necho \"{logged_as} $*\" >> '{}'\n{body}\n", log.display())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake tool `name` in `dir` (see [`script_at`]).
pub fn script(dir: &Path, name: &str, log: &Path, body: &str) {
    script_at(&dir.join(name), name, log, body);
}

/// `<dir>/tools`, holding only the pinned default Kyverno chart (which `kyvtel run` checks for
/// before it starts).
pub fn tools_with_chart(dir: &Path) -> PathBuf {
    let tools = dir.join("tools");
    std::fs::create_dir_all(tools.join("charts")).unwrap();
    std::fs::write(tools.join("charts/kyverno-3.9.1.tgz"), b"not a real chart").unwrap();
    tools
}

/// Writes a kubeconfig whose only cluster is a closed loopback port, with user token `token`.
pub fn closed_port_kubeconfig(path: &Path, token: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:9'}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  \
             user: {{token: {token}}}\n"
        ),
    )
    .unwrap();
}

/// Whether `kyvtel run` cannot start on this machine (it checks passwordless sudo and
/// `/dev/net/tun` first); prints why the caller skips.
pub fn run_cannot_start_here() -> bool {
    let findings = kyvtel::doctor::machine_findings();
    match findings.iter().find(|f| !f.ok && (f.check == "sudo" || f.check == "tun")) {
        Some(f) => {
            eprintln!("SKIPPED: the run checks `{}` before it starts, and it fails here: {}", f.check, f.detail);
            true
        }
        None => false,
    }
}
