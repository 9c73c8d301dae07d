//! `kyvtel tools install` through the binary (offline: only paths that need no network).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use kyvtel::scenario::pins::Pins;
use kyvtel::tools::install::verify::sha256_hex;
use kyvtel::tools::install::{MANIFEST, ManifestEntry};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tools-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn unknown_item_is_bad_usage() {
    Command::cargo_bin("kyvtel").unwrap().args(["tools", "install", "--only", "minikube"]).assert().code(2);
}

#[test]
fn an_installed_tool_is_left_alone_without_network() {
    let dir = scratch("uptodate");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let pins = Pins::builtin();
    let kind = pins.kind.release(&pins.kind.default).unwrap();
    std::fs::write(bin.join("kind"), b"installed-kind").unwrap();
    let entry = ManifestEntry {
        version: pins.kind.default.clone(),
        url: kind.url.clone(),
        download_sha256: sha256_hex(b"installed-kind"),
        file_sha256: sha256_hex(b"installed-kind"),
    };
    let manifest = serde_json::json!({ "kind": entry });
    std::fs::write(bin.join(MANIFEST), manifest.to_string()).unwrap();
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--only", "kind", "--ignore-path"])
        .env("KYVTEL_TOOLS_DIR", &bin)
        .env("KYVTEL_LOCK_FILE", dir.join("telepresence.lock"))
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("kind v0.33.0: up to date"), "{stdout}");
}

#[test]
fn a_malformed_lock_file_is_an_input_error() {
    let dir = scratch("badlock");
    let lock = dir.join("telepresence.lock");
    std::fs::write(&lock, "2.32.1 not-a-digest https://x\n").unwrap();
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--only", "kind", "--lock"])
        .arg(&lock)
        .env("KYVTEL_TOOLS_DIR", dir.join("bin"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("telepresence.lock:1:1"), "{stderr}");
}
