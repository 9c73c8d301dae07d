//! `kyvtel explain [--pod FILE] [--output json] [FILE|-]`: reads a Kyverno denial as kubectl,
//! events, conditions or API Status messages print it, and says which policy, rule, path and
//! container denied what, with hints for known Telepresence causes.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::Output;
use crate::error::Location;
use crate::input::read_arg as read_input;
use crate::outcome::denial::{self, Denial, Parsed};
use crate::outcome::hint::{self, Hint, container_path};
use crate::outcome::pods;
use crate::{Error, Exit, Result, yaml};

/// Arguments of `kyvtel explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The denial text; `-` or nothing reads standard input.
    pub input: Option<PathBuf>,
    /// The pod the denial is about, to name containers by index.
    #[arg(long)]
    pub pod: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel explain`: exit 0 when the text is a Kyverno denial, 2 when it is not.
pub fn run(args: Args) -> Result<Exit> {
    let input = args.input.unwrap_or_else(|| PathBuf::from("-"));
    let (file, text) = read_input(&input)?;
    let pod = match &args.pod {
        Some(p) => Some(read_pod(p)?),
        None => None,
    };
    let denial = match denial::parse(&text) {
        Ok(Parsed::Kyverno(d) | Parsed::PodSecurity(d)) => d,
        Ok(Parsed::OtherWebhook(o)) => {
            let mut message = format!(
                "denied by another webhook `{}`, not by Kyverno (expected `validate.kyverno.svc-fail` or \
                 `validate.kyverno.svc-ignore`): {}",
                o.webhook,
                o.reason.lines().next().unwrap_or_default()
            );
            if o.webhook.ends_with(".getambassador.io") {
                message.push_str(
                    "; this is Telepresence's agent injector, which can deny pods before 2.29 when it fails \
                     (e.g. `agent-config is not yet generated`)",
                );
            }
            return Err(Error::input(&file, None, visible(&message)));
        }
        Err(e) => {
            let location = e.location().map(|(line, column)| Location { line, column });
            return Err(Error::input(&file, location, visible(&e.to_string())));
        }
    };
    let pod = pod.as_ref().map(|p| select_pod(p, &denial)).transpose()?;
    let hints = hint::hints(&denial, pod);
    match args.output {
        Output::Json => {
            let json = serde_json::to_string_pretty(&to_json(&denial, pod, &hints)).unwrap_or_default();
            println!("{}", visible_json(&json));
        }
        Output::Text => print!("{}", visible(&human(&denial, pod, &hints))),
    }
    Ok(Exit::Success)
}

/// The `--pod` input: its documents, checked to hold a Pod, a List of pods or a workload.
struct PodInput {
    file: PathBuf,
    objects: Vec<Value>,
}

fn read_pod(path: &Path) -> Result<PodInput> {
    let (file, src) = read_input(path)?;
    let docs = yaml::documents(&file, &src)?;
    let Some(first) = docs.first() else {
        return Err(Error::input(&file, None, "expected a Pod (or a workload with a pod template); the file is empty"));
    };
    let is_pod_input = matches!(first.value["kind"].as_str(), Some("Pod" | "List" | "PodList"));
    if is_pod_input {
        let values: Vec<Value> = docs.iter().map(|d| d.value.clone()).collect();
        let objects: Vec<Value> = pods::collect(&values)
            .map_err(|e| {
                let idx = &docs[e.document].index;
                Error::input(&file, idx.value(&e.pointer).or_else(|| idx.nearest(&e.pointer)), e.message)
            })?
            .into_iter()
            .map(|f| f.pod.clone())
            .collect();
        return Ok(PodInput { file, objects });
    }
    let Some(spec) = hint::pod_spec(&first.value) else {
        let kind = first.value["kind"].as_str().unwrap_or("no kind");
        return Err(Error::input(
            &file,
            first.index.value(""),
            format!("expected a Pod, a List of pods, or a workload with a pod template; found `{kind}`"),
        ));
    };
    for list in ["containers", "initContainers"] {
        let n = spec[list].as_array().map_or(0, Vec::len);
        if n > pods::MAX_CONTAINERS {
            return Err(Error::input(
                &file,
                first.index.value(""),
                format!("{n} {list}: more than the {} kyvtel reads in one pod", pods::MAX_CONTAINERS),
            ));
        }
    }
    Ok(PodInput { file, objects: vec![first.value.clone()] })
}

/// The object the denial is about: the only one, or the pod named in the denial.
fn select_pod<'a>(input: &'a PodInput, denial: &Denial) -> Result<&'a Value> {
    match input.objects.as_slice() {
        [one] => Ok(one),
        many => many.iter().find(|p| pods::name(p) == denial.resource.name).ok_or_else(|| {
            Error::input(
                &input.file,
                None,
                format!(
                    "{} pods in the input and none is named `{}`; pass that one pod",
                    many.len(),
                    denial.resource.name
                ),
            )
        }),
    }
}

/// `s` with every control character other than a line break made visible (`\u{1b}`), so that
/// nothing in a pasted text can move the cursor, retitle the terminal or hide what it says.
fn visible(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            '\t' => " ".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JSON text with the control characters serde leaves raw (DEL, C1) escaped as `\uXXXX`.
fn visible_json(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { format!("\\u{:04x}", c as u32) } else { c.to_string() })
        .collect()
}

fn to_json(denial: &Denial, pod: Option<&Value>, hints: &[Hint]) -> Value {
    let checks = match &denial.source {
        denial::Source::PodSecurity { checks, .. } => checks.as_slice(),
        _ => &[],
    };
    let violations: Vec<Value> = denial
        .violations
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut out = json!(v);
            if let (Some(c), Some(obj)) = (checks.get(i), out.as_object_mut()) {
                obj.insert("containers".into(), json!(c.containers));
                obj.insert("fields".into(), json!(c.fields));
                obj.insert("pod".into(), json!(c.pod));
            }
            if let (Some(pod), Some(obj)) = (pod, out.as_object_mut()) {
                let targets: Vec<Value> =
                    v.paths.iter().map(|p| json!(container_path(p).and_then(|cp| cp.target(pod)))).collect();
                obj.insert("targets".into(), json!(targets));
            }
            out
        })
        .collect();
    json!({
        "source": denial.source,
        "webhook": denial.webhook,
        "resource": denial.resource,
        "violations": violations,
        "hints": hints,
    })
}

fn human(denial: &Denial, pod: Option<&Value>, hints: &[Hint]) -> String {
    let r = &denial.resource;
    let name = if r.name.is_empty() { "(no name yet: generateName)" } else { r.name.as_str() };
    let at = if r.namespace.is_empty() { name.to_string() } else { format!("{}/{name}", r.namespace) };
    let what = if r.kind.is_empty() { "the request".to_string() } else { format!("{} {at}", r.kind) };
    let by = match &denial.source {
        denial::Source::Policy => format!("Kyverno ({})", denial.webhook),
        denial::Source::PodSecurity { level, version, .. } => {
            format!("Pod Security Admission (the API server, not Kyverno; level {level}:{version})")
        }
        denial::Source::GeneratedValidatingAdmissionPolicy { binding } => {
            format!("a ValidatingAdmissionPolicy Kyverno generated (binding {binding}; enforced by the API server)")
        }
        other => format!("Kyverno's {} ({})", other.name(), denial.webhook),
    };
    let mut out = format!("{by} denied {what}\n");
    for v in &denial.violations {
        out += &match (v.policy.is_empty(), v.rule.is_empty()) {
            (true, _) => "\n  the policy was rejected\n".to_string(),
            (false, true) => format!("\n  policy {}\n", v.policy),
            (false, false) => format!("\n  policy {}, rule {}\n", v.policy, v.rule),
        };
        if !v.message.is_empty() {
            out += &format!("    {}\n", v.message);
        }
        for p in &v.paths {
            let target = pod.and_then(|pod| container_path(p).and_then(|cp| cp.target(pod)));
            match target {
                Some(t) => out += &format!("    at {p}  ({t})\n"),
                None => out += &format!("    at {p}\n"),
            }
        }
    }
    let by_index = denial.violations.iter().flat_map(|v| &v.paths).any(|p| container_path(p).is_some());
    if pod.is_none() && by_index {
        out += "\ntip: paths name containers by index; pass --pod to name them\n";
    }
    for h in hints {
        out += &format!("\nhint: {}\n      fix demonstrated by scenario {}", h.text, h.fixed_by);
        if let Some(r) = h.reproduced_by {
            out += &format!("; reproduced by scenario {r}");
        }
        out += "\n";
    }
    out
}
