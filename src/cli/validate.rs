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
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
    /// The Kyverno ClusterPolicy CRD used to check policy files (default:
    /// `$KYVTEL_CLUSTERPOLICY_CRD`, else the built-in CRD of the pinned Kyverno).
    #[arg(long)]
    pub crd: Option<PathBuf>,
}

/// The scenario files named by `paths`: files as given, directories as catalogs
/// ([`crate::scenario::catalog::files`]).
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let paths = if paths.is_empty() { vec![super::default_scenario_dir()] } else { paths.to_vec() };
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = crate::scenario::catalog::files(&p)
                .map_err(|e| Error::input(&p, None, format!("cannot read directory: {e}")))?;
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

/// The catalog directory of `paths`: the first directory given, else the catalog of the first
/// scenario file (its directory, or the parent of `reports/`); the default catalog without paths.
fn catalog_dir(paths: &[PathBuf]) -> Option<PathBuf> {
    if paths.is_empty() {
        return Some(super::default_scenario_dir());
    }
    if let Some(d) = paths.iter().find(|p| p.is_dir()) {
        return Some(d.clone());
    }
    let parent = paths.first()?.parent()?;
    let sub = crate::scenario::catalog::SCENARIO_SUBDIRS.iter().any(|s| parent.ends_with(s));
    Some(if sub { parent.parent().unwrap_or(parent) } else { parent }.to_path_buf())
}

/// The quarantine that applies to a run of `paths`: `explicit`, else the catalog's
/// `quarantine.yaml` if it has one; checked against the catalog's scenario names and today.
///
/// # Errors
/// [`Error::Input`] for a bad entry (exit 2), before anything runs.
pub fn quarantine(paths: &[PathBuf], explicit: Option<&Path>) -> Result<crate::scenario::quarantine::Quarantine> {
    use crate::scenario::quarantine;
    let dir = catalog_dir(paths);
    let Some(file) = explicit.map(Path::to_path_buf).or_else(|| dir.as_deref().and_then(quarantine::file_of)) else {
        return Ok(quarantine::Quarantine::default());
    };
    // Its names are those of the catalog the run's scenarios come from.
    let catalog = dir.unwrap_or_default();
    let known: Vec<String> = crate::scenario::catalog::files(&catalog)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| scenario::load(f).ok().map(|l| l.name().to_string()))
        .collect();
    let today = quarantine::today().map_err(Error::Usage)?;
    quarantine::load(&file, &known, today)
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

/// The CRD schemas: `--crd`, else `$KYVTEL_CLUSTERPOLICY_CRD`, else the built-in CRD. A named
/// file that cannot be read is an input error, never a skipped check.
fn load_crds(explicit: Option<&Path>) -> Result<Vec<CrdSchema>> {
    match explicit.map(Path::to_path_buf).or_else(structural::configured_crd_path) {
        Some(path) => CrdSchema::load(&path),
        None => CrdSchema::builtin(),
    }
}

/// Runs `kyvtel validate`.
pub fn run(args: Args) -> Result<Exit> {
    let files = scenario_files(&args.paths)?;
    let crds = load_crds(args.crd.as_deref())?;
    let mut problems = Vec::new();
    for f in &files {
        match scenario::load_confined(f, &args.root.confinement()) {
            Ok(loaded) => {
                let d = check_policies(&loaded, &crds);
                if d.is_empty() {
                    println!("ok: {} ({})", f.display(), loaded.name());
                }
                problems.extend(d);
            }
            Err(Error::Input(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    match quarantine(&args.paths, None) {
        Ok(q) => {
            if let Some(f) = &q.file {
                println!("ok: {} ({} quarantined)", f.display(), q.entries.len());
            }
        }
        Err(Error::Input(d)) => problems.extend(d),
        Err(e) => return Err(e),
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
