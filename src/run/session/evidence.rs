//! The evidence bundle of a failed scenario, and its entry in the reports.

use super::*;

/// Writes the evidence bundle of a failed scenario and returns its directory.
pub(super) fn write_evidence(
    root: &Path,
    run_id: &str,
    plan: &Plan,
    result: &ScenarioResult,
) -> std::io::Result<PathBuf> {
    let mut b = Bundle::create(root, run_id, &plan.scenario)?;
    let summary = serde_json::to_string_pretty(result).unwrap_or_default();
    b.add("result.json", "phase results, pod checks and teardown of this scenario", summary.as_bytes())?;
    for (name, content) in &result.evidence {
        b.add(name, "collected from the cluster after the failure, before the teardown", content.as_bytes())?;
    }
    for g in &plan.evidence {
        add_gathered(&mut b, g)?;
    }
    b.finish()
}

/// Adds what `g` wrote before the teardown, redacted, then removes it from the run directory: a
/// zip member by member (`<name>__<member path>`), a directory file by file (`<name>__<path>`),
/// any other file as `<name>`. Nothing written (the command failed) adds nothing here; its output
/// is in `<name>.command.txt`.
pub(super) fn add_gathered(b: &mut Bundle, g: &Gather) -> std::io::Result<()> {
    let out = &g.output;
    let what = format!("{} (gathered before the teardown)", g.name);
    if out.is_dir() {
        // Every file goes through the bundle, which redacts tokens and certificates.
        let mut stack = vec![out.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(out) {
                    b.add_file(&nested_name(&g.name, &rel.to_string_lossy()), &what, &path)?;
                }
            }
        }
        let _ = std::fs::remove_dir_all(out);
    } else if let Ok(bytes) = std::fs::read(out) {
        let _ = std::fs::remove_file(out);
        if out.extension().is_some_and(|e| e == "zip") {
            b.add_zip(&g.name, &what, &bytes)?;
        } else {
            b.add(&g.name, &what, &bytes)?;
        }
    }
    Ok(())
}

pub(super) fn scenario_report(
    plan: &Plan,
    r: &ScenarioResult,
    took: Duration,
    evidence: Option<PathBuf>,
) -> ScenarioReport {
    let verdict = if r.passed {
        Verdict::Passed
    } else if r.cancelled {
        Verdict::Failed { message: "cancelled (Ctrl-C)".into() }
    } else if r.infra {
        let why = r.failure().unwrap_or_else(|| "failed".into());
        let why = if why.contains("infrastructure failure") { why } else { format!("infrastructure failure: {why}") };
        Verdict::Failed { message: why }
    } else {
        Verdict::Failed { message: r.failure().unwrap_or_else(|| "failed".into()) }
    };
    let mut s = ScenarioReport::new(&plan.scenario, verdict, took);
    s.phases = r
        .phases
        .iter()
        .filter(|p| !matches!(p.status, Status::Skipped(_)))
        .map(|p| Phase {
            name: p.name.clone(),
            duration: Duration::from_secs_f64(p.seconds),
            ok: p.status == Status::Passed,
        })
        .collect();
    s.evidence = evidence;
    s.telepresence = Some(plan.versions.telepresence.clone());
    s.provider = Some(plan.provider.name().to_string());
    s.checks_asserted = r.asserted;
    s.denials = r.denials.iter().map(|d| report::DenialText { phase: d.phase.clone(), text: d.text.clone() }).collect();
    s.pod_checks = r.checks.clone();
    // Steps the provider cannot run (their phase ends with a `skip`, after what could run passed),
    // never those skipped after a failure.
    s.skipped_steps = r
        .phases
        .iter()
        .filter_map(|p| match &p.status {
            Status::Skipped(reason)
                if plan.phases.iter().any(|ph| {
                    Some(ph.kind) == p.kind && matches!(ph.actions.last(), Some(crate::plan::Action::Skip { .. }))
                }) =>
            {
                Some(report::SkippedStep { name: p.name.clone(), reason: reason.clone() })
            }
            _ => None,
        })
        .collect();
    if !r.drift.is_empty() || !r.drift_notes.is_empty() {
        s.model_drift = Some(report::ModelDrift {
            compared: r.drift.len(),
            agreed: r.drift.iter().filter(|d| d.agrees()).count(),
            unexplained: r.drift.iter().flat_map(crate::run::drift::DriftRecord::lines).collect(),
            explained: r
                .drift
                .iter()
                .flat_map(|d| {
                    d.explained.iter().map(move |e| format!("{}: {} ({})", d.workload, e.difference, e.reason))
                })
                .collect(),
            notes: r.drift_notes.clone(),
        });
    }
    s.teardown_failures = r
        .teardown
        .iter()
        .filter_map(|t| match &t.status {
            Status::Failed(why) => Some(report::SkippedStep { name: t.label.clone(), reason: why.clone() }),
            _ => None,
        })
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::executor::TeardownResult;

    #[test]
    fn a_failed_teardown_entry_is_recorded_and_the_verdict_stays() {
        let loaded = crate::scenario::load(std::path::Path::new("scenarios/documented-recipe.yaml")).unwrap();
        let plan = crate::plan::build(&loaded, &crate::plan::Options::default());
        let r = ScenarioResult {
            scenario: plan.scenario.clone(),
            passed: true,
            cancelled: false,
            phases: Vec::new(),
            checks: Vec::new(),
            drift: Vec::new(),
            drift_notes: Vec::new(),
            infra: false,
            asserted: 3,
            teardown: vec![
                TeardownResult { label: "stop the Telepresence daemons".into(), status: Status::Passed },
                TeardownResult {
                    label: "uninstall the traffic-manager".into(),
                    status: Status::Failed("release: not found".into()),
                },
            ],
            evidence: Vec::new(),
            judged_pod: None,
            denials: Vec::new(),
        };
        let s = scenario_report(&plan, &r, Duration::from_secs(1), None);
        assert_eq!(s.verdict, Verdict::Passed);
        assert_eq!(
            s.teardown_failures,
            [report::SkippedStep { name: "uninstall the traffic-manager".into(), reason: "release: not found".into() }]
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["teardownFailures"][0]["reason"], "release: not found", "{json}");
    }
}
