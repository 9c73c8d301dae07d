//! `kyvtel validate [PATH...]`: checks scenario files without executing anything.

use std::path::{Path, PathBuf};

use crate::error::{Diagnostic, Error};
use crate::scenario::structural::{self, CrdSchema};
use crate::scenario::{self, Loaded};
use crate::{Exit, Result};

/// Arguments of `kyvtel validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or directories (default: every scenario under `scenarios/`).
    pub paths: Vec<PathBuf>,
    /// The Kyverno ClusterPolicy CRD used to check policy files (default:
    /// `$KYVTEL_CLUSTERPOLICY_CRD`, else the shared fixture).
    #[arg(long)]
    pub crd: Option<PathBuf>,
}

/// The scenario files named by `paths`: files as given, directories by their top-level `*.yaml`.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let paths = if paths.is_empty() { vec![super::default_scenario_dir()] } else { paths.to_vec() };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| Error::input(&p, None, format!("cannot read directory: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(Error::input(&p, None, "no scenario files (*.yaml) in this directory"));
            }
            out.extend(found);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// Checks the policies of a loaded scenario against the CRD schemas.
pub fn check_policies(loaded: &Loaded, crds: &[CrdSchema]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in &loaded.policies {
        let api = p.source.value["apiVersion"].as_str().unwrap_or_default();
        match crds.iter().find(|c| c.api_version == api) {
            Some(crd) => out.extend(crd.check(&p.path, &p.source)),
            None => out.push(Diagnostic::at(
                &p.path,
                p.source.index.value("/apiVersion"),
                format!("apiVersion `{api}` is not served by the ClusterPolicy CRD"),
            )),
        }
    }
    out
}

/// Loads the CRD if present; `Ok(None)` with a printed reason when it is missing.
fn load_crds(path: &Path) -> Result<Option<Vec<CrdSchema>>> {
    if !path.is_file() {
        eprintln!(
            "note: ClusterPolicy CRD not found at {}; policy schema check skipped (set --crd or KYVTEL_CLUSTERPOLICY_CRD)",
            path.display()
        );
        return Ok(None);
    }
    CrdSchema::load(path).map(Some)
}

/// Runs `kyvtel validate`.
pub fn run(args: Args) -> Result<Exit> {
    let files = scenario_files(&args.paths)?;
    let crds = load_crds(&args.crd.unwrap_or_else(structural::default_crd_path))?;
    let mut problems = Vec::new();
    for f in &files {
        match scenario::load(f) {
            Ok(loaded) => {
                let d = crds.as_deref().map(|c| check_policies(&loaded, c)).unwrap_or_default();
                if d.is_empty() {
                    println!("ok: {} ({})", f.display(), loaded.name());
                }
                problems.extend(d);
            }
            Err(Error::Input(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    problems.sort_by(|a, b| (&a.file, a.location).cmp(&(&b.file, b.location)));
    problems.dedup();
    if problems.is_empty() {
        println!("{} scenario file(s) valid", files.len());
        Ok(Exit::Success)
    } else {
        Err(Error::Input(problems))
    }
}
