//! kyvtel: proves, on a real cluster, whether Telepresence still works under strict Kyverno
//! policies, and what exactly it takes.
//!
//! The modules follow the data flow: [`scenario`] (model and load) → [`plan`] (ordered typed
//! steps, pure and printable) → [`run`] (providers, tools, kube) → [`outcome`] (assertions) →
//! [`report`]. [`cli`] wires commands to them; [`exit`] and [`error`] hold the exit codes and errors.

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
pub mod tools;
pub mod yaml;

pub use error::{Error, Result};
pub use exit::Exit;
