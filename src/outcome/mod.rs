//! The outcome engine: expectation model, pod verification and Kyverno denial parsing.

pub mod expect;
