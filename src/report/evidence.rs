//! Evidence bundles: `target/kyvtel/<run-id>/<scenario>/` with the files the caller collected
//! (events, pod YAML, logs, `telepresence gather-logs`, `kind export logs`) and an `index.json`
//! listing them. Text content is redacted before it is written; binary content (zip archives) is
//! stored as is and marked `"redacted": false` in the index.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::redact::{redact, redact_bytes};

/// One file of a bundle, as listed in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// File name inside the bundle directory.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Size as written.
    pub bytes: u64,
    /// Whether it was text and went through redaction.
    pub redacted: bool,
}

/// A bundle being written.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    entries: Vec<Entry>,
}

/// The bundle directory of one scenario: `<root>/<run-id>/<scenario>`.
#[must_use]
pub fn bundle_dir(root: &Path, run_id: &str, scenario: &str) -> PathBuf {
    root.join(safe_name(run_id)).join(safe_name(scenario))
}

/// `name` reduced to a safe single path component (no separators, no `..`).
#[must_use]
pub fn safe_name(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "_".to_string() } else { s }
}

impl Bundle {
    /// Creates `<root>/<run-id>/<scenario>/` (`root` is usually `target/kyvtel`).
    pub fn create(root: &Path, run_id: &str, scenario: &str) -> std::io::Result<Bundle> {
        let dir = bundle_dir(root, run_id, scenario);
        std::fs::create_dir_all(&dir)?;
        Ok(Bundle { dir, entries: Vec::new() })
    }

    /// The bundle directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a file with `contents` (redacted if text). Returns its path.
    pub fn add(&mut self, name: &str, description: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
        let name = safe_name(name);
        let (data, redacted) = redact_bytes(contents);
        let path = self.dir.join(&name);
        std::fs::write(&path, &data)?;
        self.entries.retain(|e| e.name != name);
        self.entries.push(Entry { name, description: redact(description), bytes: data.len() as u64, redacted });
        Ok(path)
    }

    /// Adds a copy of the file at `source` (e.g. a `gather-logs` zip).
    pub fn add_file(&mut self, name: &str, description: &str, source: &Path) -> std::io::Result<PathBuf> {
        let contents = std::fs::read(source)?;
        self.add(name, description, &contents)
    }

    /// The entries so far.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Writes `index.json` and returns the bundle directory.
    pub fn finish(self) -> std::io::Result<PathBuf> {
        let index = serde_json::json!({ "files": self.entries });
        let text = serde_json::to_string_pretty(&index).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join("index.json"), text)?;
        Ok(self.dir)
    }
}
