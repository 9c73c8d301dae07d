//! Executes plans on a live cluster: the [`executor`] runs a [`crate::plan::Plan`] against a
//! [`crate::kube::api::ClusterApi`] and a [`crate::tools::Runner`], with LIFO teardown on every exit
//! path. [`kube_api::KubeApi`] is the real [`crate::kube::api::ClusterApi`], on top of [`crate::kube`].

pub mod action;
pub mod cell;
pub mod drift;
pub mod executor;
pub mod failure;
pub mod kube_api;
pub mod reuse;
pub mod session;
pub mod traffic;

pub use executor::{ScenarioResult, Settings, Status, execute};
