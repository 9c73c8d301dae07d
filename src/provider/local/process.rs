//! Component processes of a local stack: started with a clean, explicit environment, each in its own
//! process group, dying with kyvtel (`PR_SET_PDEATHSIG`), output to a run-private log; stopped newest
//! first with SIGTERM, SIGCONT (a stopped process ignores SIGTERM), then SIGKILL after a grace period.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::plan::providers::local::components::Spawn;
use crate::plan::providers::local::op::StackStart;

/// How long a component gets to stop after SIGTERM before SIGKILL (facts.md §7: ≥ 15 s).
pub const GRACE: Duration = Duration::from_secs(15);

/// A running component.
#[derive(Debug)]
pub struct Running {
    /// Its name.
    pub name: String,
    /// Its log file.
    pub log: PathBuf,
    child: Child,
}

impl Running {
    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while running, else how it ended.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(s)) => Some(s.to_string()),
            Err(e) => Some(e.to_string()),
        }
    }
}

/// Starts `s`.
///
/// # Errors
/// The log cannot be created or the program cannot be started.
pub fn spawn(s: &Spawn) -> Result<Running, String> {
    if let Some(d) = s.log.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log = open_log(&s.log)?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut c = Command::new(&s.program);
    c.args(&s.args).env_clear().stdin(Stdio::null()).stdout(log).stderr(err);
    if let Some(path) = std::env::var_os("PATH") {
        c.env("PATH", path);
    }
    c.envs(s.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = c.spawn().map_err(|e| format!("start {} ({}): {e}", s.name, s.program.display()))?;
    Ok(Running { name: s.name.clone(), log: s.log.clone(), child })
}

/// The last `n` non-empty lines of a log file, redacted.
#[must_use]
pub fn log_tail(p: &Path, n: usize) -> String {
    let text = strip_ansi(&std::fs::read_to_string(p).unwrap_or_default());
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    crate::report::redact::redact(&lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// `s` without ANSI escape sequences (`ESC [ ... letter`: Kyverno colours its log when it believes
/// it writes to a terminal).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A Go crash in a log: the `panic:` (or `fatal error:`) line and where it happened: the first frame
/// outside Go's runtime after the trace's last `panic(` call (a recovered and re-raised panic first
/// shows the handler's frames), e.g. Telepresence 2.20.2's `mutator/watcher.go:714`; redacted.
#[must_use]
pub fn crash(p: &Path) -> Option<String> {
    let text = std::fs::read_to_string(p).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "))?;
    let from = lines[at..].iter().rposition(|l| l.starts_with("panic(")).map_or(at, |i| at + i);
    let frame = lines[from..]
        .iter()
        // A frame's location line starts with a tab (interleaved log lines that name a .go file do not).
        .filter_map(|l| l.strip_prefix('\t'))
        .find(|l| l.contains(".go:") && !l.starts_with("runtime/") && !l.contains("/src/runtime/"));
    let mut out = lines[at].to_string();
    if let Some(f) = frame {
        out.push_str(&format!(" (at {})", f.split_whitespace().next().unwrap_or(f)));
    }
    Some(crate::report::redact::redact(&out))
}

fn open_log(p: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(p)
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// How a stop went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The component.
    pub name: String,
    /// Whether SIGKILL was needed.
    pub killed: bool,
}

/// Stops `r`: SIGTERM and SIGCONT to its process group, SIGKILL after `grace`.
pub fn stop(mut r: Running, grace: Duration) -> Stopped {
    let pgid = r.child.id() as libc::pid_t;
    if r.exited().is_some() {
        return Stopped { name: r.name, killed: false };
    }
    // SAFETY: signalling our own child's process group.
    unsafe {
        libc::kill(-pgid, libc::SIGTERM);
        libc::kill(-pgid, libc::SIGCONT);
    }
    let deadline = Instant::now().checked_add(grace);
    while deadline.is_some_and(|d| Instant::now() < d) {
        if r.exited().is_some() {
            return Stopped { name: r.name, killed: false };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = r.child.wait();
    Stopped { name: r.name, killed: true }
}

/// Whether `pid` is stopped by a signal: state `T` in `/proc/<pid>/stat` (proc(5); the state
/// follows the command name's closing parenthesis).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('T')))
        .unwrap_or(false)
}

/// The components of a run, shared between the executor and the session's last-resort cleanup,
/// and how the current cell's stack started.
#[derive(Debug, Clone, Default)]
pub struct Table {
    running: Arc<Mutex<Vec<Running>>>,
    warm: Arc<std::sync::atomic::AtomicBool>,
}

impl Table {
    /// Adds a started component.
    pub fn push(&self, r: Running) {
        self.lock().push(r);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records how the current stack started.
    pub fn set_start(&self, start: StackStart) {
        self.warm.store(start == StackStart::Warm, std::sync::atomic::Ordering::SeqCst);
    }

    /// How the current stack started (cold until a snapshot is restored).
    #[must_use]
    pub fn start(&self) -> StackStart {
        if self.warm.load(std::sync::atomic::Ordering::SeqCst) { StackStart::Warm } else { StackStart::Cold }
    }

    /// The process id of the running component `name`.
    #[must_use]
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.lock().iter().find(|r| r.name == name).map(Running::pid)
    }

    /// Removes and returns the component `name`.
    #[must_use]
    pub fn take(&self, name: &str) -> Option<Running> {
        let mut v = self.lock();
        v.iter().position(|r| r.name == name).map(|i| v.remove(i))
    }

    /// The components that have exited, with how.
    #[must_use]
    pub fn dead(&self) -> Vec<(String, String)> {
        self.lock().iter_mut().filter_map(|r| r.exited().map(|s| (r.name.clone(), s))).collect()
    }

    /// The components stopped by a signal (SIGSTOP): alive, answering nothing.
    #[must_use]
    pub fn stopped(&self) -> Vec<String> {
        self.lock().iter().filter(|r| is_stopped(r.pid())).map(|r| r.name.clone()).collect()
    }

    /// Each component that has exited, with how, and its log's tail (redacted), one line each.
    #[must_use]
    pub fn dead_report(&self) -> Vec<String> {
        self.lock()
            .iter_mut()
            .filter_map(|r| {
                r.exited().map(|how| match crash(&r.log) {
                    Some(c) => format!("{} ({how}) crashed: {c}; its log ends: {}", r.name, log_tail(&r.log, 3)),
                    None => format!("{} ({how}); its log ends: {}", r.name, log_tail(&r.log, 5)),
                })
            })
            .collect()
    }

    /// Each component stopped by a signal (it hangs), with its log's last line, one line each.
    #[must_use]
    pub fn hung_report(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|r| is_stopped(r.pid()))
            .map(|r| {
                format!(
                    "{} is stopped by a signal (pid {}, state T); its log ends: {}",
                    r.name,
                    r.pid(),
                    log_tail(&r.log, 1)
                )
            })
            .collect()
    }

    /// Why the stack is broken, in one line: `component exited: ...` and `component hangs: ...` (a
    /// component that exits because another one hangs, Kyverno without its API server, names both);
    /// `None` while every component runs.
    #[must_use]
    pub fn failure_report(&self) -> Option<String> {
        let mut parts = Vec::new();
        let dead = self.dead_report();
        if !dead.is_empty() {
            parts.push(format!("component exited: {}", dead.join("; ")));
        }
        let hung = self.hung_report();
        if !hung.is_empty() {
            parts.push(format!("component hangs: {}", hung.join("; ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The components that exited or hang: the stack is broken.
    #[must_use]
    pub fn broken(&self) -> Vec<String> {
        let mut names: Vec<String> = self.dead().into_iter().map(|(n, _)| n).collect();
        names.extend(self.stopped());
        names
    }

    /// Stops everything still running, newest first.
    pub fn stop_all(&self, grace: Duration) -> Vec<Stopped> {
        let all: Vec<Running> = std::mem::take(&mut *self.lock());
        all.into_iter().rev().map(|r| stop(r, grace)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(name: &str, script: &str, log: &Path) -> Spawn {
        Spawn {
            name: name.into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("ONLY".into(), "this".into())],
            log: log.into(),
        }
    }

    /// Waits (up to 30 s) until `log` has output: a loaded machine starts a shell late.
    fn wait_for_output(log: &Path) {
        let t0 = Instant::now();
        while std::fs::read_to_string(log).unwrap_or_default().is_empty() && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_component_sees_only_its_environment_and_stops_on_sigterm() {
        let dir = std::env::temp_dir().join(format!("kyvtel-proc-{}", std::process::id()));
        let log = dir.join("a.log");
        // SAFETY: test-only; set before the child starts.
        unsafe { std::env::set_var("KYVTEL_TEST_LEAK", "leaked") };
        let r = spawn(&sh("a", "echo ONLY=$ONLY LEAK=$KYVTEL_TEST_LEAK; exec sleep 30", &log)).unwrap();
        let pid = r.pid();
        // Stop it only once the shell has written its line (a loaded machine starts it late).
        wait_for_output(&log);
        let s = stop(r, Duration::from_secs(5));
        assert!(!s.killed, "sleep stops on SIGTERM");
        // SAFETY: probing a pid.
        assert_ne!(unsafe { libc::kill(pid as i32, 0) }, 0, "the process is gone");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("ONLY=this LEAK=\n") || text.contains("ONLY=this LEAK="), "{text}");
        assert!(!text.contains("leaked"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stopped_or_stubborn_component_is_killed_after_the_grace_period() {
        let dir = std::env::temp_dir().join(format!("kyvtel-proc2-{}", std::process::id()));
        let log = dir.join("b.log");
        let r = spawn(&sh("b", "trap '' TERM; echo trapped; while :; do sleep 0.1; done", &log)).unwrap();
        // Only once SIGTERM is ignored (a loaded machine starts the shell late).
        wait_for_output(&log);
        // SAFETY: stopping our own child.
        unsafe { libc::kill(r.pid() as i32, libc::SIGSTOP) };
        let t0 = Instant::now();
        let s = stop(r, Duration::from_millis(700));
        assert!(s.killed);
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_go_crash_is_named_by_its_panic_line_and_first_frame_outside_the_runtime() {
        let dir = std::env::temp_dir().join(format!("kyvtel-proc4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tm.log");
        // Abridged from Telepresence 2.20.2's traffic-manager log (facts.md §7, the Service-order trap).
        let text = "starting\npanic: runtime error: invalid memory address or nil pointer dereference [recovered]\n\
                    goroutine 140 [running]:\nk8s.io/apimachinery/pkg/util/runtime.handleCrash(...)\n\
                    \tk8s.io/apimachinery@v0.31.1/pkg/util/runtime/runtime.go:89 +0x1\n\
                    panic({0x201edc0?, 0x3c12b40?})\n\truntime/panic.go:860 +0x13a\n\
                    github.com/telepresenceio/telepresence/v2/cmd/traffic/cmd/manager/mutator.(*watcher).x(...)\n\
                    \tgithub.com/telepresenceio/telepresence/v2@v2.20.2/cmd/traffic/cmd/manager/mutator/watcher.go:714 +0x42\n";
        std::fs::write(&log, text).unwrap();
        let c = crash(&log).unwrap();
        assert!(c.starts_with("panic: runtime error: invalid memory address"), "{c}");
        assert!(c.ends_with("mutator/watcher.go:714)"), "{c}");
        std::fs::write(&log, "no crash here\n").unwrap();
        assert_eq!(crash(&log), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_log_tail_has_no_colour_codes() {
        assert_eq!(strip_ansi("\u{1b}[90m2026\u{1b}[0m \u{1b}[34mTRC\u{1b}[0m ok"), "2026 TRC ok");
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn a_stopped_component_is_reported_hung_until_it_continues() {
        let dir = std::env::temp_dir().join(format!("kyvtel-hung-{}", std::process::id()));
        let table = Table::default();
        table.push(spawn(&sh("sleeper", "echo up; sleep 30", &dir.join("sleeper.log"))).unwrap());
        let pid = table.pid("sleeper").unwrap() as i32;
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let hung = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !table.hung_report().is_empty()
        });
        assert!(hung, "SIGSTOP is seen");
        assert!(table.hung_report()[0].starts_with("sleeper is stopped by a signal"), "{:?}", table.hung_report());
        assert_eq!(table.broken(), ["sleeper"]);
        assert!(table.dead_report().is_empty());
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let resumed = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            table.hung_report().is_empty()
        });
        assert!(resumed);
        let stopped = table.stop_all(Duration::from_secs(5));
        assert!(stopped.iter().all(|s| !s.killed));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_table_stops_newest_first() {
        let dir = std::env::temp_dir().join(format!("kyvtel-proc3-{}", std::process::id()));
        let t = Table::default();
        for n in ["first", "second"] {
            t.push(spawn(&sh(n, "exec sleep 30", &dir.join(format!("{n}.log")))).unwrap());
        }
        let order: Vec<String> = t.stop_all(Duration::from_secs(5)).into_iter().map(|s| s.name).collect();
        assert_eq!(order, ["second", "first"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
