//! Evidence bundles: `target/kyvtel/<run-id>/<scenario>/` with the files the caller collected
//! (events, pod YAML, logs, `telepresence gather-logs`, `kind export logs`) and an `index.json`
//! listing them.
//!
//! Everything written is text that went through [`redact`]. Content that cannot be redacted
//! (not UTF-8) is never written: `index.json` lists it under `skipped`, with the reason. Archives
//! are opened and each member is added on its own ([`Bundle::add_zip`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::redact::redact;
use super::zip_members;

/// One file of a bundle, as listed in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// File name inside the bundle directory.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Size as written.
    pub bytes: u64,
    /// Whether it went through redaction: always `true`, since content that cannot be redacted is
    /// not written (see [`Skipped`]). Kept so that a reader of `index.json` need not know that.
    pub redacted: bool,
}

/// Something collected but not written, as listed under `skipped` in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file name it would have had inside the bundle directory.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// Its size as collected.
    pub bytes: u64,
    /// Why it was not written.
    pub reason: String,
}

/// Why binary content is not written.
const NOT_TEXT: &str = "binary (not UTF-8 text, with NUL bytes), so it cannot be redacted; not written";

/// A bundle being written.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
}

/// The bundle directory of one scenario: `<root>/<run-id>/<scenario>`.
#[must_use]
pub fn bundle_dir(root: &Path, run_id: &str, scenario: &str) -> PathBuf {
    root.join(safe_name(run_id)).join(safe_name(scenario))
}

/// The flat bundle name of the file `rel` (a `/`-separated path) collected under `group`:
/// `<group>__<rel with / as __>`, e.g. `kind-logs__kyvtel-control-plane__kubelet.log`.
#[must_use]
pub fn nested_name(group: &str, rel: &str) -> String {
    safe_name(&format!("{group}/{rel}").replace('/', "__"))
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
        Ok(Bundle { dir, entries: Vec::new(), skipped: Vec::new() })
    }

    /// The bundle directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a file with `contents`, redacted, and returns its path. Content that is not UTF-8
    /// text is not written: it is listed as skipped, and `None` is returned.
    pub fn add(&mut self, name: &str, description: &str, contents: &[u8]) -> std::io::Result<Option<PathBuf>> {
        let name = safe_name(name);
        self.entries.retain(|e| e.name != name);
        self.skipped.retain(|e| e.name != name);
        let (text, description) = match std::str::from_utf8(contents) {
            Ok(t) => (std::borrow::Cow::Borrowed(t), redact(description)),
            // A NUL byte means binary (compressed, an image): nothing in it can be found to redact.
            Err(_) if contents.contains(&0) => {
                self.skip(&name, description, contents.len() as u64, NOT_TEXT);
                return Ok(None);
            }
            // Text with a few invalid bytes (a log line cut mid-character): keep it, with those
            // bytes replaced, so that redaction sees all of it.
            Err(_) => (String::from_utf8_lossy(contents), format!("{} (invalid UTF-8 replaced)", redact(description))),
        };
        let data = redact(&text);
        let path = self.dir.join(&name);
        std::fs::write(&path, &data)?;
        self.entries.push(Entry { name, description, bytes: data.len() as u64, redacted: true });
        Ok(Some(path))
    }

    /// Adds the contents of the file at `source`, as [`Bundle::add`] does.
    pub fn add_file(&mut self, name: &str, description: &str, source: &Path) -> std::io::Result<Option<PathBuf>> {
        let contents = std::fs::read(source)?;
        self.add(name, description, &contents)
    }

    /// Adds every member of the zip archive `zip` as its own file, named
    /// [`nested_name`]`(group, member path)` and redacted; the archive itself is not written.
    /// Members that are left out (see [`zip_members`]) or binary are listed as skipped; an archive
    /// that cannot be read at all is listed as skipped under `<group>.zip`.
    pub fn add_zip(&mut self, group: &str, description: &str, zip: &[u8]) -> std::io::Result<()> {
        let members = match zip_members::read(zip, zip_members::MEMBER_LIMIT) {
            Ok(m) => m,
            Err(e) => {
                self.skip(&format!("{group}.zip"), description, zip.len() as u64, &e.to_string());
                return Ok(());
            }
        };
        for m in members.read {
            self.add(&nested_name(group, &m.path), &format!("{description}: {}", m.path), &m.contents)?;
        }
        for l in members.left_out {
            let name = nested_name(group, &l.path);
            self.skip(&name, &format!("{description}: {}", l.path), l.bytes, &l.reason);
        }
        Ok(())
    }

    /// Lists something collected but not written, with the reason.
    pub fn skip(&mut self, name: &str, description: &str, bytes: u64, reason: &str) {
        self.skipped.push(Skipped {
            name: safe_name(name),
            description: redact(description),
            bytes,
            reason: redact(reason),
        });
    }

    /// The entries so far.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What was collected but not written, so far.
    #[must_use]
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Writes `index.json` and returns the bundle directory.
    pub fn finish(self) -> std::io::Result<PathBuf> {
        let index = serde_json::json!({ "files": self.entries, "skipped": self.skipped });
        let text = serde_json::to_string_pretty(&index).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join("index.json"), text)?;
        Ok(self.dir)
    }
}
