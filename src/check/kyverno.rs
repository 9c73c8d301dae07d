//! The real Kyverno engine, through the Kyverno CLI: finding the binary, running `kyverno apply`
//! through the [`Runner`] seam, and reading its policy report.
//!
//! The CLI is asked for a policy report in JSON (`--policy-report --output-format json`): one
//! `openreports.io/v1alpha1` `ClusterReport` whose `results[]` carry `policy`, `rule`, `result`
//! (`pass`, `fail`, `warn`, `error`, `skip`), `resources[]` and `message`.
// upstream: kyverno/kyverno cmd/cli/kubectl-kyverno/commands/apply/command.go@v1.19.0 (flags
// `--policy-report`, `--output-format`, `--remove-color`; `exit()` returns an error, hence status 1,
// when any rule fails or errors); .../commands/apply/print.go@v1.19.0 (printReports: the merged
// ClusterReport, marshalled as JSON; skipped or invalid policies are listed before it as text);
// .../kubectl-kyverno/main.go@v1.19.0 (any error → status 1); openreports/reports-api
// apis/openreports.io/v1alpha1/report_types.go@v0.2.1 (ReportResult JSON field names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rejection::{self, PolicyProblem};
use crate::outcome::expect::Violation;
use crate::scenario::policy;
use crate::tools::{CommandLine, Output, Runner, Tool};
use crate::{Error, Result};

/// The environment variable naming the Kyverno CLI binary.
pub const ENV_BIN: &str = "KYVERNO_BIN";
/// Where `make kyverno-cli` (`kyvtel tools build`) builds the CLI, relative to the repository root.
pub const TOOLS_BIN: &str = ".tools/local/kyverno-cli";
/// Where `kyvtel tools install` downloads the released CLI.
pub const DOWNLOADED_BIN: &str = ".tools/bin/kyverno";
/// How long one `kyverno apply` may take.
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Finds the Kyverno CLI: `$KYVERNO_BIN`, else the one built from Go modules
/// (`.tools/local/kyverno-cli`), else the downloaded one (`.tools/bin/kyverno`), else `kyverno` on `PATH`.
pub fn locate() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(ENV_BIN).filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::Prerequisite(format!("{ENV_BIN} names {}, which is not a file", bin.display())))
        };
    }
    for local in [TOOLS_BIN, DOWNLOADED_BIN].map(PathBuf::from) {
        if local.is_file() {
            return Ok(local);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(Tool::Kyverno.program()))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Prerequisite(format!(
                "the Kyverno CLI was not found (${ENV_BIN}, {TOOLS_BIN}, {DOWNLOADED_BIN}, `kyverno` on PATH); build it with `make kyverno-cli`"
            ))
        })
}

