//! The run report: one [`RunReport`] rendered as JUnit XML, JSON and Markdown, and the closing line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};
use serde::Serialize;

use super::redact::redact;

/// How one scenario ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// Every expectation held.
    Passed,
    /// An expectation failed, or a phase failed or timed out.
    Failed {
        /// Why, in one or a few lines.
        message: String,
    },
    /// Not run, e.g. a missing prerequisite.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// One timed phase of a scenario (e.g. `create-cluster`, `install-kyverno`, `intercept`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// How long it took.
    #[serde(rename = "durationSecs", serialize_with = "secs")]
    pub duration: Duration,
    /// Whether it succeeded.
    pub ok: bool,
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Wall time of the whole scenario.
    #[serde(rename = "durationSecs", serialize_with = "secs")]
    pub duration: Duration,
    /// Per-phase durations, in order.
    pub phases: Vec<Phase>,
    /// The evidence bundle directory, when one was written.
    pub evidence: Option<PathBuf>,
    /// Messages of earlier attempts that failed before this final verdict (retries). A passed
    /// scenario with failed attempts is reported as flaky in JUnit.
    pub failed_attempts: Vec<String>,
    /// The Telepresence version that actually ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telepresence: Option<String>,
    /// The provider it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Checks asserted: pod checks, proven denials, canary denials.
    pub checks_asserted: usize,
    /// The pod checks, each with expected and actual value: what `kyvtel verify` of the judged pod
    /// reports for the same scenario.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pod_checks: Vec<crate::outcome::check::Check>,
    /// The judged pod, redacted (`<scenario>-pod.json` beside this report), for `kyvtel verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PathBuf>,
    /// Steps that could not run on this provider, with the reason (never counted as passed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_steps: Vec<SkippedStep>,
    /// The denials the steps expected, as the evidence showed them (redacted on write): what
    /// `kyvtel verify --denial` judges.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<DenialText>,
    /// Teardown entries that failed (best effort: recorded, never part of the verdict).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub teardown_failures: Vec<SkippedStep>,
    /// The injection model compared with the live pods (the records: `<scenario>-model-drift.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_drift: Option<ModelDrift>,
    /// A failure tolerated by `quarantine.yaml`: its entry (`quarantined until DATE (reason)`).
    /// Counted as quarantined, never as failed or passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

/// A summary of one scenario's model comparisons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDrift {
    /// Workloads compared.
    pub compared: usize,
    /// Workloads whose pod matched the model (explained differences aside).
    pub agreed: usize,
    /// Unexplained differences, `workload: /pointer: model X, live Y`.
    pub unexplained: Vec<String>,
    /// Differences the not-modelled file explains, with its reason.
    pub explained: Vec<String>,
    /// Comparisons that could not be made, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A denial a step expected, as the evidence showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenialText {
    /// The step (phase) that expected it.
    pub phase: String,
    /// The evidence text (an API error, an event, a command's output).
    pub text: String,
}

/// A step (or teardown entry) that was skipped or failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedStep {
    /// The step (phase) name.
    pub name: String,
    /// Why, e.g. `local provider: no kubelet`.
    pub reason: String,
}

