//! `cargo test --test e2e` on a machine without the live prerequisites: every catalog scenario is
//! reported ignored with its reason, and `KYVTEL_REQUIRE_LIVE=1` turns that into failures. The harness
//! is forced onto kind (`KYVTEL_E2E_PROVIDER=kind`), so that the local provider, which runs here,
//! does not stand in.
//!
//! The e2e harness binary is the one cargo built next to this test (`target/<profile>/deps/e2e-*`).

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The newest e2e harness binary next to this test binary.
fn e2e_binary() -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    std::fs::read_dir(deps)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            name.starts_with("e2e-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

fn catalog() -> Vec<String> {
    common::catalog_files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().to_string()).collect()
}

#[test]
fn offline_every_scenario_is_ignored_with_a_reason_and_require_live_fails() {
    let ready = kyvtel::doctor::ready(&kyvtel::doctor::machine_findings());
    if ready {
        eprintln!("SKIPPED: this machine has every live prerequisite; the offline reporting cannot be observed");
        return;
    }
    let Some(bin) = e2e_binary() else {
        panic!("no e2e harness binary next to {:?}; run `cargo test` (all targets)", std::env::current_exe());
    };
    let out = Command::new(&bin)
        .current_dir(common::root())
        .env("KYVTEL_E2E_PROVIDER", "kind")
        .env_remove("KYVTEL_REQUIRE_LIVE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let names = catalog();
    for n in &names {
        let line =
            text.lines().find(|l| l.contains(&format!(" {n} ")) || l.ends_with(&format!(" {n}"))).unwrap_or_default();
        assert!(
            line.contains("ignored, live prerequisites missing: ")
                || line.contains("ignored (live prerequisites missing: "),
            "{n}: {text}"
        );
    }
    assert!(text.contains(&format!("0 passed; 0 failed; {} ignored", names.len())), "{text}");

    let out = Command::new(&bin)
        .current_dir(common::root())
        .env("KYVTEL_E2E_PROVIDER", "kind")
        .env("KYVTEL_REQUIRE_LIVE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(&format!("0 passed; {} failed; 0 ignored", names.len())), "{text}");
    assert!(text.contains("KYVTEL_REQUIRE_LIVE=1 and live prerequisites missing"), "{text}");
}
