//! Executes plans on a live cluster: the [`executor`] runs a [`crate::plan::Plan`] against a
//! [`api::ClusterApi`] and a [`crate::tools::Runner`], with LIFO teardown on every exit path.

pub mod api;
pub mod executor;
pub mod traffic;

pub use executor::{ScenarioResult, Settings, Status, execute};