impl ScenarioReport {
    /// A scenario report with no phases, evidence or retries yet.
    pub fn new(name: impl Into<String>, verdict: Verdict, duration: Duration) -> Self {
        ScenarioReport {
            name: name.into(),
            verdict,
            duration,
            phases: Vec::new(),
            evidence: None,
            failed_attempts: Vec::new(),
            quarantined: None,
            telepresence: None,
            provider: None,
            checks_asserted: 0,
            pod_checks: Vec::new(),
            pod: None,
            skipped_steps: Vec::new(),
            denials: Vec::new(),
            teardown_failures: Vec::new(),
            model_drift: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The run id (also the directory name under `target/kyvtel/`).
    pub run_id: String,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// Resolved versions: tool or chart → version.
    pub versions: BTreeMap<String, String>,
    /// Digests: artifact → sha256 or image digest.
    pub digests: BTreeMap<String, String>,
    /// The Kubernetes server version, when a cluster was reached.
    pub server_version: Option<String>,
    /// Every scenario, in run order.
    pub scenarios: Vec<ScenarioReport>,
}

/// Verdict counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Passed scenarios.
    pub passed: usize,
    /// Failed scenarios.
    pub failed: usize,
    /// Ignored scenarios.
    pub ignored: usize,
    /// Failed scenarios whose failure `quarantine.yaml` tolerates (in JSON only when some are).
    #[serde(skip_serializing_if = "is_zero")]
    pub quarantined: usize,
}

/// Where [`RunReport::write`] put things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// JUnit XML.
    pub junit: PathBuf,
    /// JSON summary.
    pub json: PathBuf,
    /// Markdown summary.
    pub markdown: PathBuf,
    /// Whether the Markdown was appended to `$GITHUB_STEP_SUMMARY`.
    pub step_summary: bool,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `1m 02s`, `3.4s`.
#[must_use]
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m {:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

impl RunReport {
    /// How many scenarios passed, failed and were ignored.
    #[must_use]
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.scenarios {
            match s.verdict {
                Verdict::Passed => c.passed += 1,
                Verdict::Failed { .. } if s.quarantined.is_some() => c.quarantined += 1,
                Verdict::Failed { .. } => c.failed += 1,
                Verdict::Ignored { .. } => c.ignored += 1,
            }
        }
        c
    }

    /// The closing line: `N passed, N failed, N ignored` (`, N quarantined` when there are some).
    #[must_use]
    pub fn closing_line(&self) -> String {
        let c = self.counts();
        let q = if c.quarantined > 0 { format!(", {} quarantined", c.quarantined) } else { String::new() };
        format!("{} passed, {} failed, {} ignored{q}", c.passed, c.failed, c.ignored)
    }

    /// One test suite named `kyvtel`, one test case per scenario, with every string redacted.
    #[must_use]
    pub fn junit(&self) -> Report {
        let mut suite = TestSuite::new("kyvtel");
        suite.set_time(self.scenarios.iter().map(|s| s.duration).sum());
        suite.add_property(("run-id", redact(&self.run_id).as_str()));
        for (k, v) in &self.versions {
            suite.add_property(quick_junit::Property::new(format!("version.{}", redact(k)), redact(v)));
        }
        if let Some(v) = &self.server_version {
            suite.add_property(("server-version", redact(v).as_str()));
        }
        for s in &self.scenarios {
            let mut status = match &s.verdict {
                Verdict::Passed => TestCaseStatus::success(),
                // Tolerated: skipped, with the entry and the failure.
                Verdict::Failed { message } if s.quarantined.is_some() => {
                    let mut st = TestCaseStatus::skipped();
                    let entry = s.quarantined.as_deref().unwrap_or_default();
                    st.set_message(redact(&format!("{entry}: {}", first_line(message))))
                        .set_description(redact(message));
                    st
                }
                Verdict::Failed { message } => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(redact(first_line(message))).set_description(redact(message));
                    st
                }
                Verdict::Ignored { reason } => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(redact(reason));
                    st
                }
            };
            for attempt in &s.failed_attempts {
                let mut rerun = TestRerun::new(NonSuccessKind::Failure);
                rerun.set_message(redact(first_line(attempt))).set_description(redact(attempt));
                status.add_rerun(rerun);
            }
            let mut case = TestCase::new(redact(&s.name), status);
            case.set_classname("kyvtel").set_time(s.duration);
            let phases: String = s
                .phases
                .iter()
                .map(|p| format!("{} {} {}\n", p.name, human(p.duration), if p.ok { "ok" } else { "FAILED" }))
                .collect();
            if !phases.is_empty() {
                case.set_system_out(redact(&phases));
            }
            if let Some(e) = &s.evidence {
                case.add_property(("evidence", redact(&e.display().to_string()).as_str()));
            }
            if let Some(v) = &s.telepresence {
                case.add_property(("telepresence", redact(v).as_str()));
            }
            if let Some(p) = &s.provider {
                case.add_property(("provider", redact(p).as_str()));
            }
            case.add_property(("checks-asserted", s.checks_asserted.to_string().as_str()));
            suite.add_test_case(case);
            // Each step the provider cannot run is a skipped case of its own, with the reason.
            for step in &s.skipped_steps {
                let mut st = TestCaseStatus::skipped();
                st.set_message(redact(&step.reason));
                let mut c = TestCase::new(redact(&format!("{}::{}", s.name, step.name)), st);
                c.set_classname("kyvtel");
                suite.add_test_case(c);
            }
        }
        let mut report = Report::new("kyvtel");
        report.add_test_suite(suite);
        report
    }

    /// The JUnit XML text. Every string that goes into it is redacted first ([`RunReport::junit`]);
    /// the XML itself is not post-processed, which could break its markup.
    pub fn junit_xml(&self) -> Result<String, quick_junit::SerializeError> {
        self.junit().to_string()
    }

    /// The JSON summary, redacted: this report plus `counts` and `closingLine`.
    #[must_use]
    pub fn json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("counts".into(), serde_json::to_value(self.counts()).unwrap_or_default());
            obj.insert("closingLine".into(), self.closing_line().into());
        }
        redact(&serde_json::to_string_pretty(&value).unwrap_or_default())
    }

    /// The Markdown summary, redacted.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## kyvtel run `{}`\n", self.run_id);
        let _ = writeln!(md, "**{}**\n", self.closing_line());
        md.push_str("| scenario | verdict | duration | detail |\n|---|---|---|---|\n");
        for s in &self.scenarios {
            let (verdict, detail) = match &s.verdict {
                Verdict::Passed if s.failed_attempts.is_empty() => ("✅ passed", String::new()),
                Verdict::Passed => ("⚠️ passed (flaky)", format!("{} failed attempt(s)", s.failed_attempts.len())),
                Verdict::Failed { message } if s.quarantined.is_some() => (
                    "🟡 failed (quarantined)",
                    format!("{}: {}", s.quarantined.as_deref().unwrap_or_default(), first_line(message)),
                ),
                Verdict::Failed { message } => ("❌ failed", first_line(message).to_string()),
                Verdict::Ignored { reason } => ("⏭️ ignored", reason.clone()),
            };
            let detail = match &s.evidence {
                Some(e) => format!("{detail} (evidence: `{}`)", e.display()),
                None => detail,
            };
            let _ = writeln!(md, "| {} | {verdict} | {} | {} |", cell(&s.name), human(s.duration), cell(detail.trim()));
        }
        if !self.versions.is_empty() || self.server_version.is_some() {
            md.push_str("\n### Versions\n\n| component | version | digest |\n|---|---|---|\n");
            for (k, v) in &self.versions {
                let digest = self.digests.get(k).map_or(String::new(), |d| format!("`{d}`"));
                let _ = writeln!(md, "| {} | {} | {digest} |", cell(k), cell(v));
            }
            if let Some(v) = &self.server_version {
                let _ = writeln!(md, "| Kubernetes server | {} | |", cell(v));
            }
        }
        let drift: Vec<_> = self.scenarios.iter().filter_map(|s| s.model_drift.as_ref().map(|d| (s, d))).collect();
        if !drift.is_empty() {
            md.push_str("\n### Injection model\n\n| scenario | compared | agree | unexplained | explained |\n|---|---|---|---|---|\n");
            for (s, d) in &drift {
                let open = d.unexplained.iter().take(5).map(|l| cell(l)).collect::<Vec<_>>().join("<br>");
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    cell(&s.name),
                    d.compared,
                    d.agreed,
                    open,
                    d.explained.len()
                );
            }
        }
        let timed: Vec<_> = self.scenarios.iter().filter(|s| !s.phases.is_empty()).collect();
        if !timed.is_empty() {
            md.push_str("\n### Phases\n");
            for s in timed {
                let _ = writeln!(md, "\n**{}**\n", s.name);
                for p in &s.phases {
                    let mark = if p.ok { "" } else { " ❌" };
                    let _ = writeln!(md, "- {}: {}{mark}", p.name, human(p.duration));
                }
            }
        }
        redact(&md)
    }

    /// Writes `junit.xml` (or `junit_path`), `summary.json` and `summary.md` into `dir`, and appends
    /// the Markdown to `$GITHUB_STEP_SUMMARY` when that is set.
    pub fn write(&self, dir: &Path, junit_path: Option<&Path>) -> std::io::Result<Written> {
        std::fs::create_dir_all(dir)?;
        let junit = junit_path.map_or_else(|| dir.join("junit.xml"), Path::to_path_buf);
        if let Some(parent) = junit.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&junit, self.junit_xml().map_err(std::io::Error::other)?)?;
        let json = dir.join("summary.json");
        std::fs::write(&json, self.json())?;
        let markdown = dir.join("summary.md");
        let md = self.markdown();
        std::fs::write(&markdown, &md)?;
        let step_summary = append_step_summary(&md)?;
        Ok(Written { junit, json, markdown, step_summary })
    }
}

/// Appends `markdown` to the file named by `$GITHUB_STEP_SUMMARY`; `false` when it is not set.
pub fn append_step_summary(markdown: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(markdown.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(true)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}
