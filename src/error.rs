//! The central error type. Every failure site carries its context (file and location, tool, phase),
//! and every error maps to one documented exit code ([`crate::exit::Exit`]).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::exit::Exit;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One problem in one input file, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Where in the file, when known.
    pub location: Option<Location>,
    /// What is wrong, in one line.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a known place.
    pub fn at(file: impl Into<PathBuf>, location: Option<Location>, message: impl Into<String>) -> Self {
        Self { file: file.into(), location, message: message.into() }
    }

    /// A problem with the file as a whole (missing, unreadable, empty).
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::at(file, None, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) => write!(f, "{}:{}:{}: {}", self.file.display(), l.line, l.column, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every error kyvtel reports. Large variants are boxed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: one or more located problems. Exit 2.
    #[error("{}", display_diagnostics(.0))]
    Input(Vec<Diagnostic>),
    /// Bad usage that has no file (a flag combination, an unknown scenario name). Exit 2.
    #[error("{0}")]
    Usage(String),
    /// A prerequisite is missing (tool, daemon, device). Exit 3.
    #[error("missing prerequisite: {0}")]
    Prerequisite(String),
    /// An external tool failed.
    #[error("{tool} failed during {phase}: {message}")]
    Tool {
        /// The tool, e.g. `helm`.
        tool: String,
        /// The phase it ran in, e.g. `install-kyverno`.
        phase: String,
        /// What went wrong, with the tool's stderr tail.
        message: String,
    },
    /// Infrastructure failed (cluster API, I/O outside the inputs). Exit 3.
    #[error("{context}: {source}")]
    Infra {
        /// What kyvtel was doing.
        context: String,
        /// The underlying cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A path that exists in the CLI but is not implemented yet. Exit 3.
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
}

fn display_diagnostics(d: &[Diagnostic]) -> String {
    d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl Error {
    /// A single located input problem.
    pub fn input(file: &Path, location: Option<Location>, message: impl Into<String>) -> Self {
        Error::Input(vec![Diagnostic::at(file, location, message)])
    }

    /// Wraps an infrastructure failure with what kyvtel was doing.
    pub fn infra(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Infra { context: context.into(), source: source.into() }
    }

    /// The documented exit code for this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Input(_) | Error::Usage(_) => Exit::Input,
            Error::Prerequisite(_) | Error::Tool { .. } | Error::Infra { .. } | Error::NotImplemented(_) => Exit::Infra,
        }
    }
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