/// Which object a result is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `Pod`, `Deployment`, ...
    pub kind: String,
    /// The namespace (the CLI puts a namespaced object without one into `default`).
    #[serde(default)]
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// The reference of a rendered object.
    #[must_use]
    pub fn of(object: &Value) -> ObjectRef {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ObjectRef {
            kind: s(&object["kind"]),
            namespace: s(&object["metadata"]["namespace"]),
            name: s(&object["metadata"]["name"]),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the engine decided for one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Judgement {
    /// Failed rules whose action is Enforce: any one denies admission.
    pub denied: Vec<Violation>,
    /// Failed rules whose action is Audit: admitted with a warning.
    pub warned: Vec<Violation>,
    /// How many rules passed.
    pub passed: usize,
    /// Whether any rule applied to the object at all (passed, failed, warned or skipped); an
    /// object no rule applies to is admitted because no policy applies.
    pub applied: bool,
}

impl Judgement {
    /// Whether the object would be admitted.
    #[must_use]
    pub fn admitted(&self) -> bool {
        self.denied.is_empty()
    }
}

/// One `results[]` entry of the policy report.
#[derive(Debug, Deserialize)]
struct ReportResult {
    policy: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    resources: Vec<ObjectRef>,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    results: Vec<ReportResult>,
}

/// What `kyverno apply` decided: a judgement per object, unless the engine refused a policy or a
/// rule errored; then `problems` says which (bad input about that policy, not a verdict).
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// One judgement per resource, also when no rule matched it.
    pub judgements: BTreeMap<ObjectRef, Judgement>,
    /// Policies the engine would not evaluate, and rules that errored.
    pub problems: Vec<PolicyProblem>,
}

/// Evaluates `resources` against `policies` (exclusions already merged) with `kyverno apply`.
///
/// Each policy is written into `workdir` (which must exist) as its own file, so that a file the
/// CLI skips names its policy; the resources go into one multi-document file.
pub fn evaluate(runner: &dyn Runner, workdir: &Path, policies: &[Value], resources: &[Value]) -> Result<Evaluation> {
    evaluate_in(runner, workdir, policies, resources, &[], &[])
}

/// [`evaluate`] with the `Namespace` objects the resources live in: their labels are given to the
/// CLI (`--values-file`, `namespaceSelector:`), so that rules with a `namespaceSelector` see them.
// upstream: kyverno/kyverno cmd/cli/kubectl-kyverno/apis/v1alpha1/values_spec.go@v1.19.1
// (`namespaceSelector: [{name, labels}]`), commands/apply/command.go@v1.19.1 (`--values-file`).
pub fn evaluate_in(
    runner: &dyn Runner,
    workdir: &Path,
    policies: &[Value],
    resources: &[Value],
    namespaces: &[Value],
    exceptions: &[Value],
) -> Result<Evaluation> {
    let selectors: Vec<Value> = namespaces
        .iter()
        .filter(|n| n["kind"] == "Namespace")
        .filter_map(|n| {
            let name = n["metadata"]["name"].as_str()?;
            Some(serde_json::json!({"name": name, "labels": n["metadata"]["labels"].as_object().cloned().unwrap_or_default()}))
        })
        .collect();
    let values_file = if selectors.is_empty() {
        None
    } else {
        let file = workdir.join("values.yaml");
        let values = serde_json::json!({"apiVersion": "cli.kyverno.io/v1alpha1", "kind": "Value", "namespaceSelector": selectors});
        write_documents(&file, &[values])?;
        Some(file)
    };
    let mut policy_files = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        let file = workdir.join(format!("policy-{i}.yaml"));
        write_documents(&file, std::slice::from_ref(p))?;
        policy_files.push(file);
    }
    let resource_file = workdir.join("resources.yaml");
    write_documents(&resource_file, resources)?;
    let mut cmd = apply_command(&policy_files, &resource_file, values_file.as_deref());
    if !exceptions.is_empty() {
        // upstream: kyverno/kyverno cmd/cli/kubectl-kyverno/commands/apply/command.go@v1.19.1
        // (`--exception`, "Policy exception to be considered when evaluating policies against resources").
        let file = workdir.join("exceptions.yaml");
        write_documents(&file, exceptions)?;
        cmd = cmd.args(["--exception".to_string(), file.display().to_string()]);
    }
    let out = runner.run(&cmd, APPLY_TIMEOUT).map_err(|e| tool_error(e.to_string()))?;
    let mut problems: Vec<PolicyProblem> = rejection::unloadable(&out.stderr)
        .into_iter()
        .map(|(file, message)| {
            // The CLI logs each path as it was given; match it against the files written above.
            let index = policy_files.iter().position(|p| Path::new(&file) == p.as_path() || p.ends_with(&file));
            let policy = index.and_then(|i| policies.get(i)).and_then(policy::name).unwrap_or("?").to_string();
            PolicyProblem { policy, pointer: None, message }
        })
        .collect();
    problems.extend(rejection::skipped(&out.stdout));
    if !problems.is_empty() {
        return Ok(Evaluation { judgements: BTreeMap::new(), problems });
    }
    let report = parse_report(&out)?;
    let mut judgements: BTreeMap<ObjectRef, Judgement> =
        resources.iter().map(|r| (ObjectRef::of(r), Judgement::default())).collect();
    for r in report.results {
        let violation = || Violation {
            policy: r.policy.clone(),
            rule: r.rule.clone(),
            paths: failed_paths(&r.message),
            message: r.message.clone(),
        };
        for object in &r.resources {
            let Some(j) = judgements.get_mut(object) else {
                continue;
            };
            j.applied = true;
            match r.result.as_str() {
                "pass" => j.passed += 1,
                "fail" if enforced(policies, &r.policy, &r.rule) => j.denied.push(violation()),
                "fail" | "warn" => j.warned.push(violation()),
                "error" => problems.push(rule_error(policies, &r, object)),
                _ => {}
            }
        }
    }
    Ok(Evaluation { judgements, problems })
}

