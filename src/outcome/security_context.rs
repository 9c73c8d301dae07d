//! Comparing an expected securityContext (`exact` or `subset`) with the one a pod carries.
//!
//! Semantics, field by field:
//! - scalars are typed: `1000` does not match `"1000"`, `true` does not match `"true"`;
//! - lists (`capabilities.add`, `capabilities.drop`, `supplementalGroups`) compare as sets;
//! - an empty list or map counts as absent, on both sides: the API server drops `drop: []`
//!   (`omitempty`), so an expected `drop: []` matches a pod without `drop`, and the reverse;
//! - maps (`capabilities`, `seccompProfile`, `seLinuxOptions`) are compared field by field, and
//!   each leaf is reported as its own [`Check`] (`securityContext.seccompProfile.type`);
//! - `exact` also reports every field the pod has and the expectation lacks, as a failure with
//!   `expected: null`.

use serde_json::{Map, Value};

use super::check::Check;
use super::expect::SecurityContextMatch;

/// Compares `actual` (the `securityContext` value, `None` when absent) with `expected`, reporting
/// every field under `securityContext.` for `target` (`pod`, `container/<name>`, ...).
///
/// ```
/// use kyvtel::outcome::expect::SecurityContextMatch;
/// use kyvtel::outcome::security_context::compare;
/// use serde_json::json;
///
/// let expected: SecurityContextMatch =
///     serde_json::from_value(json!({"exact": {"runAsUser": 1000, "capabilities": {"drop": []}}})).unwrap();
/// let checks = compare("container/traffic-agent", &expected, Some(&json!({"runAsUser": 1000})));
/// assert!(checks.iter().all(|c| c.ok));
/// assert_eq!(checks[0].field, "securityContext.runAsUser");
///
/// let checks = compare("container/traffic-agent", &expected, Some(&json!({"runAsUser": "1000"})));
/// assert!(!checks[0].ok, "typed: 1000 is not \"1000\"");
/// ```
#[must_use]
pub fn compare(target: &str, expected: &SecurityContextMatch, actual: Option<&Value>) -> Vec<Check> {
    let (fields, exact) = match expected {
        SecurityContextMatch::Exact(m) => (m, true),
        SecurityContextMatch::Subset(m) => (m, false),
    };
    let mut out = Vec::new();
    let cmp = Comparison { target, exact };
    cmp.map(&mut out, "securityContext", fields, actual);
    out
}

struct Comparison<'a> {
    target: &'a str,
    exact: bool,
}

impl Comparison<'_> {
    fn push(&self, out: &mut Vec<Check>, field: String, expected: Value, actual: Option<&Value>, ok: bool) {
        out.push(Check::new(self.target, field, expected, actual.cloned().unwrap_or(Value::Null), ok));
    }

    /// Compares the expected map `fields` with `actual` (which should be a map) under `prefix`.
    fn map(&self, out: &mut Vec<Check>, prefix: &str, fields: &Map<String, Value>, actual: Option<&Value>) {
        let actual_map = actual.and_then(Value::as_object);
        for (key, want) in fields {
            let field = format!("{prefix}.{key}");
            let have = actual_map.and_then(|m| m.get(key));
            match want {
                Value::Object(inner) if !inner.is_empty() => match have {
                    // A scalar or list where a map is expected: one failed check, no recursion.
                    Some(h) if !h.is_object() && !h.is_null() => self.push(out, field, want.clone(), have, false),
                    _ => self.map(out, &field, inner, have),
                },
                Value::Object(_) => {
                    // An expected empty map: absent (or empty) matches; `subset` accepts any map.
                    let ok = is_absent(have) || (!self.exact && have.is_some_and(Value::is_object));
                    self.push(out, field, want.clone(), have, ok);
                }
                _ => self.push(out, field, want.clone(), have, same(want, have)),
            }
        }
        if let Some(m) = actual_map.filter(|_| self.exact) {
            for (key, have) in m.iter().filter(|(k, _)| !fields.contains_key(*k)) {
                self.unexpected(out, format!("{prefix}.{key}"), have);
            }
        }
    }

    /// Reports a field `exact` does not allow; empty lists and maps count as absent.
    fn unexpected(&self, out: &mut Vec<Check>, field: String, have: &Value) {
        match have {
            v if is_absent(Some(v)) => {}
            Value::Object(m) => {
                for (key, inner) in m {
                    self.unexpected(out, format!("{field}.{key}"), inner);
                }
            }
            _ => self.push(out, field, Value::Null, Some(have), false),
        }
    }
}

/// Whether a value counts as absent: missing, `null`, `[]`, or a map of absent values (`{}`,
/// `{drop: []}`).
fn is_absent(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(m)) => m.values().all(|x| is_absent(Some(x))),
        Some(_) => false,
    }
}

