//! `kyvtel run --retries N`: scenarios that failed for an infrastructure reason (a component died,
//! a webhook could not be called, a setup failed) run again, up to N more times; a policy verdict
//! never does. A scenario that passes on a later attempt is reported flaky (its earlier attempts'
//! messages in JUnit `flakyFailure` and in the JSON summary), and each attempt's evidence bundle is
//! kept, renamed `<scenario>.attempt-<n>`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::report::{ScenarioReport, Verdict};

/// The most retries a run accepts.
pub const MAX_RETRIES: u32 = 5;

/// Whether `s` failed for an infrastructure reason (the only failures that are retried).
#[must_use]
pub fn is_infra_failure(s: &ScenarioReport) -> bool {
    matches!(&s.verdict, Verdict::Failed { message } if message.contains("infrastructure failure"))
}

/// Takes out of `reports` every infrastructure failure of a scenario in `members` (and every
/// infrastructure failure of a shared setup, whose members carry the same failure), renames their
/// evidence bundles, and returns the scenarios to run again with the lines of their failed attempts.
pub fn take_infra_failures(reports: &mut Vec<ScenarioReport>, members: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut earlier: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut setups = Vec::new();
    reports.retain(|s| {
        if !is_infra_failure(s) {
            return true;
        }
        let Verdict::Failed { message } = &s.verdict else { return true };
        let n = s.failed_attempts.len() + 1;
        let evidence = s.evidence.as_ref().map(|e| match keep_attempt(e, n) {
            Some(kept) => format!(" (evidence: {})", kept.display()),
            None => format!(" (evidence: {})", e.display()),
        });
        let line = format!("attempt {n}: {}{}", message, evidence.unwrap_or_default());
        if members.contains(&s.name) {
            let mut lines = s.failed_attempts.clone();
            lines.push(line);
            earlier.insert(s.name.clone(), (message.clone(), lines));
        } else {
            setups.push((s.name.clone(), line));
        }
        false
    });
    // A shared setup's failure (its bundle) goes with each scenario whose failure names it.
    for (setup, line) in setups {
        for (message, lines) in earlier.values_mut() {
            if message.contains(&setup) {
                lines.push(format!("{line} [shared setup {setup}]"));
            }
        }
    }
    earlier.into_iter().map(|(k, (_, lines))| (k, lines)).collect()
}

/// Gives each retried scenario's new report the lines of its failed attempts, first.
pub fn carry_attempts(reports: &mut [ScenarioReport], earlier: &mut BTreeMap<String, Vec<String>>) {
    for s in reports.iter_mut() {
        if let Some(mut lines) = earlier.remove(&s.name) {
            lines.append(&mut s.failed_attempts);
            s.failed_attempts = lines;
        }
    }
}

/// Renames an attempt's evidence directory `<dir>` to `<dir>.attempt-<n>`, so that the next
/// attempt's bundle does not replace it; `None` when it could not be moved.
fn keep_attempt(dir: &std::path::Path, n: usize) -> Option<PathBuf> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let to = dir.with_file_name(format!("{name}.attempt-{n}"));
    match std::fs::rename(dir, &to) {
        Ok(()) => Some(to),
        Err(e) => {
            crate::console_eprintln!("warning: could not keep the evidence of attempt {n} ({}): {e}", dir.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failed(name: &str, message: &str) -> ScenarioReport {
        ScenarioReport::new(name, Verdict::Failed { message: message.into() }, Duration::ZERO)
    }

    #[test]
    fn only_infrastructure_failures_are_taken_and_their_evidence_is_kept_per_attempt() {
        let dir = std::env::temp_dir().join(format!("kyvtel-retry-{}", std::process::id()));
        let bundle = dir.join("a@2.31.0");
        std::fs::create_dir_all(&bundle).unwrap();
        let mut a = failed("a@2.31.0", "infrastructure failure: component exited: kyverno (signal 9)");
        a.evidence = Some(bundle.clone());
        let verdict = failed("b@2.31.0", "expected a denial by require-pod-security-context, but admitted");
        let mut setup = failed("kyvtel-cell-x", "infrastructure failure: component exited: kube-apiserver");
        let setup_bundle = dir.join("kyvtel-cell-x");
        std::fs::create_dir_all(&setup_bundle).unwrap();
        setup.evidence = Some(setup_bundle);
        let member = failed("d@2.31.0", "infrastructure failure: the shared stack kyvtel-cell-x failed: ...");
        let passed = ScenarioReport::new("c@2.31.0", Verdict::Passed, Duration::ZERO);
        let mut reports = vec![a, verdict, setup, member, passed];
        let members = vec!["a@2.31.0".into(), "b@2.31.0".into(), "c@2.31.0".into(), "d@2.31.0".into()];
        let mut earlier = take_infra_failures(&mut reports, &members);
        let names: Vec<&str> = reports.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["b@2.31.0", "c@2.31.0"], "a policy verdict is never retried");
        let lines = &earlier["a@2.31.0"];
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("attempt 1: infrastructure failure: component exited"), "{lines:?}");
        assert!(lines[0].ends_with("a@2.31.0.attempt-1)"), "{lines:?}");
        assert!(dir.join("a@2.31.0.attempt-1").is_dir() && !bundle.exists());
        // The shared setup's bundle goes with the scenario whose failure names it.
        let d = &earlier["d@2.31.0"];
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[1].contains("kyvtel-cell-x.attempt-1") && d[1].ends_with("[shared setup kyvtel-cell-x]"), "{d:?}");
        assert_eq!(earlier["a@2.31.0"].len(), 1, "a failure that names no setup gets none");
        // The second attempt passes: the scenario is flaky, its failed attempt first.
        let mut again = vec![ScenarioReport::new("a@2.31.0", Verdict::Passed, Duration::ZERO)];
        carry_attempts(&mut again, &mut earlier);
        assert_eq!(again[0].failed_attempts.len(), 1);
        assert_eq!(earlier.len(), 1, "d was not run again here");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
