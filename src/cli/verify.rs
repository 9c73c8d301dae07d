//! `kyvtel verify SCENARIO --pod FILE|-`: judges a pod from `kubectl get pod(s) -o yaml|json`
//! against a scenario's pod expectations, with the engine the live run uses.

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
    #[arg(long)]
    pub pod: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel verify`: exit 0 when every check holds, 1 when one fails, 2 for bad input.
pub fn run(args: Args) -> Result<Exit> {
    let loaded = crate::scenario::load_confined(&args.scenario, &args.root.confinement())?;
    let (file, src) = crate::input::read_arg(&args.pod)?;
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
