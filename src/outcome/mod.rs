//! The outcome engine: expectation model, pod verification and Kyverno denial parsing.

pub mod check;
pub mod denial;
pub mod expect;
pub mod hint;
pub mod pod;
pub mod pods;
pub mod security_context;