/// A rule that errored on `object`, located at the rule (its `autogen-` prefix removed).
fn rule_error(policies: &[Value], r: &ReportResult, object: &ObjectRef) -> PolicyProblem {
    let base = base_rule(&r.rule);
    let index = policies
        .iter()
        .find(|p| policy::name(p) == Some(r.policy.as_str()))
        .and_then(|p| p["spec"]["rules"].as_array()?.iter().position(|x| x["name"] == base));
    PolicyProblem {
        policy: r.policy.clone(),
        pointer: index.map(|i| format!("/spec/rules/{i}")),
        message: format!("rule `{base}` of policy `{}` errors on {object}: {}", r.policy, r.message),
    }
}

/// The `kyverno apply` command line for the policy files and one resource file; `-v 3` makes the
/// CLI log the policy files it skips.
pub fn apply_command(policy_files: &[PathBuf], resource_file: &Path, values_file: Option<&Path>) -> CommandLine {
    let mut args = vec!["apply".to_string()];
    args.extend(policy_files.iter().map(|p| p.display().to_string()));
    if let Some(v) = values_file {
        args.extend(["--values-file".to_string(), v.display().to_string()]);
    }
    CommandLine::new(Tool::Kyverno).args(args).args([
        "-v".to_string(),
        "3".to_string(),
        "--resource".to_string(),
        resource_file.display().to_string(),
        "--policy-report".to_string(),
        "--output-format".to_string(),
        "json".to_string(),
        "--remove-color".to_string(),
    ])
}

fn tool_error(message: String) -> Error {
    Error::Tool { tool: "kyverno".into(), phase: "check".into(), message }
}

fn write_documents(path: &Path, docs: &[Value]) -> Result<()> {
    let mut text = String::new();
    for d in docs {
        // JSON is YAML: one document per object, so no YAML serialiser is needed.
        text.push_str("---\n");
        text.push_str(&serde_json::to_string_pretty(d).map_err(|e| Error::infra("serialising for kyverno", e))?);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::infra(format!("writing {}", path.display()), e))
}

/// Reads the report out of the CLI's output. Exit status 1 with a report means "some rule failed";
/// status 0 without one means no rule applied to anything (the CLI prints no empty report);
/// status 1 without one means the CLI itself failed. Skipped policies are read before this.
fn parse_report(out: &Output) -> Result<Report> {
    let stdout = out.stdout.as_str();
    let start = stdout.find('{');
    if start.is_none() && out.status == Some(0) {
        return Ok(Report { results: Vec::new() });
    }
    let report = start.and_then(|i| serde_json::Deserializer::from_str(&stdout[i..]).into_iter::<Report>().next());
    match report {
        Some(Ok(r)) if matches!(out.status, Some(0 | 1)) => Ok(r),
        _ => {
            let tail = |s: &str| {
                s.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ")
            };
            Err(tool_error(format!(
                "no policy report (the CLI exited {}); stderr: {}; stdout: {}",
                out.ended(),
                tail(&out.stderr),
                tail(stdout)
            )))
        }
    }
}

