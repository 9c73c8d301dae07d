//! `$GITHUB_STEP_SUMMARY` handling. Its own test binary: it sets a process environment variable.

use std::path::Path;

use kyvtel::report::summary::append_step_summary;

#[test]
fn markdown_is_appended_only_when_the_variable_is_set() {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("step-summary-{}.md", std::process::id()));
    std::fs::write(&file, "# earlier step\n").unwrap();
    // SAFETY: the only test in this binary, so no other thread reads the environment concurrently.
    unsafe { std::env::remove_var("GITHUB_STEP_SUMMARY") };
    assert!(!append_step_summary("ignored").unwrap());
    unsafe { std::env::set_var("GITHUB_STEP_SUMMARY", &file) };
    assert!(append_step_summary("## kyvtel\n1 passed, 0 failed, 0 ignored").unwrap());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# earlier step\n## kyvtel\n1 passed, 0 failed, 0 ignored\n");
}
