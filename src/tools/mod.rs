//! External CLIs (kind, helm, telepresence, docker, kubectl, kyverno): typed command lines, the
//! [`Runner`] seam that executes them (real or recorded), version detection and provisioning.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub mod env;
pub mod install;
pub mod runner;

/// The external programs kyvtel drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// kubernetes-sigs/kind.
    Kind,
    /// Helm.
    Helm,
    /// Telepresence CLI.
    Telepresence,
    /// Docker CLI.
    Docker,
    /// kubectl (optional).
    Kubectl,
    /// Kyverno CLI.
    Kyverno,
    /// sudo (only `sudo -n true`, to probe passwordless sudo).
    Sudo,
    /// df (only `df -Pk DIR`, for the free-disk check).
    Df,
}

impl Tool {
    /// The program name on PATH or in the tools directory.
    pub fn program(self) -> &'static str {
        match self {
            Tool::Kind => "kind",
            Tool::Helm => "helm",
            Tool::Telepresence => "telepresence",
            Tool::Docker => "docker",
            Tool::Kubectl => "kubectl",
            Tool::Kyverno => "kyverno",
            Tool::Sudo => "sudo",
            Tool::Df => "df",
        }
    }
}

/// One external command: program, arguments and the run-private environment it gets.
///
/// This is what `kyvtel plan` prints and what `kyvtel run` executes: one source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use]
pub struct CommandLine {
    /// The program.
    pub tool: Tool,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables set for this command only (e.g. `KUBECONFIG`); the rest of the
    /// environment is an allow-list chosen by the runner.
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    /// A command with no arguments yet.
    pub fn new(tool: Tool) -> Self {
        CommandLine { tool, args: Vec::new(), env: Vec::new() }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for this command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl fmt::Display for CommandLine {
    /// Shell-quoted, without the environment: `kind create cluster --name x ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool.program())?;
        for a in &self.args {
            f.write_str(" ")?;
            f.write_str(&quote(a))?;
        }
        Ok(())
    }
}

/// Quotes an argument for display when it holds shell-special characters.
pub fn quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit status; `None` when killed by a signal.
    pub status: Option<i32>,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

impl Output {
    /// How the command ended, in words: `with status 1`, `killed by a signal`.
    #[must_use]
    pub fn ended(&self) -> String {
        self.status.map_or_else(|| "killed by a signal".to_string(), |c| format!("with status {c}"))
    }

    /// Whether the command exited with status 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Why a command could not produce an [`Output`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The program is not installed or not executable.
    #[error("{0} not found (run `kyvtel tools install` or `kyvtel doctor`)")]
    NotFound(&'static str),
    /// The command did not finish in time; carries what it printed so far.
    #[error("`{command}` did not finish within {timeout:?}; last output: {last_output}")]
    Timeout {
        /// The command, as displayed.
        command: String,
        /// The limit.
        timeout: Duration,
        /// The tail of its output.
        last_output: String,
    },
    /// Spawning or waiting failed.
    #[error("`{command}`: {source}")]
    Io {
        /// The command, as displayed.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Executes external commands. The real implementation uses duct; tests use a recording double.
pub trait Runner: Send + Sync {
    /// Runs `cmd` to completion, or until `timeout`.
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError>;
}

pub mod docker;
pub mod helm;
pub mod kind;
pub mod telepresence;

/// Whether this process runs as root (uid 0), read from `/proc/self/status`; then Telepresence's
/// root daemon needs no sudo.
#[must_use]
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
