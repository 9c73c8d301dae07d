//! This run's private directory: where it goes, that it is never inside the reports, and that it
//! is removed on every exit path unless the cluster is kept.

use std::path::{Path, PathBuf};

use super::SessionOptions;
use crate::plan;
use crate::{Error, Result};

/// `p` made absolute, with `.` and `..` folded and symbolic links followed as far as the path
/// exists, so that two spellings of one directory compare equal.
pub(super) fn resolved(p: &Path) -> PathBuf {
    let folded = plan::build::clean(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    // Follow links in the longest existing ancestor; the rest does not exist yet.
    let mut existing = folded.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return folded,
        }
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}

/// This run's private directory, `<work_dir>/<run-id>`. Dropping it removes it (after success, a
/// failure, an early error or a panic), and the work root too when kyvtel created it and nothing
/// else is left there, unless `--keep` keeps the cluster, whose kubeconfig it holds.
pub(super) struct WorkDir {
    pub(super) path: PathBuf,
    root: PathBuf,
    root_existed: bool,
    keep: bool,
}

impl WorkDir {
    pub(super) fn new(root: &Path, run_id: &str, keep: bool) -> Self {
        WorkDir { path: root.join(run_id), root: root.to_path_buf(), root_existed: root.exists(), keep }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            if self.path.exists() {
                crate::console_eprintln!(
                    "kept: run-private files (kubeconfigs, tool state) in {}",
                    self.path.display()
                );
            }
            return;
        }
        match std::fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                crate::console_eprintln!(
                    "warning: could not remove the run-private directory {}: {e}",
                    self.path.display()
                );
            }
            // Only an empty root goes, and only one kyvtel created.
            _ if !self.root_existed => drop(std::fs::remove_dir(&self.root)),
            _ => {}
        }
    }
}

/// Refuses a work directory inside the report directory: the reports are meant to be uploaded
/// (CI artifacts), and the work directory holds credentials.
pub(super) fn check_work_dir(opts: &SessionOptions) -> Result<()> {
    let (work, reports) = (resolved(&opts.work_dir), resolved(&opts.report_dir));
    if work.starts_with(&reports) {
        return Err(Error::Usage(format!(
            "the run-private directory {} is inside the report directory {}; it holds credentials, so \
             choose a report directory that does not contain it",
            work.display(),
            reports.display()
        )));
    }
    Ok(())
}
