//! `scenarios/quarantine.yaml`: scenarios whose failures are tolerated until an expiry date, each
//! with a reason. A run reports a quarantined scenario's failure as quarantined (not failed; exit 0
//! when nothing else failed). Validation refuses, at the entry's line and column: an expired entry,
//! an expiry more than [`MAX_DAYS`] ahead, a scenario the catalog lacks, a duplicate, an empty
//! reason. Today is `KYVTEL_TODAY` (`YYYY-MM-DD`) when set, else the UTC date: nothing committed
//! depends on the real date.

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::civil::Date;
use serde::Deserialize;

use crate::Result;
use crate::error::{Diagnostic, Error};

/// The file's name in a catalog directory.
pub const FILE: &str = "quarantine.yaml";

/// The furthest ahead an entry may expire: a quarantine is a short, reviewed exception.
pub const MAX_DAYS: i32 = 90;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct QuarantineFile {
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawEntry {
    scenario: String,
    reason: String,
    expires: String,
    #[serde(default)]
    issue: Option<String>,
}

/// One quarantined scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The scenario's name (every Telepresence version it runs with).
    pub scenario: String,
    /// Why its failures are tolerated.
    pub reason: String,
    /// The last day they are.
    pub expires: Date,
    /// Where the failure is tracked, if given.
    pub issue: Option<String>,
}

impl Entry {
    /// `quarantined until 2027-01-15 (reason; issue)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let issue = self.issue.as_deref().map(|i| format!("; {i}")).unwrap_or_default();
        format!("quarantined until {} ({}{issue})", self.expires, self.reason)
    }
}

/// The quarantine of a catalog (empty without a file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantine {
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
    /// The file they came from.
    pub file: Option<PathBuf>,
}

impl Quarantine {
    /// The entry that tolerates the failures of `scenario` (`name`, or `name@version` on the local
    /// provider), if any.
    #[must_use]
    pub fn tolerating(&self, scenario: &str) -> Option<&Entry> {
        let name = scenario.split_once('@').map_or(scenario, |(n, _)| n);
        self.entries.iter().find(|e| e.scenario == name)
    }
}

/// Today: `KYVTEL_TODAY` when set, else the UTC date.
///
/// # Errors
/// `KYVTEL_TODAY` is not a `YYYY-MM-DD` date.
pub fn today() -> std::result::Result<Date, String> {
    match std::env::var("KYVTEL_TODAY") {
        Ok(t) => t.parse::<Date>().map_err(|e| format!("KYVTEL_TODAY={t} is not a YYYY-MM-DD date: {e}")),
        Err(_) => Ok(k8s_openapi::jiff::Timestamp::now().to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).date()),
    }
}

/// The quarantine file of catalog `dir`, if it has one.
#[must_use]
pub fn file_of(dir: &Path) -> Option<PathBuf> {
    Some(dir.join(FILE)).filter(|f| f.is_file())
}

/// Reads and checks `path` against the catalog's scenario names `known` and `today`.
///
/// # Errors
/// [`Error::Input`] with every problem at its line and column (exit 2).
pub fn load(path: &Path, known: &[String], today: Date) -> Result<Quarantine> {
    let (file, src) = crate::input::read_arg(path)?;
    let (q, index): (QuarantineFile, _) = crate::yaml::typed(&file, &src)?;
    let mut problems = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (i, e) in q.entries.into_iter().enumerate() {
        let at = |field: &str, message: String| {
            Diagnostic::at(&file, index.value(&format!("/entries/{i}/{field}")), message)
        };
        if !known.contains(&e.scenario) {
            problems.push(at("scenario", format!("no scenario `{}` in the catalog", e.scenario)));
        }
        if entries.iter().any(|o| o.scenario == e.scenario) {
            problems.push(at("scenario", format!("`{}` is quarantined twice", e.scenario)));
        }
        if e.reason.trim().is_empty() {
            problems.push(at("reason", "give the reason its failures are tolerated".into()));
        }
        let expires = match e.expires.parse::<Date>() {
            Ok(d) => d,
            Err(err) => {
                problems.push(at("expires", format!("`{}` is not a YYYY-MM-DD date: {err}", e.expires)));
                continue;
            }
        };
        if expires < today {
            problems.push(at(
                "expires",
                format!(
                    "expired on {expires} (today is {today}): fix `{}` or renew the entry with a new reason",
                    e.scenario
                ),
            ));
        }
        let days = today.until(expires).map(|s| s.get_days()).unwrap_or(i32::MAX);
        if days > MAX_DAYS {
            problems.push(at(
                "expires",
                format!("{expires} is {days} days ahead; a quarantine lasts at most {MAX_DAYS} days (until {})", {
                    today.checked_add(k8s_openapi::jiff::Span::new().days(MAX_DAYS)).unwrap_or(today)
                }),
            ));
        }
        entries.push(Entry { scenario: e.scenario, reason: e.reason, expires, issue: e.issue });
    }
    if problems.is_empty() { Ok(Quarantine { entries, file: Some(file) }) } else { Err(Error::Input(problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("kyvtel-quarantine-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(FILE);
        std::fs::write(&f, text).unwrap();
        f
    }

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn a_current_entry_tolerates_every_version_of_its_scenario() {
        let f = write(
            "ok",
            "entries:\n  - scenario: least-privilege\n    reason: kind node image flake\n    expires: 2026-12-20\n    issue: '#42'\n",
        );
        let q = load(&f, &["least-privilege".into()], day("2026-12-04")).unwrap();
        let e = q.tolerating("least-privilege@2.31.0").unwrap();
        assert_eq!(e.describe(), "quarantined until 2026-12-20 (kind node image flake; #42)");
        assert!(q.tolerating("documented-recipe").is_none());
        // The last day still counts.
        assert!(load(&f, &["least-privilege".into()], day("2026-12-20")).is_ok());
    }

    #[test]
    fn expired_far_unknown_duplicate_and_malformed_entries_are_located() {
        let f = write(
            "bad",
            "entries:\n  - scenario: least-privilege\n    reason: r\n    expires: 2026-12-03\n  - scenario: nope\n    \
             reason: ' '\n    expires: 2027-06-01\n  - scenario: least-privilege\n    reason: r\n    expires: 2026-13-01\n",
        );
        let Err(Error::Input(d)) = load(&f, &["least-privilege".into()], day("2026-12-04")) else { panic!("refused") };
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        assert!(all.contains(":4:14") && all.contains("expired on 2026-12-03 (today is 2026-12-04)"), "{all}");
        assert!(all.contains(":5:15") && all.contains("no scenario `nope`"), "{all}");
        assert!(all.contains(":6:13") && all.contains("give the reason"), "{all}");
        assert!(all.contains(":7:14") && all.contains("179 days ahead"), "{all}");
        assert!(all.contains(":8:15") && all.contains("quarantined twice"), "{all}");
        assert!(all.contains(":10:14") && all.contains("not a YYYY-MM-DD date"), "{all}");
        let unknown =
            write("unknown", "entries:\n  - scenario: x\n    reason: r\n    expires: 2026-12-05\n    until: x\n");
        assert!(load(&unknown, &["x".into()], day("2026-12-04")).unwrap_err().to_string().contains("until"));
    }
}
