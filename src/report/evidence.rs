//! Evidence bundles: `target/kyvtel/<run-id>/<scenario>/` with the files the caller collected
//! (events, pod YAML, logs, `telepresence gather-logs`, `kind export logs`) and an `index.json`
//! listing them.
//!
//! Everything written is text that went through [`redact`]: the files, their names, and every
//! string in `index.json`. Content that cannot be redacted (not UTF-8) is never written:
//! `index.json` lists it under `skipped`, with the reason. Archives are opened and each member is
//! added on its own ([`Bundle::add_zip`]).
//!
//! One file never spoils the bundle: a file that cannot be read or written is listed under
//! `skipped` with the I/O error, and `index.json` is still written. Names are flattened to one
//! path component, capped at [`NAME_LIMIT`] bytes, and unique within the bundle: a name taken
//! already (by another file, or by `index.json`) gets `-2`, `-3`, … before its extension.

use std::borrow::Cow;
use std::collections::HashSet;
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
    /// Whether its contents, its name and its description went through [`redact`]: `true` for every
    /// file, since only [`Bundle::add`] writes files and it redacts all three. Content that cannot be
    /// redacted is not written, and is listed as [`Skipped`], which has no such flag.
    pub redacted: bool,
}

/// Something collected but not written, as listed under `skipped` in `index.json`. Its name,
/// description and reason are redacted; its contents were never read into the bundle.
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

/// The longest name [`safe_name`] returns, in bytes. File systems allow 255 bytes per path
/// component (ext4, xfs, btrfs); this leaves room for a `-N` de-duplication suffix.
pub const NAME_LIMIT: usize = 200;

/// The name `index.json` is written under; no collected file takes it.
const INDEX: &str = "index.json";

/// The longest extension kept when a name is shortened or de-duplicated, in bytes, without the dot.
const EXTENSION_LIMIT: usize = 16;

/// A bundle being written.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    entries: Vec<Entry>,
    skipped: Vec<Skipped>,
    /// Names given out so far (entries and skipped), lower-cased so that names differing only in
    /// case stay apart on case-insensitive file systems too.
    taken: HashSet<String>,
}

/// The bundle directory of one scenario: `<root>/<run-id>/<scenario>`.
#[must_use]
pub fn bundle_dir(root: &Path, run_id: &str, scenario: &str) -> PathBuf {
    root.join(safe_name(run_id)).join(safe_name(scenario))
}

/// The flat bundle name of the file `rel` (a `/`-separated path) collected under `group`:
/// `<group>__<rel with / as __>`, e.g. `kind-logs__kyvtel-control-plane__kubelet.log`. It is not
/// capped at [`NAME_LIMIT`]: [`Bundle::add`] cuts a longer one and keeps it in the description.
/// It is redacted before it is flattened, while a token in it still stands between separators.
#[must_use]
pub fn nested_name(group: &str, rel: &str) -> String {
    flatten(&redact(&format!("{group}/{rel}")).replace('/', "__"))
}

