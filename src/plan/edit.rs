//! Rewrites of a built [`Plan`] that drop phases together with the teardown entries they register.
//!
//! Used to run a plan on a cluster someone else set up (an existing cluster, or the shared setup of a
//! cell), and to split a cell's shared setup out of its scenarios' plans.

use super::PhaseKind;
use super::action::{Action, Plan};

impl Plan {
    /// The plan without the named phases and without the teardown entries they register.
    ///
    /// `Action::Undo { index }` in the kept phases is renumbered so that it names the same entry;
    /// an `Undo` of an entry that was removed is dropped with it (nothing left to undo).
    #[must_use]
    pub fn without_phases(self, kinds: &[PhaseKind]) -> Plan {
        self.retain_phases(|kind| !kinds.contains(&kind))
    }

    /// The plan with only the named phases and the teardown entries they register.
    #[must_use]
    pub fn only_phases(self, kinds: &[PhaseKind]) -> Plan {
        self.retain_phases(|kind| kinds.contains(&kind))
    }

    fn retain_phases(mut self, keep: impl Fn(PhaseKind) -> bool) -> Plan {
        self.phases.retain(|p| keep(p.kind));
        // The new index of every old teardown entry, `None` when it is removed.
        let mut next = 0;
        let renumbered: Vec<Option<usize>> = self
            .teardown
            .iter()
            .map(|t| {
                keep(t.registered_by).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        self.teardown.retain(|t| keep(t.registered_by));
        for p in &mut self.phases {
            p.actions.retain_mut(|a| match a {
                Action::Undo { index } => match renumbered.get(*index).copied().flatten() {
                    Some(new) => {
                        *index = new;
                        true
                    }
                    None => false,
                },
                _ => true,
            });
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::{Options, build};
    use crate::scenario;

    fn recipe() -> Plan {
        build(&scenario::load(Path::new("scenarios/documented-recipe.yaml")).unwrap(), &Options::default())
    }

    fn undo_targets(p: &Plan) -> Vec<&str> {
        p.phases
            .iter()
            .flat_map(|ph| &ph.actions)
            .filter_map(|a| match a {
                Action::Undo { index } => Some(p.teardown[*index].label.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn removing_phases_keeps_undo_pointing_at_the_same_entry() {
        let full = recipe();
        assert_eq!(undo_targets(&full), ["leave the intercept of demo"]);
        let p = full.clone().without_phases(&[PhaseKind::CreateCluster, PhaseKind::InstallKyverno]);
        assert_eq!(undo_targets(&p), ["leave the intercept of demo"]);
        assert_eq!(p.teardown.len(), full.teardown.len() - 2);
        assert!(p.phases.iter().all(|ph| ph.kind != PhaseKind::CreateCluster && ph.kind != PhaseKind::InstallKyverno));
        assert!(
            p.teardown
                .iter()
                .all(|t| t.registered_by != PhaseKind::CreateCluster && t.registered_by != PhaseKind::InstallKyverno)
        );
    }

    #[test]
    fn an_undo_of_a_removed_entry_is_dropped() {
        let p = recipe().without_phases(&[PhaseKind::Intercept]);
        assert!(undo_targets(&p).is_empty());
        let leave = p.phases.iter().find(|ph| ph.kind == PhaseKind::Leave).unwrap();
        assert!(!leave.actions.iter().any(|a| matches!(a, Action::Undo { .. })));
    }

    #[test]
    fn only_phases_keeps_their_teardown() {
        let p = recipe().only_phases(&[PhaseKind::CreateCluster, PhaseKind::InstallKyverno]);
        let kinds: Vec<PhaseKind> = p.phases.iter().map(|ph| ph.kind).collect();
        assert_eq!(kinds, [PhaseKind::CreateCluster, PhaseKind::InstallKyverno]);
        let labels: Vec<&str> = p.teardown.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["delete the kind cluster", "uninstall Kyverno"]);
    }
}
