//! `kyvtel verify SCENARIO --pod FILE|-`: judges a pod from `kubectl get pod(s) -o yaml|json`
//! against a scenario's pod expectations, with the engine the live run uses. `--denial FILE|-`
//! judges a denial text (an event, a condition, a command's output) against the step that expects one.

use std::path::PathBuf;

use serde_json::Value;

use super::Output;
use crate::outcome::check::{Check, Verdict};
use crate::outcome::pod::verify_pod;
use crate::outcome::pods;
use crate::{Error, Exit, Result, yaml};

/// Arguments of `kyvtel verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario whose expectations are judged.
    pub scenario: PathBuf,
    /// Where the scenario's files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
    /// A Pod, List or PodList in YAML or JSON; `-` reads standard input.
    #[arg(long, required_unless_present = "denial", conflicts_with = "denial")]
    pub pod: Option<PathBuf>,
    /// A denial text (kubectl or helm output, a FailedCreate event, a ReplicaFailure condition, an API
    /// error), judged against the scenario's step that expects a denial; `-` reads standard input.
    #[arg(long)]
    pub denial: Option<PathBuf>,
    /// With `--denial`: the step (its kebab-case name, e.g. `install-telepresence`) whose expected
    /// denial is judged, when several steps expect one.
    #[arg(long, requires = "denial")]
    pub step: Option<String>,
    /// Judge as if the scenario ran with this Telepresence version (e.g. the version of the cluster
    /// the pod or denial comes from); `when:` conditions follow it. Must be a pinned version.
    #[arg(long)]
    pub telepresence: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel verify`: exit 0 when every check holds, 1 when one fails, 2 for bad input.
pub fn run(args: Args) -> Result<Exit> {
    let mut loaded = crate::scenario::load_confined(&args.scenario, &args.root.confinement())?;
    if let Some(v) = &args.telepresence {
        let pins = crate::scenario::pins::Pins::builtin();
        if pins.telepresence.release(v).is_none() {
            return Err(Error::Usage(format!(
                "--telepresence {v}: unknown version; known: {}",
                pins.telepresence.known()
            )));
        }
        loaded.versions.telepresence = v.clone();
    }
    let Some(pod_arg) = &args.pod else {
        let denial = args.denial.as_deref().ok_or_else(|| Error::Usage("give --pod or --denial".into()))?;
        return verify_denial(&loaded, denial, args.step.as_deref(), args.output);
    };
    let (file, src) = crate::input::read_arg(pod_arg)?;
    let docs = yaml::documents(&file, &src)?;
    if docs.is_empty() {
        return Err(Error::input(&file, None, "expected a Pod, List or PodList; the input is empty"));
    }
    let values: Vec<Value> = docs.iter().map(|d| d.value.clone()).collect();
    let found = pods::collect(&values).map_err(|e| {
        let location = docs[e.document].index.value(&e.pointer).or_else(|| docs[e.document].index.nearest(&e.pointer));
        Error::input(&file, location, e.message)
    })?;
    let selector = loaded.workload_selector();
    // A List is filtered by the workload selector; a bare Pod is judged as given, with a note when
    // it does not match.
    let chosen: Vec<&Value> = found
        .iter()
        .filter(|f| f.pointer.is_empty() || pods::matches_selector(f.pod, &selector))
        .map(|f| f.pod)
        .collect();
    for pod in chosen.iter().filter(|p| !pods::matches_selector(p, &selector)) {
        crate::console_eprintln!(
            "note: {} does not match the workload selector of scenario `{}`",
            pod_label(pod),
            loaded.name()
        );
    }
    if chosen.is_empty() {
        let sel = selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("?"))).collect::<Vec<_>>();
        let message = if found.is_empty() {
            "expected a Pod, List or PodList with at least one pod; found no pod".to_string()
        } else {
            format!(
                "no pod matches the workload selector {} of scenario `{}` ({} in the input)",
                sel.join(","),
                loaded.name(),
                if found.len() == 1 { "1 pod".to_string() } else { format!("{} pods", found.len()) }
            )
        };
        return Err(Error::input(&file, None, message));
    }

    let expectations = &loaded.scenario.spec.expect.pod;
    let v = &loaded.versions;
    // A step that expects a failure after admission: the pod's status must show it.
    let after = loaded.scenario.spec.steps.iter().find_map(|s| match s.outcome_for(v) {
        Some(crate::scenario::expect::StepOutcome::FailsAfterAdmission(a)) => Some(a),
        _ => None,
    });
    // A pod that never ran (no container status: admitted where no kubelet runs, e.g. the local
    // provider) cannot show a failure after admission: only its admission is judged, and said so.
    let ran = |p: &&Value| {
        ["containerStatuses", "initContainerStatuses"]
            .iter()
            .any(|k| p["status"][k].as_array().is_some_and(|a| !a.is_empty()))
    };
    let after = after.filter(|a| {
        let any_ran = chosen.iter().any(ran);
        if !any_ran && args.output == Output::Text {
            println!(
                "note: the pod never ran (no container status): the expected failure after admission ({} {}) cannot \
                 be shown from it; its admission is verified instead",
                a.container, a.reason
            );
        }
        any_ran
    });
    if let Some(a) = after {
        let results: Vec<_> = chosen.iter().map(|p| crate::outcome::after_admission::judge(p, &[], &a)).collect();
        let passed = results.iter().any(Result::is_ok);
        for r in &results {
            match (r, args.output) {
                (Ok(e), Output::Text) => println!("failure after admission shown: {e}"),
                (Err(e), Output::Text) => println!("not the expected failure ({} {}): {e}", a.container, a.reason),
                _ => {}
            }
        }
        if args.output == Output::Json {
            let lines: Vec<String> = results.iter().map(|r| r.clone().unwrap_or_else(|e| e)).collect();
            println!("{}", serde_json::json!({"failsAfterAdmission": a, "passed": passed, "pods": lines}));
        }
        return Ok(if passed { Exit::Success } else { Exit::Failed });
    }
    if !expectations.iter().any(|g| g.when.as_ref().is_none_or(|w| v.satisfies(w))) {
        return Err(Error::Usage(format!(
            "scenario `{}` has no pod expectation that applies to Telepresence {}, Kyverno {}, Kubernetes {}",
            loaded.name(),
            v.telepresence,
            v.kyverno,
            v.node_image.kubernetes
        )));
    }
    let several = chosen.len() > 1;
    let mut checks: Vec<Check> = Vec::new();
    for pod in &chosen {
        let verdict = verify_pod(pod, expectations, v);
        checks.extend(verdict.checks.into_iter().map(|mut c| {
            if several {
                c.pod = Some(pods::name(pod).to_string());
            }
            c
        }));
    }
    let verdict = Verdict::from_checks(checks);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&verdict).unwrap_or_default()),
        Output::Text => {
            let names: Vec<String> = chosen.iter().map(|p| pod_label(p)).collect();
            println!(
                "{} against scenario {} (Telepresence {}, Kyverno {}, Kubernetes {})\n",
                names.join(", "),
                loaded.name(),
                v.telepresence,
                v.kyverno,
                v.node_image.kubernetes
            );
            print!("{}", table(&verdict, several));
        }
    }
    Ok(if verdict.passed { Exit::Success } else { Exit::Failed })
}

/// Judges the denial text in `file` against the expected denial of the scenario's step (`step`, or
/// the only step that expects one for the scenario's versions).
fn verify_denial(
    loaded: &crate::scenario::Loaded,
    file: &std::path::Path,
    step: Option<&str>,
    output: Output,
) -> Result<Exit> {
    let v = &loaded.versions;
    let expecting: Vec<_> = loaded
        .scenario
        .spec
        .steps
        .iter()
        .filter_map(|s| s.outcome_for(v).and_then(|o| o.denial()).map(|d| (s.name(), d)))
        .collect();
    let names: Vec<&str> = expecting.iter().map(|(n, _)| *n).collect();
    let chosen = match step {
        Some(want) => expecting.iter().find(|(n, _)| *n == want),
        None if expecting.len() == 1 => expecting.first(),
        None => None,
    };
    let Some((name, expected)) = chosen else {
        let versions =
            format!("Telepresence {}, Kyverno {}, Kubernetes {}", v.telepresence, v.kyverno, v.node_image.kubernetes);
        return Err(Error::Usage(match (step, names.is_empty()) {
            (_, true) => format!("scenario `{}` expects no denial for {versions}", loaded.name()),
            (Some(want), false) => {
                format!("step `{want}` expects no denial for {versions}; these do: {}", names.join(", "))
            }
            (None, false) => format!("several steps expect a denial ({}): choose one with --step", names.join(", ")),
        }));
    };
    let (_, text) = crate::input::read_arg(file)?;
    let result = crate::outcome::denial::prove::prove_expected(&[text], expected);
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "step": name,
                "expected": expected,
                "passed": result.is_ok(),
                "mismatch": result.as_ref().err(),
            }))
            .unwrap_or_default()
        ),
        Output::Text => match &result {
            Ok(()) => println!("the denial matches step {name} of scenario {}", loaded.name()),
            Err(why) => println!("the denial does not match step {name} of scenario {}: {why}", loaded.name()),
        },
    }
    Ok(if result.is_ok() { Exit::Success } else { Exit::Failed })
}

fn pod_label(pod: &Value) -> String {
    match pod["metadata"]["namespace"].as_str() {
        Some(ns) => format!("pod {ns}/{}", pods::name(pod)),
        None => format!("pod {}", pods::name(pod)),
    }
}

/// A value as people read it: compact JSON, `-` for absent.
fn show(v: &Value) -> String {
    if v.is_null() { "-".to_string() } else { v.to_string() }
}

/// The human table: one row per check, notes under their row, and a closing line.
fn table(verdict: &Verdict, with_pod: bool) -> String {
    let header = ["", "TARGET", "FIELD", "EXPECTED", "ACTUAL"];
    let rows: Vec<[String; 5]> = verdict
        .checks
        .iter()
        .map(|c| {
            let target = match (&c.pod, with_pod) {
                (Some(p), true) => format!("{p}: {}", c.target),
                _ => c.target.clone(),
            };
            [if c.ok { "ok" } else { "FAIL" }.to_string(), target, c.field.clone(), show(&c.expected), show(&c.actual)]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for (row, check) in rows.iter().zip(&verdict.checks) {
        out += &line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        if let Some(note) = &check.note {
            out += &format!("{:w$}  -> {note}\n", "", w = width[0]);
        }
    }
    let failed = verdict.failures().count();
    let total = verdict.checks.len();
    out += &if failed == 0 {
        format!("\nPASSED: all {total} checks hold\n")
    } else {
        format!("\nFAILED: {failed} of {total} checks do not hold\n")
    };
    out
}
