//! Progress output: on a terminal, an indicatif spinner per phase with its elapsed time; on a pipe
//! or in CI (`$CI` set), one plain line when a phase starts and one when it ends. Every message is
//! redacted, as the rest of the console ([`super::console`]).

use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::redact::redact;
use super::summary::human;

/// Where plain lines go.
type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// How progress is shown.
#[derive(Clone)]
pub enum Progress {
    /// Spinners on the terminal (stderr).
    Terminal,
    /// Plain lines to a writer.
    Plain(Sink),
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Progress::Terminal => "Progress::Terminal",
            Progress::Plain(_) => "Progress::Plain",
        })
    }
}

impl Progress {
    /// Spinners when stderr is a terminal and `$CI` is unset; plain lines on stderr otherwise.
    #[must_use]
    pub fn detect() -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        if std::io::stderr().is_terminal() && !ci {
            Progress::Terminal
        } else {
            Progress::plain(Box::new(std::io::stderr()))
        }
    }

    /// Plain lines to `out`.
    #[must_use]
    pub fn plain(out: Box<dyn Write + Send>) -> Self {
        Progress::Plain(Arc::new(Mutex::new(out)))
    }

    /// Starts a phase of `scenario`.
    #[must_use]
    pub fn phase(&self, scenario: &str, name: &str) -> PhaseProgress {
        let label = format!("[{scenario}] {name}");
        let bar = match self {
            Progress::Terminal => {
                let bar = ProgressBar::new_spinner();
                let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_message(redact(&label));
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Progress::Plain(out) => {
                line(out, &format!("{label} ..."));
                None
            }
        };
        PhaseProgress { progress: self.clone(), label, started: Instant::now(), bar, done: false }
    }
}

/// Writes `text`, redacted, as one line.
fn line(out: &Sink, text: &str) {
    let mut w = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(w, "{}", redact(text));
    let _ = w.flush();
}

/// A running phase; report its end with [`PhaseProgress::finish`]. Dropped unfinished, it reports
/// itself as interrupted.
#[derive(Debug)]
pub struct PhaseProgress {
    progress: Progress,
    label: String,
    started: Instant,
    bar: Option<ProgressBar>,
    done: bool,
}

impl PhaseProgress {
    /// Ends the phase; returns its duration.
    pub fn finish(mut self, ok: bool) -> Duration {
        self.end(if ok { "ok" } else { "FAILED" })
    }

    /// Ends the line as skipped: the phase ran in part and the rest cannot run here.
    pub fn skipped(mut self) -> Duration {
        self.end("skipped")
    }

    fn end(&mut self, word: &str) -> Duration {
        self.done = true;
        let elapsed = self.started.elapsed();
        let text = format!("{} {word} in {}", self.label, human(elapsed));
        match (&self.bar, &self.progress) {
            (Some(bar), _) => bar.finish_with_message(redact(&text)),
            (None, Progress::Plain(out)) => line(out, &text),
            (None, Progress::Terminal) => {}
        }
        elapsed
    }
}

impl Drop for PhaseProgress {
    fn drop(&mut self) {
        if !self.done {
            self.end("interrupted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_are_redacted() {
        let sink = Shared::default();
        let progress = Progress::plain(Box::new(sink.clone()));
        let phase = progress.phase("s", "login with token: s3cr3t-progress");
        let _ = phase.finish(false);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("s3cr3t-progress"), "{text}");
        assert!(text.contains("[s] login with token: REDACTED ...\n"), "{text}");
        assert!(text.contains("[s] login with token: REDACTED FAILED in "), "{text}");
    }
}
