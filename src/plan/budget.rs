//! The time a plan may take: each phase's budget is the sum of its actions' time limits (a wait's
//! timeout, a command's, a component's stop grace); an action without a limit of its own (one API
//! call) counts the API client's bound. A run that enters some phases ends within their budgets
//! plus the evidence gathering's and the teardown's. `kyvtel plan` prints it; the fault matrix
//! checks that a run ended within it.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::action::{Action, Plan};

/// One API call's bound, for an action with no limit of its own (the run's client enforces it).
pub const CALL: Duration = Duration::from_secs(30);

/// The bound on reading the cluster's state as evidence after a failure (every object listed in
/// one pass): an API server that hangs must not hold up the teardown.
pub const EVIDENCE_API: Duration = Duration::from_secs(60);

/// A plan's time budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Each phase's budget, in order.
    #[serde(serialize_with = "phases")]
    pub phases: Vec<(String, Duration)>,
    /// Gathering evidence after a failure.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub evidence: Duration,
    /// The whole teardown (every entry, with its fallbacks).
    #[serde(serialize_with = "crate::duration::serialize")]
    pub teardown: Duration,
}

fn phases<S: serde::Serializer>(p: &[(String, Duration)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut m = s.serialize_map(Some(p.len()))?;
    for (name, d) in p {
        m.serialize_entry(name, &crate::duration::format(*d))?;
    }
    m.end()
}

impl Budget {
    /// The budget of `plan`.
    #[must_use]
    pub fn of(plan: &Plan) -> Budget {
        let undo = |i: usize| plan.teardown.get(i).map_or(Duration::ZERO, |t| sum(&t.actions));
        let phase = |actions: &[Action]| -> Duration {
            actions
                .iter()
                .map(|a| match a {
                    Action::Undo { index } => undo(*index),
                    a => limit(a),
                })
                .sum()
        };
        Budget {
            phases: plan.phases.iter().map(|p| (p.kind.name().to_string(), phase(&p.actions))).collect(),
            evidence: EVIDENCE_API + plan.evidence.iter().map(|g| g.timeout).sum::<Duration>(),
            teardown: plan.teardown.iter().map(|t| sum(&t.actions) + sum(&t.on_failure)).sum(),
        }
    }

    /// The longest a run that enters the first `entered` phases may take, evidence and teardown
    /// included.
    #[must_use]
    pub fn entered(&self, entered: usize) -> Duration {
        self.phases.iter().take(entered).map(|(_, d)| *d).sum::<Duration>() + self.evidence + self.teardown
    }

    /// The longest any run of the plan may take.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.entered(self.phases.len())
    }
}

fn sum(actions: &[Action]) -> Duration {
    actions.iter().map(limit).sum()
}

/// An action's time limit: the sum of every `timeout` and `grace` it carries (an `only` carries
/// its action's); [`CALL`] for one that calls the API without a limit; nothing for local work.
#[must_use]
pub fn limit(a: &Action) -> Duration {
    if matches!(a, Action::WriteFile { .. } | Action::Serve { .. } | Action::StopServer { .. } | Action::Skip { .. }) {
        return Duration::ZERO;
    }
    let v = serde_json::to_value(a).unwrap_or_default();
    let mut total = Duration::ZERO;
    let mut found = false;
    walk(&v, &mut |key, value| {
        if matches!(key, "timeout" | "grace")
            && let Some(d) = value.as_str().and_then(|s| crate::duration::parse(s).ok())
        {
            total += d;
            found = true;
        }
    });
    if found { total } else { CALL }
}

fn walk(v: &Value, f: &mut impl FnMut(&str, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                f(k, x);
                walk(x, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_s_budget_sums_every_limit_and_grows_with_the_phases_entered() {
        let l = crate::scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/documented-recipe.yaml"
        )))
        .unwrap();
        let p = crate::plan::build(&l, &crate::plan::Options::default());
        let b = Budget::of(&p);
        assert_eq!(b.phases.len(), p.phases.len());
        // create-cluster is `kind create cluster` (5m) then `kind get kubeconfig`.
        let (name, first) = &b.phases[0];
        assert_eq!(name, "create-cluster");
        assert!(*first >= Duration::from_secs(300), "{first:?}");
        assert!(b.teardown > Duration::ZERO && b.evidence > Duration::ZERO);
        assert!(b.entered(1) < b.entered(2) && b.entered(p.phases.len()) == b.total());
        assert_eq!(limit(&Action::Skip { reason: "x".into() }), Duration::ZERO);
        assert_eq!(limit(&Action::RecordPods { namespace: "n".into(), selector: Default::default() }), CALL);
    }
}
