//! Versions and version requirements (`>=2.29`, `<2.22`, `>=2.22, <2.30`) for pins and `when:` conditions.

use std::cmp::Ordering;
use std::fmt;

/// A dotted numeric version; a leading `v` is accepted and ignored (`v1.19.0` == `1.19.0`).
/// Trailing zero parts do not count: `2.29` == `2.29.0`.
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// Parses `2.32.1`, `v1.35.8` or `2.29`.
    pub fn parse(s: &str) -> Option<Version> {
        let t = s.trim().trim_start_matches('v');
        if t.is_empty() {
            return None;
        }
        t.split('.').map(|p| p.parse::<u64>().ok()).collect::<Option<Vec<_>>>().map(Version)
    }

    fn part(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n).map(|i| self.part(i).cmp(&other.part(i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// A conjunction of comparisons, e.g. `>=2.22, <2.30`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReq {
    text: String,
    clauses: Vec<(Op, Version)>,
}

impl VersionReq {
    /// Parses a requirement; clauses are separated by `,` or whitespace.
    pub fn parse(s: &str) -> Result<VersionReq, String> {
        let mut clauses = Vec::new();
        for raw in s.split([',', ' ']).filter(|c| !c.trim().is_empty()) {
            let c = raw.trim();
            let (op, rest) =
                [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt), ("==", Op::Eq), ("=", Op::Eq)]
                    .iter()
                    .find_map(|(p, op)| c.strip_prefix(p).map(|r| (*op, r)))
                    .unwrap_or((Op::Eq, c));
            let v = Version::parse(rest)
                .ok_or_else(|| format!("invalid version requirement `{s}`: `{c}` is not a version"))?;
            clauses.push((op, v));
        }
        if clauses.is_empty() {
            return Err(format!("invalid version requirement `{s}`: it is empty"));
        }
        Ok(VersionReq { text: s.to_string(), clauses })
    }

    /// Whether `v` satisfies every clause.
    #[must_use]
    pub fn matches(&self, v: &Version) -> bool {
        self.clauses.iter().all(|(op, want)| match op {
            Op::Ge => v >= want,
            Op::Gt => v > want,
            Op::Le => v <= want,
            Op::Lt => v < want,
            Op::Eq => v == want,
        })
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically_and_ignores_v() {
        assert!(Version::parse("2.10.0").unwrap() > Version::parse("v2.9.9").unwrap());
        assert_eq!(Version::parse("2.29").unwrap(), Version::parse("2.29.0").unwrap());
        assert!(Version::parse("2.x").is_none());
    }

    #[test]
    fn requirements_combine_clauses() {
        let r = VersionReq::parse(">=2.22, <2.30").unwrap();
        assert!(r.matches(&Version::parse("2.22.0").unwrap()));
        assert!(r.matches(&Version::parse("2.29.9").unwrap()));
        assert!(!r.matches(&Version::parse("2.30.0").unwrap()));
        assert!(!r.matches(&Version::parse("2.21.9").unwrap()));
        assert!(VersionReq::parse(">=two").is_err());
    }
}
