//! The outcome engine: pod verification and Kyverno denial parsing, judged against the scenario's
//! expectation model ([`crate::scenario::expect`]).

pub mod after_admission;
pub mod check;
pub mod denial;
pub mod expect;
pub mod hint;
pub mod pod;
pub mod pods;
pub mod security_context;
