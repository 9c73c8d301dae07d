//! `telepresence.lock`: trust on first use for Telepresence, which publishes no checksums.
//!
//! Format (one release per line; `#` starts a comment; blank lines are ignored):
//!
//! ```text
//! <version> <sha256> <url>
//! 2.32.1 0123…cdef https://github.com/telepresenceio/telepresence/releases/download/v2.32.1/telepresence-linux-amd64
//! ```
//!
//! The first download of a version records its digest; every later download of that version must
//! match it, or the install fails (exit 3) naming both digests. Commit the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::verify::is_sha256;
use crate::Error;
use crate::error::Location;

/// The header written at the top of a new lock file.
pub const HEADER: &str = "\
# telepresence.lock: sha256 of every Telepresence release kyvtel has downloaded.
# Telepresence publishes no checksums, so the first download is trusted and recorded here;
# later downloads must match. Written by `kyvtel tools install`; commit it.
# Format: <version> <sha256> <url>
";

/// One locked release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sha256 recorded on first download.
    pub sha256: String,
    /// Where it was downloaded from.
    pub url: String,
}

/// The parsed lock file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    /// Where it is read from and written to.
    pub path: PathBuf,
    /// Locked releases by version.
    pub entries: BTreeMap<String, Entry>,
}

impl Lock {
    /// Reads `path`; a missing file is an empty lock. A malformed line is an input error at its line.
    pub fn read(path: &Path) -> Result<Lock, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::infra(format!("reading {}", path.display()), e)),
        };
        let mut entries = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = Some(Location { line: i + 1, column: 1 });
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [version, sha, url] = fields.as_slice() else {
                return Err(Error::input(path, at, "expected `<version> <sha256> <url>`"));
            };
            if !is_sha256(sha) {
                return Err(Error::input(path, at, format!("`{sha}` is not a sha256")));
            }
            let entry = Entry { sha256: sha.to_ascii_lowercase(), url: (*url).to_string() };
            if entries.insert((*version).to_string(), entry).is_some() {
                return Err(Error::input(path, at, format!("version {version} is listed twice")));
            }
        }
        Ok(Lock { path: path.to_path_buf(), entries })
    }

    /// The file's text: header, then one line per version.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = HEADER.to_string();
        for (v, e) in &self.entries {
            s.push_str(&format!("{v} {} {}\n", e.sha256, e.url));
        }
        s
    }

    /// Writes the file.
    pub fn write(&self) -> Result<(), Error> {
        std::fs::write(&self.path, self.render())
            .map_err(|e| Error::infra(format!("writing {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("kyvtel-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("telepresence.lock");
        assert!(Lock::read(&path).unwrap().entries.is_empty());
        let mut lock = Lock::read(&path).unwrap();
        lock.entries.insert("2.32.1".into(), Entry { sha256: "a".repeat(64), url: "https://x/t".into() });
        lock.write().unwrap();
        assert_eq!(Lock::read(&path).unwrap(), lock);
        std::fs::write(&path, format!("{HEADER}\n2.32.1 nothex https://x\n")).unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert!(err.contains("telepresence.lock:6:1") && err.contains("not a sha256"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
