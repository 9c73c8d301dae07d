//! What the injection model covers: the versions it was verified against a real injector for, and
//! the fields it does not predict (`not_modelled.yaml`, the one place a drift is explained).

use serde::Deserialize;

use super::compare::Difference;
use crate::scenario::version::{Version, VersionReq};

/// The Telepresence versions whose real injector the differential tests compare the model with
/// (`tests/model_differential.rs`: the versions the local provider builds; facts.md §7).
pub const VERIFIED: [&str; 2] = ["2.20.2", "2.31.0"];

/// The note `check` prints for a version the differential tests do not cover.
pub const NOT_VERIFIED: &str = "model not verified against a real injector for this version";

/// One field the model does not predict.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotModelled {
    /// A JSON pointer into the pod; `*` matches one segment.
    pub path: String,
    /// The Telepresence versions it applies to.
    pub telepresence: String,
    /// Why, citing facts.md.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    entries: Vec<NotModelled>,
}

/// The committed file.
pub const FILE: &str = include_str!("not_modelled.yaml");

/// Every entry of [`FILE`].
#[must_use]
pub fn not_modelled() -> Vec<NotModelled> {
    serde_saphyr::from_str::<File>(FILE).map(|f| f.entries).unwrap_or_else(|e| unreachable!("not_modelled.yaml: {e}"))
}

impl NotModelled {
    /// Whether the entry applies to `version`.
    #[must_use]
    pub fn applies_to(&self, version: &Version) -> bool {
        VersionReq::parse(&self.telepresence).is_ok_and(|r| r.matches(version))
    }

    /// Whether the entry covers `pointer` (`*` matches one segment; a prefix covers its fields).
    #[must_use]
    pub fn covers(&self, pointer: &str) -> bool {
        let want: Vec<&str> = self.path.split('/').collect();
        let got: Vec<&str> = pointer.split('/').collect();
        got.len() >= want.len() && want.iter().zip(&got).all(|(w, g)| *w == "*" || w == g)
    }
}

/// The entries that apply to `version`.
#[must_use]
pub fn not_modelled_for(version: &Version) -> Vec<NotModelled> {
    not_modelled().into_iter().filter(|e| e.applies_to(version)).collect()
}

/// Whether the differential tests verified the model for `version`.
#[must_use]
pub fn verified(version: &Version) -> bool {
    VERIFIED.iter().any(|v| Version::parse(v).as_ref() == Some(version))
}

/// Where committed drift records are read from, under the repository root: a kind run's
/// `<scenario>-model-drift.json`, copied there, confirms the model for its version.
pub const OBSERVED_DIR: &str = "scenarios/observed";

/// The drift-record file under `dir` that confirms the model at `version`: records of a kind run of
/// that version, every one without an unexplained difference.
#[must_use]
pub fn confirmed_by(dir: &std::path::Path, version: &Version) -> Option<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
    files.sort();
    files.into_iter().filter(|p| p.to_string_lossy().ends_with("-model-drift.json")).find(|p| {
        let Ok(text) = std::fs::read_to_string(p) else { return false };
        let Ok(serde_json::Value::Array(records)) = serde_json::from_str::<serde_json::Value>(&text) else {
            return false;
        };
        let ours: Vec<_> = records
            .iter()
            .filter(|r| {
                r["provider"] == "kind"
                    && Version::parse(r["telepresence"].as_str().unwrap_or_default()).as_ref() == Some(version)
            })
            .collect();
        !ours.is_empty() && ours.iter().all(|r| r["differences"].as_array().is_some_and(Vec::is_empty))
    })
}

/// The entry of `entries` (those for the run's version) that explains `difference`, if one does.
#[must_use]
pub fn explanation<'a>(entries: &'a [NotModelled], difference: &Difference) -> Option<&'a NotModelled> {
    entries.iter().find(|e| e.covers(&difference.path))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_committed_file_loads_and_every_entry_is_well_formed() {
        for e in not_modelled() {
            assert!(e.path.starts_with('/'), "{e:?}");
            assert!(VersionReq::parse(&e.telepresence).is_ok(), "{e:?}");
            assert!(e.reason.contains("facts.md"), "a reason cites facts.md: {e:?}");
        }
    }

    #[test]
    fn patterns_match_segments_and_prefixes() {
        let e =
            NotModelled { path: "/spec/containers/*/env".into(), telepresence: ">=2.20".into(), reason: String::new() };
        assert!(e.covers("/spec/containers/1/env"));
        assert!(e.covers("/spec/containers/1/env/0/value"));
        assert!(!e.covers("/spec/containers/1/envFrom"));
        assert!(!e.covers("/spec/containers"));
        assert!(e.applies_to(&Version::parse("2.31.0").unwrap()));
        assert!(!e.applies_to(&Version::parse("2.19.1").unwrap()));
        let d = Difference { path: "/spec/containers/0/env".into(), model: Value::Null, live: Value::Null };
        assert!(explanation(std::slice::from_ref(&e), &d).is_some());
    }

    #[test]
    fn a_committed_kind_record_without_drift_confirms_its_version() {
        let dir = std::env::temp_dir().join(format!("kyvtel-observed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = Version::parse("2.32.1").unwrap();
        assert_eq!(confirmed_by(&dir, &v), None);
        let record = |provider: &str, diffs: &str| {
            format!(r#"[{{"provider":"{provider}","telepresence":"2.32.1","differences":{diffs}}}]"#)
        };
        std::fs::write(dir.join("a-model-drift.json"), record("local", "[]")).unwrap();
        std::fs::write(dir.join("b-model-drift.json"), record("kind", r#"[{"path":"/x"}]"#)).unwrap();
        assert_eq!(confirmed_by(&dir, &v), None, "a local record or one with drift confirms nothing");
        std::fs::write(dir.join("c-model-drift.json"), record("kind", "[]")).unwrap();
        assert_eq!(confirmed_by(&dir, &v), Some(dir.join("c-model-drift.json")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_versions_the_local_provider_builds_are_verified() {
        assert!(verified(&Version::parse("2.31.0").unwrap()));
        assert!(!verified(&Version::parse("2.32.1").unwrap()));
    }
}
