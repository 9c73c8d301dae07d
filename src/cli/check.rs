//! `kyvtel check [SCENARIO...] [--output json]`: predict admission offline with the real Kyverno
//! engine and compare with each scenario's expectations. Exit 0 all match, 1 a mismatch, 2 input,
//! 3 no Kyverno CLI (or the CLI failed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::Output;
use crate::check::kyverno;
use crate::check::{self, Expected, ScenarioCheck};
use crate::error::Diagnostic;
use crate::scenario;
use crate::tools::runner::DuctRunner;
use crate::tools::{CommandLine, Runner, Tool};
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or directories (default: every scenario under `scenarios/`).
    pub scenarios: Vec<PathBuf>,
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// The machine-readable result (`--output json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The Kyverno CLI used.
    pub kyverno_cli: PathBuf,
    /// Its version, as `kyverno version` prints it.
    pub kyverno_cli_version: Option<String>,
    /// Whether every scenario matched.
    pub matches: bool,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioCheck>,
}

/// Runs `kyvtel check`.
pub fn run(args: Args) -> Result<Exit> {
    let files = super::validate::scenario_files(&args.scenarios)?;
    let loaded = scenario::load_all_confined(&files, &args.root.confinement())?;
    // A field the API server would prune is dropped silently by the CLI too: check the CRD first.
    let crds = crate::scenario::structural::CrdSchema::builtin()?;
    let problems: Vec<Diagnostic> = loaded.iter().flat_map(|l| super::validate::check_policies(l, &crds)).collect();
    if !problems.is_empty() {
        return Err(Error::Input(problems));
    }
    let bin = kyverno::locate()?;
    let scratch = workdir("kyverno-cli")?;
    let runner = DuctRunner::new(&scratch).with_program(Tool::Kyverno, bin.clone());
    let cli_version = cli_version(&runner);
    let checked = (|| -> Result<Vec<ScenarioCheck>> {
        let mut scenarios = Vec::new();
        for l in &loaded {
            let dir = workdir(l.name())?;
            let result = check::check(l, &runner, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            let mut c = result?;
            if let Some(v) = &cli_version
                && scenario::version::Version::parse(v) != scenario::version::Version::parse(&c.kyverno)
            {
                c.notes.push(format!("the Kyverno CLI is {v}, the scenario runs Kyverno {}", c.kyverno));
            }
            scenarios.push(c);
        }
        Ok(scenarios)
    })();
    // Removed on every path, an engine error included.
    let _ = std::fs::remove_dir_all(&scratch);
    let scenarios = checked?;
    let report = Report {
        kyverno_cli: bin,
        kyverno_cli_version: cli_version,
        matches: scenarios.iter().all(ScenarioCheck::matches),
        scenarios,
    };
    match args.output {
        Output::Json => {
            crate::console_println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| Error::infra("printing JSON", e))?
            )
        }
        Output::Text => crate::console_print!("{}", table(&report)),
    }
    Ok(if report.matches { Exit::Success } else { Exit::Failed })
}

fn workdir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kyvtel-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::infra(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

/// `v1.19.0` from `kyverno version` (`Version: v1.19.0`), if it answers.
// upstream: kyverno/kyverno cmd/cli/kubectl-kyverno/commands/version/command.go@v1.19.0
fn cli_version(runner: &dyn Runner) -> Option<String> {
    let out = runner.run(&CommandLine::new(Tool::Kyverno).args(["version"]), Duration::from_secs(30)).ok()?;
    out.stdout.lines().find_map(|l| l.strip_prefix("Version:")).map(|v| v.trim().to_string())
}

fn expected_text(e: &Option<Expected>) -> String {
    let list = |l: &[crate::outcome::expect::DeniedBy]| {
        l.iter()
            .map(|d| {
                format!("{}/{}{}", d.policy, d.rule, d.path.as_deref().map(|p| format!(" at {p}")).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match e {
        None => "-".into(),
        Some(Expected::Admitted) => "admitted".into(),
        Some(Expected::Denied(l)) if l.is_empty() => "denied".into(),
        Some(Expected::Denied(l)) => format!("denied by {}", list(l)),
        Some(Expected::DeniedOnly(l)) => format!("denied by only {}", list(l)),
    }
}

/// The text form: one table per scenario.
#[must_use]
pub fn table(report: &Report) -> String {
    let mut s = String::new();
    for c in &report.scenarios {
        let _ = writeln!(
            s,
            "scenario {} ({}): telepresence {}, kyverno {}",
            c.scenario,
            display(&c.file),
            c.telepresence,
            c.kyverno
        );
        let rows: Vec<[String; 4]> = c
            .objects
            .iter()
            .map(|o| {
                let what = format!("{}{}: {}", o.role.label(), if o.model { " (model)" } else { "" }, o.object);
                let verdict = if o.admitted && !o.judgement.applied {
                    "admitted: no policy applies".to_string()
                } else if o.admitted {
                    "admitted".to_string()
                } else {
                    format!("denied by {}", check::describe(&o.judgement))
                };
                let result = match (&o.expected, &o.mismatch) {
                    (None, _) => "-".to_string(),
                    (Some(_), None) => "ok".to_string(),
                    (Some(_), Some(_)) => "MISMATCH".to_string(),
                };
                [what, verdict, expected_text(&o.expected), result]
            })
            .collect();
        let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(6);
        let _ = writeln!(s, "  {:<width$}  {:<8}  VERDICT / EXPECTED", "OBJECT", "RESULT");
        for (r, o) in rows.iter().zip(&c.objects) {
            let _ = writeln!(s, "  {:<width$}  {:<8}  {}", r[0], r[3], r[1]);
            if let Some(why) = &o.mismatch {
                let _ = writeln!(s, "  {:<width$}  {:<8}  expected {}: {why}", "", "", r[2]);
            }
        }
        for n in &c.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        let _ = writeln!(s, "  => {}\n", if c.matches() { "every verdict matches" } else { "MISMATCH" });
    }
    let _ = writeln!(
        s,
        "{} scenario(s) checked with {}: {}",
        report.scenarios.len(),
        display(&report.kyverno_cli),
        if report.matches { "all match" } else { "mismatches found" }
    );
    s
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
