//! A tampered Go module is refused: the local provider's build of a component whose wrapper
//! `go.sum` carries a wrong line for the module it builds fails with Go's checksum mismatch (its
//! `SECURITY ERROR`), and no binary is written, so nothing from it is ever executed. (A tampered
//! tool download is refused in `tools_install.rs`.)
//!
//! Needs Go and the module in Go's module cache (`kyvtel tools build`); where the local provider
//! cannot run, the test says why and returns (a failure under `KYVTEL_REQUIRE_LIVE=1`).

mod common;

use std::time::Duration;

use common::local::skip_or_fail;
use kyvtel::provider::local::build::{GoEnv, command, targets};

#[test]
fn a_wrong_go_sum_line_fails_the_build_and_writes_no_binary() {
    if skip_or_fail("local-build-tampered") {
        return;
    }
    let pins = kyvtel::scenario::pins::Pins::builtin();
    let t = targets(&pins).into_iter().find(|t| t.name == "helm").expect("helm is a local component");
    let root = tempfile::tempdir().unwrap();
    let wrapper = root.path().join(&t.spec.wrapper);
    std::fs::create_dir_all(&wrapper).unwrap();
    std::fs::copy(common::root().join(&t.spec.wrapper).join("go.mod"), wrapper.join("go.mod")).unwrap();
    let sum = std::fs::read_to_string(common::root().join(&t.spec.wrapper).join("go.sum")).unwrap();
    let line = format!("{} {} h1:", t.spec.module, t.spec.version);
    assert!(sum.lines().any(|l| l.starts_with(&line)), "go.sum pins {line}");
    // The module's own hash replaced by another well-formed one (32 bytes, base64).
    let tampered: String = sum
        .lines()
        .map(|l| if l.starts_with(&line) { format!("{line}{}=\n", "A".repeat(43)) } else { format!("{l}\n") })
        .collect();
    assert_ne!(tampered, sum);
    std::fs::write(wrapper.join("go.sum"), tampered).unwrap();

    let env = GoEnv::detect(None).unwrap();
    let build = command(&t, &env, root.path());
    let err = build.run(Duration::from_secs(600)).expect_err("a tampered go.sum must fail the build");
    // Go: `verifying <module>: checksum mismatch`, then `SECURITY ERROR ... does NOT match ... go.sum`.
    assert!(err.contains("SECURITY ERROR") && err.contains("does NOT match"), "{err}");
    assert!(!build.output.exists(), "no binary from a tampered module: {}", build.output.display());
}