/// Whether a non-map expected value matches: typed equality, lists as sets, empty as absent.
fn same(want: &Value, have: Option<&Value>) -> bool {
    if is_absent(Some(want)) || is_absent(have) {
        return is_absent(Some(want)) && is_absent(have);
    }
    match (want, have) {
        (Value::Array(w), Some(Value::Array(h))) => w.iter().all(|x| h.contains(x)) && h.iter().all(|x| w.contains(x)),
        (w, Some(h)) => w == h,
        (_, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    fn expect(v: Value) -> SecurityContextMatch {
        serde_json::from_value(v).expect("a valid SecurityContextMatch")
    }

    /// (field, ok) pairs, in report order.
    fn outcome(checks: &[Check]) -> Vec<(String, bool)> {
        checks.iter().map(|c| (c.field.clone(), c.ok)).collect()
    }

    #[rstest]
    #[case::same_order(json!({"add": ["SYS_PTRACE", "NET_ADMIN"]}), json!({"add": ["SYS_PTRACE", "NET_ADMIN"]}), true)]
    #[case::other_order(json!({"add": ["SYS_PTRACE", "NET_ADMIN"]}), json!({"add": ["NET_ADMIN", "SYS_PTRACE"]}), true)]
    #[case::missing_one(json!({"add": ["SYS_PTRACE", "NET_ADMIN"]}), json!({"add": ["NET_ADMIN"]}), false)]
    #[case::one_more(json!({"add": ["NET_ADMIN"]}), json!({"add": ["NET_ADMIN", "SYS_PTRACE"]}), false)]
    #[case::empty_drop_vs_absent(json!({"drop": []}), json!({}), true)]
    #[case::absent_drop_vs_empty(json!({}), json!({"drop": []}), true)]
    #[case::empty_drop_vs_all(json!({"drop": []}), json!({"drop": ["ALL"]}), false)]
    #[case::all_vs_lowercase(json!({"drop": ["ALL"]}), json!({"drop": ["all"]}), false)]
    fn capabilities_compare_as_sets_and_empty_as_absent(#[case] want: Value, #[case] have: Value, #[case] ok: bool) {
        let e = expect(json!({"exact": {"capabilities": want}}));
        let checks = compare("container/c", &e, Some(&json!({"capabilities": have})));
        assert_eq!(checks.iter().all(|c| c.ok), ok, "{checks:#?}");
    }

    #[rstest]
    #[case::number_vs_string(json!(1000), json!("1000"), false)]
    #[case::bool_vs_string(json!(true), json!("true"), false)]
    #[case::number(json!(1000), json!(1000), true)]
    #[case::bool(json!(false), json!(false), true)]
    #[case::other_number(json!(1000), json!(1001), false)]
    fn scalars_are_typed(#[case] want: Value, #[case] have: Value, #[case] ok: bool) {
        let e = expect(json!({"subset": {"runAsUser": want}}));
        let checks = compare("pod", &e, Some(&json!({"runAsUser": have.clone()})));
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].ok, ok);
        assert_eq!(checks[0].actual, have);
    }

    #[test]
    fn nested_maps_are_compared_leaf_by_leaf() {
        let e = expect(json!({"exact": {"seccompProfile": {"type": "RuntimeDefault"}}}));
        let checks = compare("pod", &e, Some(&json!({"seccompProfile": {"type": "Unconfined"}})));
        assert_eq!(outcome(&checks), vec![("securityContext.seccompProfile.type".into(), false)]);
        assert_eq!(checks[0].expected, json!("RuntimeDefault"));
        assert_eq!(checks[0].actual, json!("Unconfined"));

        let checks =
            compare("pod", &e, Some(&json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})));
        assert_eq!(
            outcome(&checks),
            vec![
                ("securityContext.seccompProfile.type".into(), false),
                ("securityContext.seccompProfile.localhostProfile".into(), false)
            ]
        );
    }

    #[test]
    fn exact_reports_extra_fields_and_subset_does_not() {
        let have = json!({"runAsUser": 1000, "privileged": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}});
        let exact = compare("container/c", &expect(json!({"exact": {"runAsUser": 1000}})), Some(&have));
        assert_eq!(
            outcome(&exact),
            vec![
                ("securityContext.runAsUser".into(), true),
                ("securityContext.privileged".into(), false),
                ("securityContext.capabilities.add".into(), false),
            ],
            "an extra empty `drop` is not reported"
        );
        assert_eq!(exact[1].expected, Value::Null);
        let subset = compare("container/c", &expect(json!({"subset": {"runAsUser": 1000}})), Some(&have));
        assert_eq!(outcome(&subset), vec![("securityContext.runAsUser".into(), true)]);
    }

    #[test]
    fn absent_context_reports_every_expected_field_as_null() {
        let e = expect(json!({"exact": {"runAsNonRoot": true, "capabilities": {"add": ["NET_ADMIN"], "drop": []}}}));
        let checks = compare("container/traffic-agent", &e, None);
        assert_eq!(
            outcome(&checks),
            vec![
                ("securityContext.runAsNonRoot".into(), false),
                ("securityContext.capabilities.add".into(), false),
                ("securityContext.capabilities.drop".into(), true),
            ]
        );
        assert!(checks.iter().all(|c| c.actual.is_null() && c.target == "container/traffic-agent"));
    }

    #[test]
    fn scalar_where_a_map_is_expected_fails_once() {
        let e = expect(json!({"exact": {"capabilities": {"drop": ["ALL"]}}}));
        let checks = compare("pod", &e, Some(&json!({"capabilities": "ALL"})));
        assert_eq!(outcome(&checks), vec![("securityContext.capabilities".into(), false)]);
    }

    #[test]
    fn expected_empty_map() {
        let exact = expect(json!({"exact": {"capabilities": {}}}));
        assert!(compare("pod", &exact, Some(&json!({})))[0].ok);
        assert!(!compare("pod", &exact, Some(&json!({"capabilities": {"drop": ["ALL"]}})))[0].ok);
        let subset = expect(json!({"subset": {"capabilities": {}}}));
        assert!(compare("pod", &subset, Some(&json!({"capabilities": {"drop": ["ALL"]}})))[0].ok);
    }
}
