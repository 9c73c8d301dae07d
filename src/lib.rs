//! kyvtel: proves, on a real cluster, whether Telepresence still works under strict Kyverno
//! policies, and what exactly it takes.
//!
//! The modules follow the data flow: [`scenario`] (model and load) → [`plan`] (ordered typed
//! steps, pure and printable) → [`run`] (providers, tools, kube) → [`outcome`] (assertions) →
//! [`report`]. [`cli`] wires commands to them; [`exit`] and [`error`] hold the exit codes and errors.
//!
//! Imports go one way, bottom first; a module never imports one above it, directly or through
//! another: [`exit`] < [`error`] < [`input`] < [`yaml`] < [`duration`] < [`names`] < [`scenario`] <
//! [`predict`] < [`outcome`] < [`report`] < [`tools`] < [`plan`] < [`kube`] < [`provider`] <
//! [`doctor`] < [`run`] < [`check`] < [`cli`]. So the scenario format holds its expectations
//! ([`scenario::expect`]); the plan holds what the local provider contributes to it
//! ([`plan::providers::local`]); [`kube::api::ClusterApi`] is every cluster operation a run needs, for
//! the local provider and the executor alike; and [`report`] (redaction, the console) sits below
//! everything that prints.

pub mod check;
pub mod cli;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod exit;
pub mod input;
pub mod kube;
pub mod names;
pub mod outcome;
pub mod plan;
pub mod predict;
pub mod provider;
pub mod report;
pub mod run;
pub mod scenario;
pub mod text;
pub mod tools;
pub mod yaml;

pub use error::{Error, Result};
pub use exit::Exit;