/// `name` reduced to a safe single path component (no separators, no `..`) of at most
/// [`NAME_LIMIT`] bytes. A longer one is cut and ends in `-<hash>` (the first 8 hex digits of the
/// SHA-256 of `name`), followed by its extension if it has one, so that names sharing a long prefix
/// stay apart and the same `name` always gives the same result.
#[must_use]
pub fn safe_name(name: &str) -> String {
    let flat = flatten(name);
    if flat.len() <= NAME_LIMIT {
        return flat;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let hash: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    let (stem, ext) = split_extension(&flat);
    let mut cut = NAME_LIMIT - 1 - hash.len() - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}{ext}", &stem[..cut])
}

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.` replaced by `_`, and
/// without leading dots; never empty.
fn flatten(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() { "_".to_string() } else { s.to_string() }
}

/// `name` split before its extension (`kubelet.log` → `kubelet`, `.log`); a name without one,
/// or whose last `.`-part is long or not alphanumeric, has an empty extension.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot)
            if dot > 0
                && (2..=EXTENSION_LIMIT + 1).contains(&(name.len() - dot))
                && name[dot + 1..].chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            name.split_at(dot)
        }
        _ => (name, ""),
    }
}

impl Bundle {
    /// Creates `<root>/<run-id>/<scenario>/` (`root` is usually `target/kyvtel`).
    pub fn create(root: &Path, run_id: &str, scenario: &str) -> std::io::Result<Bundle> {
        let dir = bundle_dir(root, run_id, scenario);
        std::fs::create_dir_all(&dir)?;
        Ok(Bundle { dir, entries: Vec::new(), skipped: Vec::new(), taken: HashSet::new() })
    }

    /// The bundle directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a file with `contents`, redacted, under [`safe_name`]`(name)` made unique in the bundle
    /// (see the module documentation), and returns its path.
    ///
    /// Content that is not UTF-8 text, or a file that cannot be written, is listed as skipped
    /// with the reason, and `None` is returned. It never returns `Err`: one file never stops the
    /// bundle (the `Result` is kept for callers that use `?`).
    pub fn add(&mut self, name: &str, description: &str, contents: &[u8]) -> std::io::Result<Option<PathBuf>> {
        let (name, mut description) = self.claim(name, description);
        let bytes = contents.len() as u64;
        let text = match std::str::from_utf8(contents) {
            Ok(t) => Cow::Borrowed(t),
            // A NUL byte means binary (compressed, an image): nothing in it can be found to redact.
            Err(_) if contents.contains(&0) => {
                self.skipped.push(Skipped { name, description, bytes, reason: NOT_TEXT.to_string() });
                return Ok(None);
            }
            // Text with a few invalid bytes (a log line cut mid-character): keep it, with those
            // bytes replaced, so that redaction sees all of it.
            Err(_) => {
                description.push_str(" (invalid UTF-8 replaced)");
                String::from_utf8_lossy(contents)
            }
        };
        let data = redact(&text);
        let path = self.dir.join(&name);
        if let Err(e) = std::fs::write(&path, &data) {
            // A file cut short by the failure (a full disk) is removed; it would not be listed.
            if path.is_file() {
                let _ = std::fs::remove_file(&path);
            }
            let reason = redact(&format!("could not be written: {e}"));
            self.skipped.push(Skipped { name, description, bytes, reason });
            return Ok(None);
        }
        self.entries.push(Entry { name, description, bytes: data.len() as u64, redacted: true });
        Ok(Some(path))
    }

    /// Adds the contents of the file at `source`, as [`Bundle::add`] does. A file that cannot be
    /// read is listed as skipped with the error, and `None` is returned; it never returns `Err`.
    pub fn add_file(&mut self, name: &str, description: &str, source: &Path) -> std::io::Result<Option<PathBuf>> {
        match std::fs::read(source) {
            Ok(contents) => self.add(name, description, &contents),
            Err(e) => {
                self.skip(name, description, 0, &format!("could not be read: {e}"));
                Ok(None)
            }
        }
    }

    /// Adds every member of the zip archive `zip` as its own file, named
    /// [`nested_name`]`(group, member path)` and redacted; the archive itself is not written.
    /// Members that are left out (see [`zip_members`]) or binary are listed as skipped; an archive
    /// that cannot be read at all is listed as skipped under `<group>.zip`. It never returns `Err`,
    /// as [`Bundle::add`].
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

    /// Lists something collected but not written, with the reason. Its name is made unique as
    /// [`Bundle::add`] does.
    pub fn skip(&mut self, name: &str, description: &str, bytes: u64, reason: &str) {
        let (name, description) = self.claim(name, description);
        self.skipped.push(Skipped { name, description, bytes, reason: redact(reason) });
    }

    /// Gives out the bundle name of `source`: [`safe_name`]`(`[`redact`]`(source))` (a file or
    /// archive member can be named after a token), or, when that is taken already (or is
    /// `index.json`), the same with `-2`, `-3`, … before its extension. Returns it with
    /// `description` redacted; when the name had to be cut or de-duplicated, the description ends in
    /// ` (collected as <source, redacted>)`, so that the original name is kept.
    fn claim(&mut self, source: &str, description: &str) -> (String, String) {
        let source = &redact(source);
        let base = safe_name(source);
        let free = |taken: &HashSet<String>, n: &str| {
            !n.eq_ignore_ascii_case(INDEX) && !taken.contains(&n.to_ascii_lowercase())
        };
        let mut name = base.clone();
        let mut n = 1u32;
        while !free(&self.taken, &name) {
            n += 1;
            let (stem, ext) = split_extension(&base);
            name = format!("{stem}-{n}{ext}");
        }
        self.taken.insert(name.to_ascii_lowercase());
        let description = if name == flatten(source) {
            redact(description)
        } else {
            redact(&format!("{description} (collected as {source})"))
        };
        (name, description)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::zip_members::tests::zip_of;

    fn bundle(test: &str) -> Bundle {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("kyvtel-evidence-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Bundle::create(&root, "run-1", "s").unwrap()
    }

    #[test]
    fn extensions_are_short_alphanumeric_tails() {
        assert_eq!(split_extension("kubelet.log"), ("kubelet", ".log"));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", ".gz"));
        assert_eq!(split_extension("noext"), ("noext", ""));
        assert_eq!(split_extension("trailing."), ("trailing.", ""));
        assert_eq!(split_extension("v1.2-rc_1"), ("v1.2-rc_1", ""));
        assert_eq!(split_extension(&format!("a.{}", "x".repeat(17))).1, "");
    }

    #[test]
    fn zip_members_that_flatten_alike_are_both_kept() {
        let mut b = bundle("zip-collide");
        let zip = zip_of(&[("a/b.log", b"first"), ("a__b.log", b"second"), ("bin.dat", b"\xff\0")]);
        b.add_zip("g", "gather-logs", &zip).unwrap();
        // A binary member and the zip's own fallback name take names too.
        b.skip("g.zip", "again", 1, "test");
        let names: Vec<&str> = b.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["g__a__b.log", "g__a__b-2.log"]);
        assert_eq!(std::fs::read_to_string(b.dir().join("g__a__b.log")).unwrap(), "first");
        assert_eq!(std::fs::read_to_string(b.dir().join("g__a__b-2.log")).unwrap(), "second");
        assert_eq!(b.entries()[0].description, "gather-logs: a/b.log");
        assert_eq!(b.entries()[1].description, "gather-logs: a__b.log (collected as g__a__b.log)");
        let skipped: Vec<&str> = b.skipped().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["g__bin.dat", "g.zip"]);
    }

    #[test]
    fn a_zip_member_that_cannot_be_written_is_skipped_and_the_rest_kept() {
        let mut b = bundle("zip-unwritable");
        std::fs::create_dir(b.dir().join("g__x.log")).unwrap();
        let zip = zip_of(&[("x.log", b"lost"), ("y.log", b"kept")]);
        b.add_zip("g", "gather-logs", &zip).unwrap();
        assert_eq!(b.entries().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["g__y.log"]);
        assert_eq!(b.skipped().len(), 1);
        assert_eq!(b.skipped()[0].name, "g__x.log");
        assert_eq!(b.skipped()[0].bytes, 4);
        assert!(b.skipped()[0].reason.starts_with("could not be written: "), "{:?}", b.skipped());
        let dir = b.finish().unwrap();
        assert!(dir.join("index.json").is_file());
    }

    #[test]
    fn a_source_that_cannot_be_read_is_skipped() {
        let mut b = bundle("unreadable");
        let missing = b.dir().join("no-such-source");
        assert_eq!(b.add_file("kind-logs__x.log", "kind export logs", &missing).unwrap(), None);
        assert_eq!(b.skipped()[0].name, "kind-logs__x.log");
        assert!(b.skipped()[0].reason.starts_with("could not be read: "), "{:?}", b.skipped());
    }
}