/// Every path in a Kyverno failure message: `... failed at path /spec/containers/1/securityContext/`.
/// anyPattern failures name several (`rule X[0] failed at path ... rule X[1] failed at path ...`).
#[must_use]
pub fn failed_paths(message: &str) -> Vec<String> {
    const MARK: &str = "failed at path ";
    message
        .match_indices(MARK)
        .filter_map(|(i, _)| message[i + MARK.len()..].split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The rule a reported rule name comes from: `autogen-<rule>` and `autogen-cronjob-<rule>` are the
/// rules Kyverno generates for controllers.
fn base_rule(rule: &str) -> &str {
    rule.strip_prefix("autogen-cronjob-").or_else(|| rule.strip_prefix("autogen-")).unwrap_or(rule)
}

/// Whether a failure of `rule` (possibly `autogen-<rule>` or `autogen-cronjob-<rule>`) denies
/// admission: the rule's `validate.failureAction`, else the policy's `validationFailureAction`,
/// else Audit (facts.md §3).
#[must_use]
pub fn enforced(policies: &[Value], policy_name: &str, rule: &str) -> bool {
    let Some(p) = policies.iter().find(|p| policy::name(p) == Some(policy_name)) else {
        return false;
    };
    let base = base_rule(rule);
    let rule_action = p["spec"]["rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == base || r["name"] == rule))
        .and_then(|r| r["validate"]["failureAction"].as_str());
    let action = rule_action.or_else(|| p["spec"]["validationFailureAction"].as_str()).unwrap_or("Audit");
    action.eq_ignore_ascii_case("enforce")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::tools::RunError;

    #[test]
    fn paths_are_read_from_messages() {
        let m = "validation error: x. rule r failed at path /spec/containers/1/securityContext/";
        assert_eq!(failed_paths(m), ["/spec/containers/1/securityContext/"]);
        let m = "rule r[0] failed at path /a/ rule r[1] failed at path /b/";
        assert_eq!(failed_paths(m), ["/a/", "/b/"]);
        assert!(failed_paths("validation rule 'r' passed.").is_empty());
    }

    #[test]
    fn action_comes_from_rule_then_policy_then_audit() {
        let p = json!({"metadata": {"name": "p"}, "spec": {"validationFailureAction": "Enforce", "rules": [
            {"name": "a"}, {"name": "b", "validate": {"failureAction": "Audit"}}]}});
        let q = json!({"metadata": {"name": "q"}, "spec": {"rules": [{"name": "c"}]}});
        let ps = [p, q];
        assert!(enforced(&ps, "p", "a"));
        assert!(enforced(&ps, "p", "autogen-a"));
        assert!(!enforced(&ps, "p", "b"));
        assert!(!enforced(&ps, "q", "c"));
        assert!(!enforced(&ps, "missing", "a"));
    }

    /// Answers every command with one canned output, and records the command lines.
    struct Canned(Output, std::sync::Mutex<Vec<CommandLine>>);

    impl Runner for Canned {
        fn run(&self, cmd: &CommandLine, _: Duration) -> Result<Output, RunError> {
            self.1.lock().expect("lock").push(cmd.clone());
            Ok(self.0.clone())
        }
    }

    #[test]
    fn report_results_map_to_denials_warnings_and_passes() {
        let policies = [
            json!({"metadata": {"name": "strict"}, "spec": {"validationFailureAction": "Enforce", "rules": [{"name": "r"}]}}),
            json!({"metadata": {"name": "lenient"}, "spec": {"rules": [{"name": "a"}]}}),
        ];
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}});
        let other = json!({"kind": "Pod", "metadata": {"name": "q", "namespace": "ns"}});
        let res = |policy: &str, rule: &str, result: &str, name: &str, msg: &str| {
            json!({"policy": policy, "rule": rule, "result": result, "message": msg,
                   "resources": [{"kind": "Pod", "namespace": "ns", "name": name, "apiVersion": "v1"}]})
        };
        let report = json!({"kind": "ClusterReport", "results": [
            res("strict", "r", "fail", "p", "validation error: m. rule r failed at path /spec/containers/1/image/"),
            res("lenient", "a", "fail", "p", "validation error: m. rule a failed at path /spec/x/"),
            res("strict", "r", "pass", "q", "passed"),
            res("strict", "r", "skip", "q", "skipped"),
        ]});
        let out = Output { status: Some(1), stdout: report.to_string(), stderr: String::new() };
        let runner = Canned(out, Default::default());
        let dir = std::env::temp_dir().join(format!("kyvtel-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let got = evaluate(&runner, &dir, &policies, &[pod.clone(), other.clone()]).expect("evaluate").judgements;
        let written = std::fs::read_to_string(dir.join("resources.yaml")).expect("resources written");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(written.starts_with("---\n{") && written.contains("\"name\": \"q\""), "{written}");
        let p = &got[&ObjectRef::of(&pod)];
        assert!(!p.admitted());
        assert_eq!(p.denied.len(), 1);
        assert_eq!(p.denied[0].paths, ["/spec/containers/1/image/"]);
        assert_eq!(p.warned.len(), 1, "an Audit failure only warns");
        let q = &got[&ObjectRef::of(&other)];
        assert!(q.admitted());
        assert_eq!(q.passed, 1);
        let cmd = &runner.1.lock().expect("lock")[0];
        assert_eq!(cmd.args[0], "apply");
        assert!(cmd.args.windows(2).any(|w| w == ["--output-format", "json"]), "{:?}", cmd.args);
        assert!(cmd.args.contains(&"--policy-report".to_string()));
        assert!(cmd.args[1].ends_with("policy-0.yaml") && cmd.args[2].ends_with("policy-1.yaml"), "{:?}", cmd.args);
        assert!(p.applied && q.applied);
    }

    #[test]
    fn a_policy_file_the_cli_skips_names_its_policy() {
        let dir = std::env::temp_dir().join(format!("kyvtel-unit-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        // The CLI logs the path as it was given: the full path of the policy's own file.
        let stderr = format!(
            "T -2 command.go:1188 > skipping invalid YAML file error=\"failed to load file: bad\" logger=kubectl-kyverno path={} v=3",
            dir.join("policy-1.yaml").display()
        );
        let runner = Canned(Output { status: Some(0), stdout: String::new(), stderr }, Default::default());
        let policies = [json!({"metadata": {"name": "first"}}), json!({"metadata": {"name": "second"}})];
        let e = evaluate(&runner, &dir, &policies, &[]).expect("evaluated");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].policy, "second");
    }

    #[test]
    fn rule_errors_are_policy_problems_at_the_rule() {
        let report = json!({"results": [{"policy": "p", "rule": "r", "result": "error", "message": "boom",
            "resources": [{"kind": "Pod", "namespace": "ns", "name": "p"}]}]});
        let runner =
            Canned(Output { status: Some(1), stdout: report.to_string(), stderr: String::new() }, Default::default());
        let dir = std::env::temp_dir().join(format!("kyvtel-unit-err-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}});
        let policy = json!({"metadata": {"name": "p"}, "spec": {"rules": [{"name": "q"}, {"name": "r"}]}});
        let e = evaluate(&runner, &dir, &[policy], &[pod]).expect("evaluated");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].pointer.as_deref(), Some("/spec/rules/1"));
        assert_eq!(e.problems[0].message, "rule `r` of policy `p` errors on Pod ns/p: boom");
    }

    #[test]
    fn a_cli_failure_without_report_is_a_tool_error_and_silence_is_no_result() {
        let out = Output { status: Some(1), stdout: String::new(), stderr: "Error: failed to load policies".into() };
        let e = parse_report(&out).expect_err("no report").to_string();
        assert!(e.contains("failed to load policies") && e.contains("exited with status 1"), "{e}");
        let out = Output { status: Some(0), stdout: "Warning: deprecated\n".into(), stderr: String::new() };
        assert!(parse_report(&out).expect("no rule applied").results.is_empty());
    }
}
