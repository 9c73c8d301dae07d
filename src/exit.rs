//! The exit-code table. Stable: CI scripts rely on these numbers.
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | success: every scenario, check or expectation held |
//! | 1 | a scenario (or verification) failed: the system under test misbehaved |
//! | 2 | usage or input error: malformed scenario, missing file, unknown field or version; nothing was executed |
//! | 3 | missing prerequisite or infrastructure error: Docker, a tool, the Kyverno CLI, a cluster call, a local component that exited, a webhook that could not be called |

/// A process exit code with a documented meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Exit {
    /// 0: everything held.
    Success = 0,
    /// 1: a scenario or an expectation failed.
    Failed = 1,
    /// 2: bad usage or bad input; nothing was executed.
    Input = 2,
    /// 3: a prerequisite is missing or the infrastructure failed.
    Infra = 3,
}

impl Exit {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
