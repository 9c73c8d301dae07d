//! The catalog: which files of a scenario directory are scenarios. Its top level and its
//! `reports/` (scenarios written from public bug reports) hold scenarios; the other
//! subdirectories hold what scenarios refer to (policies, values, workloads, probes, observed
//! records), and a few top-level files are catalog data, not scenarios.

use std::path::{Path, PathBuf};

/// Subdirectories that hold scenarios, besides the top level.
pub const SCENARIO_SUBDIRS: &[&str] = &["reports"];

/// Top-level YAML files that are catalog data, never scenarios.
pub const DATA_FILES: &[&str] = &["matrix.yaml", "quarantine.yaml"];

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|f| f.file_name().is_none_or(|n| !DATA_FILES.iter().any(|d| n == *d)))
        .collect();
    out.sort();
    Ok(out)
}

/// The scenario files of `dir`: its top-level YAML files (data files left out), then those of each
/// [`SCENARIO_SUBDIRS`] entry that exists, each group sorted.
///
/// # Errors
/// When `dir` (or an existing scenario subdirectory) cannot be read.
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = yaml_files(dir)?;
    for sub in SCENARIO_SUBDIRS.iter().map(|s| dir.join(s)).filter(|d| d.is_dir()) {
        out.extend(yaml_files(&sub)?);
    }
    Ok(out)
}
