//! `tools.lock`: trust on first use for every download that has no pinned sha256.
//!
//! Telepresence publishes no checksums, and the kyverno CLI and some Kyverno charts are pinned
//! without a digest (only their upstream checksum file or chart index vouches for them, and
//! upstream could re-publish that file together with the artifact). So the sha256 of the first
//! verified download of each such release is recorded here, and every later download must match.
//! A pinned `sha256` in pins.yaml stays authoritative: releases that carry one are never locked.
//!
//! Format (one release per line; `#` starts a comment; blank lines are ignored):
//!
//! ```text
//! <item> <version> <sha256> <url>
//! telepresence 2.32.1 0123…cdef https://github.com/telepresenceio/telepresence/releases/download/v2.32.1/telepresence-linux-amd64
//! kyverno-cli v1.19.0 4567…89ab https://github.com/kyverno/kyverno/releases/download/v1.19.0/kyverno-cli_v1.19.0_linux_x86_64.tar.gz
//! ```
//!
//! A mismatch fails the install (exit 3) naming the item, the version, both digests and the lock
//! file. Commit the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::verify::is_sha256;
use crate::Error;
use crate::error::Location;

/// The lock file's name in the repository root.
pub const FILE_NAME: &str = "tools.lock";

/// The header written at the top of a new lock file.
pub const HEADER: &str = "\
# tools.lock: sha256 of every download kyvtel verified without a pinned sha256 (trust on first use).
# Telepresence publishes no checksums, and the kyverno CLI and some Kyverno charts are pinned
# without a digest: the first verified download is recorded here, later downloads must match.
# Written by `kyvtel tools install`; commit it.
# Format: <item> <version> <sha256> <url>
";

/// Which release a lock entry is for: an item name (`kind`, `telepresence`, ...) and a version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The item's name, as in `kyvtel tools install --only`.
    pub item: String,
    /// The pinned version, as written in pins.yaml.
    pub version: String,
}

impl Key {
    /// The key of `item` at `version`.
    pub fn new(item: impl Into<String>, version: impl Into<String>) -> Self {
        Key { item: item.into(), version: version.into() }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.item, self.version)
    }
}

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
    /// Locked releases.
    pub entries: BTreeMap<Key, Entry>,
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
            let [item, version, sha, url] = fields.as_slice() else {
                return Err(Error::input(path, at, "expected `<item> <version> <sha256> <url>`"));
            };
            if !is_sha256(sha) {
                return Err(Error::input(path, at, format!("`{sha}` is not a sha256")));
            }
            let key = Key::new(*item, *version);
            let entry = Entry { sha256: sha.to_ascii_lowercase(), url: (*url).to_string() };
            if entries.contains_key(&key) {
                return Err(Error::input(path, at, format!("{key} is listed twice")));
            }
            entries.insert(key, entry);
        }
        Ok(Lock { path: path.to_path_buf(), entries })
    }

    /// The entry of `item` at `version`, if recorded.
    #[must_use]
    pub fn get(&self, item: &str, version: &str) -> Option<&Entry> {
        self.entries.get(&Key::new(item, version))
    }

    /// Records `item` at `version` and writes the file.
    pub fn record(&mut self, item: &str, version: &str, entry: Entry) -> Result<(), Error> {
        self.entries.insert(Key::new(item, version), entry);
        self.write()
    }

    /// The file's text: header, then one line per release.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = HEADER.to_string();
        for (k, e) in &self.entries {
            s.push_str(&format!("{} {} {} {}\n", k.item, k.version, e.sha256, e.url));
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
        let path = dir.join(FILE_NAME);
        assert!(Lock::read(&path).unwrap().entries.is_empty());
        let mut lock = Lock::read(&path).unwrap();
        lock.record("telepresence", "2.32.1", Entry { sha256: "a".repeat(64), url: "https://x/t".into() }).unwrap();
        lock.record("kind", "v0.33.0", Entry { sha256: "b".repeat(64), url: "https://x/k".into() }).unwrap();
        let back = Lock::read(&path).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.get("kind", "v0.33.0").unwrap().sha256, "b".repeat(64));
        assert!(back.get("telepresence", "v0.33.0").is_none(), "keys distinguish items");
        let header_lines = HEADER.lines().count();

        std::fs::write(&path, format!("{HEADER}\ntelepresence 2.32.1 nothex https://x\n")).unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("tools.lock:{}:1", header_lines + 2)) && err.contains("not a sha256"), "{err}");

        // The pre-rename format (no item) is rejected with the expected format.
        std::fs::write(&path, format!("2.32.1 {} https://x\n", "a".repeat(64))).unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert!(err.contains("tools.lock:1:1") && err.contains("<item> <version> <sha256> <url>"), "{err}");

        let twice = format!("kind v0.33.0 {0} https://x\nkind v0.33.0 {0} https://x\n", "c".repeat(64));
        std::fs::write(&path, twice).unwrap();
        let err = Lock::read(&path).unwrap_err().to_string();
        assert!(err.contains("tools.lock:2:1") && err.contains("kind v0.33.0 is listed twice"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
