//! The result of judging a pod: one [`Check`] per compared field, gathered into a [`Verdict`].

use serde::Serialize;
use serde_json::Value;

/// One compared field. Every field is reported, held or not, so that JSON output is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was judged: `pod`, `container/<name>` or `initContainer/<name>`.
    pub target: String,
    /// The field path, e.g. `securityContext.runAsUser`, `containers` or `present`.
    pub field: String,
    /// The expected value (`null` for a field that must not be there).
    pub expected: Value,
    /// The actual value (`null` when absent).
    pub actual: Value,
    /// Whether the field holds.
    pub ok: bool,
    /// A sentence for people, when the bare values are not enough (e.g. `traffic-agent was not injected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The pod's name; set only when several pods are judged together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl Check {
    /// A check without note or pod name.
    #[must_use]
    pub fn new(
        target: impl Into<String>,
        field: impl Into<String>,
        expected: impl Into<Value>,
        actual: impl Into<Value>,
        ok: bool,
    ) -> Self {
        Check {
            target: target.into(),
            field: field.into(),
            expected: expected.into(),
            actual: actual.into(),
            ok,
            note: None,
            pod: None,
        }
    }

    /// The same check with a note for people.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The verdict on one pod (or several): `passed` when every check holds.
///
/// A verdict without checks passes vacuously; callers that need at least one expectation must
/// check [`Verdict::checks`] themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Whether every check holds.
    pub passed: bool,
    /// Every check, in the order the expectations list them.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// The verdict over `checks`.
    #[must_use]
    pub fn from_checks(checks: Vec<Check>) -> Self {
        Verdict { passed: checks.iter().all(|c| c.ok), checks }
    }

    /// The checks that do not hold.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}
