//! Scenario → [`Plan`]: ordered, typed actions with timeouts, and a LIFO teardown stack.
//!
//! Building a plan is pure: no side effects, no network. `kyvtel plan` prints it and `kyvtel run`
//! executes exactly it, so the plan is the contract a reviewer reads to check a run without a cluster.
//! Several scenarios are grouped into [`cells`] that share a cluster and a Kyverno install.

pub mod action;
pub mod budget;
pub mod build;
pub mod cells;
mod edit;
pub mod phase;
pub mod provider;
pub mod providers;
pub mod render;
mod steps;

pub use action::{Action, DenialSource, Gather, ModelInput, Phase, Plan, Teardown, WaitFor};
pub use build::{ClusterTarget, Options, build, build_in};
pub use cells::{Cell, CellKey, group};
pub use phase::PhaseKind;
pub use provider::{LocalPaths, Provider};
