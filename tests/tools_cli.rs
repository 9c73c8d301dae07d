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
    // helm: the pinned sha256 is the archive's; the installed file is the binary extracted from it.
    let helm = pins.helm.release(&pins.helm.default).unwrap();
    std::fs::write(bin.join("helm"), b"installed-helm").unwrap();
    let entry = ManifestEntry {
        version: pins.helm.default.clone(),
        url: helm.url.clone(),
        download_sha256: helm.sha256.clone().expect("helm is pinned by sha256"),
        file_sha256: sha256_hex(b"installed-helm"),
    };
    let manifest = serde_json::json!({ "helm": entry });
    std::fs::write(bin.join(MANIFEST), manifest.to_string()).unwrap();
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--only", "helm", "--ignore-path"])
        .env("KYVTEL_TOOLS_DIR", &bin)
        .env("KYVTEL_LOCK_FILE", dir.join("tools.lock"))
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains(&format!("helm {}: up to date", pins.helm.default)), "{stdout}");
}

#[test]
fn a_malformed_lock_file_is_an_input_error() {
    let dir = scratch("badlock");
    let lock = dir.join("tools.lock");
    std::fs::write(&lock, "telepresence 2.32.1 not-a-digest https://x\n").unwrap();
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--only", "kind", "--lock"])
        .arg(&lock)
        .env("KYVTEL_TOOLS_DIR", dir.join("bin"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("tools.lock:1:1") && stderr.contains("not a sha256"), "{stderr}");
}

/// Writes `contents` as an installed file with its manifest entry under `key`.
fn installed(bin: &Path, key: &str, file: &str, version: &str, url: &str, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(bin.join(file).parent().unwrap()).unwrap();
    std::fs::write(bin.join(file), contents).unwrap();
    std::fs::set_permissions(bin.join(file), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = bin.join(MANIFEST);
    let mut manifest: serde_json::Map<String, serde_json::Value> =
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let entry = ManifestEntry {
        version: version.into(),
        url: url.into(),
        download_sha256: sha256_hex(contents),
        file_sha256: sha256_hex(contents),
    };
    manifest.insert(key.into(), serde_json::to_value(entry).unwrap());
    std::fs::write(path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

#[test]
fn an_unknown_telepresence_version_is_bad_usage_naming_the_known_ones() {
    let dir = scratch("tp-unknown");
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--telepresence", "2.99.0"])
        .env("KYVTEL_TOOLS_DIR", dir.join("bin"))
        .env("KYVTEL_LOCK_FILE", dir.join("tools.lock"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("--telepresence 2.99.0: not a pinned Telepresence version"), "{stderr}");
    assert!(stderr.contains("known: 2.20.2, 2.22.6, 2.27.4, 2.31.0, 2.31.2, 2.32.1"), "{stderr}");
    assert!(!dir.join("bin").exists(), "nothing is installed on bad usage");
}

#[test]
fn defaults_only_and_for_scenarios_do_not_go_together() {
    Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--defaults-only", "--for-scenarios", "scenarios"])
        .assert()
        .code(2);
}

#[test]
fn the_telepresence_versions_of_the_scenarios_and_of_the_flag_are_installed_side_by_side() {
    let dir = scratch("tp-scenarios");
    let bin = dir.join("bin");
    let pins = Pins::builtin();
    let url = |v: &str| pins.telepresence.release(v).unwrap().url.clone();
    installed(&bin, "telepresence", "telepresence", "2.32.1", &url("2.32.1"), b"tp-2.32.1");
    installed(&bin, "telepresence@2.27.4", "telepresence-2.27.4/telepresence", "2.27.4", &url("2.27.4"), b"tp-2.27.4");
    installed(&bin, "telepresence@2.22.6", "telepresence-2.22.6/telepresence", "2.22.6", &url("2.22.6"), b"tp-2.22.6");
    let lock = dir.join("tools.lock");
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--only", "telepresence", "--ignore-path", "--telepresence", "2.22.6"])
        .args([
            "--for-scenarios",
            "tests/fixtures/run/recipe-telepresence-2.27.yaml",
            "scenarios/documented-recipe.yaml",
        ])
        .env("KYVTEL_TOOLS_DIR", &bin)
        .env("KYVTEL_LOCK_FILE", &lock)
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("telepresence 2.32.1: up to date") && lines[0].ends_with("bin/telepresence)"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("telepresence 2.27.4: up to date")
            && lines[1].contains("telepresence-2.27.4/telepresence"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("telepresence 2.22.6: up to date")
            && lines[2].contains("telepresence-2.22.6/telepresence"),
        "{stdout}"
    );
    // The installed files were the first use: recorded per version.
    let lock = std::fs::read_to_string(&lock).unwrap();
    for v in ["2.32.1", "2.27.4", "2.22.6"] {
        let line = format!("telepresence {v} {} {}", sha256_hex(format!("tp-{v}").as_bytes()), url(v));
        assert!(lock.contains(&line), "{line} missing from\n{lock}");
    }
}

#[test]
fn a_bad_scenario_named_by_for_scenarios_is_an_input_error() {
    let dir = scratch("bad-scenario");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: kyvtel.dev/v1alpha1\nkind: Scenario\nmetadata: {name: x}\nspec: {versions: {telepresence: 9.9.9}}\n").unwrap();
    let out = Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["tools", "install", "--for-scenarios"])
        .arg(&bad)
        .env("KYVTEL_TOOLS_DIR", dir.join("bin"))
        .env("KYVTEL_LOCK_FILE", dir.join("tools.lock"))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("bad.yaml:"), "{stderr}");
    assert!(!dir.join("bin").exists(), "nothing is installed on bad input");
}
