//! The console: what kyvtel prints about a run or an error goes through [`redact`] first, as the
//! report files do. Error messages carry tool output (the stderr tail of a failed command), and
//! warnings and phase lines carry error text, so every line on stderr is printed with
//! [`console_eprintln!`](crate::console_eprintln), never `eprintln!` (a test holds `src/` to that),
//! and run output on stdout with [`console_println!`](crate::console_println).
//!
//! A line that cannot be written (a closed pipe) is dropped instead of panicking.

use std::io::Write as _;

use super::redact::redact;

/// Writes `text`, redacted, and a newline to stderr.
pub fn to_stderr(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", redact(text));
}

/// Writes `text`, redacted, to stdout.
pub fn to_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(redact(text).as_bytes());
    let _ = out.flush();
}

/// `eprintln!`, redacted ([`to_stderr`]).
#[macro_export]
macro_rules! console_eprintln {
    ($($arg:tt)*) => {
        $crate::report::console::to_stderr(&::std::format!($($arg)*))
    };
}

/// `println!`, redacted ([`to_stdout`]).
#[macro_export]
macro_rules! console_println {
    ($($arg:tt)*) => {
        $crate::report::console::to_stdout(&::std::format!("{}\n", ::std::format!($($arg)*)))
    };
}

/// `print!`, redacted ([`to_stdout`]).
#[macro_export]
macro_rules! console_print {
    ($($arg:tt)*) => {
        $crate::report::console::to_stdout(&::std::format!($($arg)*))
    };
}
