//! Scenario → [`Plan`]: ordered, typed actions with timeouts, and a LIFO teardown stack.
//!
//! Building a plan is pure: no side effects, no network. `kyvtel plan` prints it and `kyvtel run`
//! executes exactly it, so the plan is the contract a reviewer reads to check a run without a cluster.

pub mod action;
pub mod build;
pub mod duration;
pub mod render;

pub use action::{Action, DenialSource, Phase, Plan, Teardown, WaitFor};
pub use build::{Options, build};
