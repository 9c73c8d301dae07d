//! The two [`Runner`]s: [`DuctRunner`] executes real programs, [`RecordingRunner`] is the test
//! double that records command lines and answers from a script.
//!
//! # The environment a real command gets
//!
//! Nothing is inherited wholesale. A child process sees exactly:
//!
//! 1. the allow-listed variables of kyvtel's own environment, [`INHERITED`]: `PATH` (with the tools
//!    directory put first), locale, user name, temp dir, proxies, TLS trust overrides, and Docker's
//!    connection settings;
//! 2. `DOCKER_CONFIG`, set to the user's real `~/.docker` when it is not set already, so `docker` and
//!    `kind load` keep the user's registry credentials and contexts although `HOME` moves;
//! 3. the run-private defaults of [`super::env::base`]: `HOME`, `XDG_CONFIG_HOME`, `XDG_CACHE_HOME`,
//!    `XDG_DATA_HOME` under `<run>/home`, and `KUBECONFIG=<run>/kubeconfig`, so no tool can fall back
//!    to `~/.kube/config`, `~/.config/telepresence` or the user's Helm repositories;
//! 4. the [`CommandLine`]'s own `env`, which wins over everything above.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{CommandLine, Output, RunError, Runner, Tool};

/// Variables copied from kyvtel's environment into every child, when set.
pub const INHERITED: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
];

/// How many characters of each stream a timeout error carries.
const TAIL_CHARS: usize = 2000;

/// The tools directory: `$KYVTEL_TOOLS_DIR`, or `.tools/bin` relative to the working directory.
#[must_use]
pub fn default_tools_dir() -> PathBuf {
    match std::env::var_os("KYVTEL_TOOLS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(".tools/bin"),
    }
}

/// Finds `program`: first in `tools_dir`, then on `path` (a `PATH`-style list).
#[must_use]
pub fn resolve(program: &str, tools_dir: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let in_tools = tools_dir.map(|d| d.join(program)).filter(|p| is_executable(p));
    in_tools.or_else(|| path.and_then(|p| std::env::split_paths(p).map(|d| d.join(program)).find(|c| is_executable(c))))
}

/// Whether `p` is a file with an executable bit set.
#[must_use]
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs real programs with duct, in a run-private, allow-listed environment (see the module docs).
///
/// Each command runs in its own process group; on timeout the whole group is killed, and the
/// error carries the tail of what the command printed. Output is captured through files, so a
/// grandchild that keeps a pipe open cannot block the runner.
///
/// Because of the separate process group, a Ctrl-C on the terminal does not reach the child; the
/// caller stops it by its own timeout or cancellation logic.
#[derive(Debug, Clone)]
pub struct DuctRunner {
    run_dir: PathBuf,
    tools_dir: Option<PathBuf>,
    programs: BTreeMap<Tool, PathBuf>,
}

impl DuctRunner {
    /// A runner for the run directory `run_dir`, using [`default_tools_dir`].
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        DuctRunner { run_dir: run_dir.into(), tools_dir: Some(default_tools_dir()), programs: BTreeMap::new() }
    }

    /// Runs `tool` from `path` instead of resolving it (e.g. the Kyverno CLI from `$KYVERNO_BIN`).
    #[must_use]
    pub fn with_program(mut self, tool: Tool, path: PathBuf) -> Self {
        self.programs.insert(tool, path);
        self
    }

    /// Uses `dir` as the tools directory, or none (PATH only).
    #[must_use]
    pub fn with_tools_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.tools_dir = dir;
        self
    }

    /// The program `tool` resolves to, if any.
    #[must_use]
    pub fn program_path(&self, tool: Tool) -> Option<PathBuf> {
        if let Some(p) = self.programs.get(&tool) {
            return Some(p.clone());
        }
        resolve(tool.program(), self.tools_dir.as_deref(), std::env::var_os("PATH").as_deref())
    }

    /// The exact environment `cmd` would get (see the module docs).
    #[must_use]
    pub fn environment(&self, cmd: &CommandLine) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for key in INHERITED {
            if let Ok(v) = std::env::var(key) {
                env.insert((*key).to_string(), v);
            }
        }
        if let Some(tools) = &self.tools_dir {
            let abs = std::path::absolute(tools).unwrap_or_else(|_| tools.clone());
            let path = env.get("PATH").cloned().unwrap_or_default();
            let joined = if path.is_empty() { abs.display().to_string() } else { format!("{}:{path}", abs.display()) };
            env.insert("PATH".into(), joined);
        }
        // A tool run from an explicit path (e.g. a non-default Telepresence) has its directory
        // first on PATH: a precaution, so that anything it starts by name is the same version.
        // How Telepresence locates the binary of its daemons was not verified here (and sudo may
        // reset PATH for the root daemon); the binary keeps its own name for the same reason.
        if let Some(dir) = self.programs.get(&cmd.tool).and_then(|p| p.parent()).filter(|d| !d.as_os_str().is_empty()) {
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let path = env.get("PATH").cloned().unwrap_or_default();
            let joined = if path.is_empty() { abs.display().to_string() } else { format!("{}:{path}", abs.display()) };
            env.insert("PATH".into(), joined);
        }
        if !env.contains_key("DOCKER_CONFIG")
            && let Some(home) = std::env::var_os("HOME")
        {
            env.insert("DOCKER_CONFIG".into(), Path::new(&home).join(".docker").display().to_string());
        }
        for (k, v) in super::env::base(&self.run_dir).vars {
            env.insert(k, v);
        }
        for (k, v) in &cmd.env {
            env.insert(k.clone(), v.clone());
        }
        env
    }
}

static CAPTURE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Two files receiving a command's stdout and stderr, in the run directory's `.captures/` (never
/// in the system's temp directory: nothing of a run is written outside its own directories);
/// removed on drop, and the directory with the run directory.
struct Capture {
    out: PathBuf,
    err: PathBuf,
}

impl Capture {
    fn new(run_dir: &Path) -> std::io::Result<Capture> {
        let dir = run_dir.join(".captures");
        std::fs::create_dir_all(&dir)?;
        let n = CAPTURE_SEQ.fetch_add(1, Ordering::Relaxed);
        Ok(Capture { out: dir.join(format!("{n}.out")), err: dir.join(format!("{n}.err")) })
    }

    fn read(&self) -> (String, String) {
        (read_lossy(&self.out), read_lossy(&self.err))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.out);
        let _ = std::fs::remove_file(&self.err);
        // Empty once no other command is being captured; an error means another one still is.
        if let Some(dir) = self.out.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `n` characters of `s`, on a character boundary.
#[must_use]
pub fn tail(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    if count <= n {
        return s;
    }
    let skip = count - n;
    let idx = s.char_indices().nth(skip).map_or(s.len(), |(i, _)| i);
    &s[idx..]
}

/// The tail of both streams, for error messages.
#[must_use]
pub fn last_output(stdout: &str, stderr: &str) -> String {
    let mut parts = Vec::new();
    if !stdout.trim().is_empty() {
        parts.push(format!("[stdout] {}", tail(stdout.trim_end(), TAIL_CHARS)));
    }
    if !stderr.trim().is_empty() {
        parts.push(format!("[stderr] {}", tail(stderr.trim_end(), TAIL_CHARS)));
    }
    if parts.is_empty() { "(nothing)".to_string() } else { parts.join("\n") }
}

impl Runner for DuctRunner {
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError> {
        let program = self.program_path(cmd.tool).ok_or(RunError::NotFound(cmd.tool.program()))?;
        let shown = cmd.to_string();
        let io = |source| RunError::Io { command: shown.clone(), source };
        let capture = Capture::new(&self.run_dir).map_err(io)?;
        let expression = duct::cmd(&program, &cmd.args)
            .full_env(self.environment(cmd))
            .stdin_null()
            .stdout_path(&capture.out)
            .stderr_path(&capture.err)
            .unchecked()
            .before_spawn(|c| {
                c.process_group(0);
                // The command dies with kyvtel, even with `kill -9` (no PID namespace on kind or an
                // unconfined local run). It is waited for by the thread that spawns it, which the
                // death signal follows, so it never fires early.
                // SAFETY: prctl on the child itself, between fork and exec.
                unsafe {
                    std::os::unix::process::CommandExt::pre_exec(c, || {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                        Ok(())
                    });
                }
                Ok(())
            });
        let handle = expression.start().map_err(io)?;
        let pids = handle.pids();
        live_groups(|g| g.extend(pids.iter().copied()));
        let finished = handle.wait_timeout(timeout);
        live_groups(|g| g.retain(|p| !pids.contains(p)));
        let finished = finished.map_err(io)?.map(|o| o.status.code());
        match finished {
            Some(status) => {
                // The command wrote into files: on a full disk its output is cut short without any
                // error kyvtel can see, and a denial text could go missing. No verdict from that.
                if let Some(free) = free_bytes(&self.run_dir).filter(|f| *f < MIN_FREE) {
                    let why = format!(
                        "No space left on device: {} has {free} bytes free, so the command's captured output may be cut short",
                        self.run_dir.display()
                    );
                    return Err(io(std::io::Error::new(std::io::ErrorKind::StorageFull, why)));
                }
                let (stdout, stderr) = capture.read();
                Ok(Output { status, stdout, stderr })
            }
            None => {
                for pid in handle.pids() {
                    kill_group(pid);
                }
                let _ = handle.kill();
                let _ = handle.wait();
                let (stdout, stderr) = capture.read();
                Err(RunError::Timeout { command: shown, timeout, last_output: last_output(&stdout, &stderr) })
            }
        }
    }
}

/// Below this much free space in the run directory, a command's captured output is not trusted.
const MIN_FREE: u64 = 1 << 20;

/// The bytes an unprivileged writer may still use on `dir`'s file system (statvfs(3)); `None` when
/// it cannot be read.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &raw mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The process groups of commands that are running now.
fn live_groups(f: impl FnOnce(&mut Vec<u32>)) {
    static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let mut g = LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut g);
}

/// Sends SIGTERM to every running command's process group and returns how many there were.
///
/// Each command runs in its own process group, so a terminal's Ctrl-C does not reach it; the run
/// forwards the interrupt with this, so that the current command ends and teardown can start.
pub fn interrupt_all() -> usize {
    let mut n = 0;
    live_groups(|g| {
        for pid in g.iter() {
            if let Ok(pgid) = i32::try_from(*pid) {
                // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the
                // process group that `before_spawn` created for one of our own commands.
                unsafe {
                    libc::kill(-pgid, libc::SIGTERM);
                }
                n += 1;
            }
        }
    });
    n
}

/// Sends SIGKILL to the process group led by `pid` (each command is its own group leader).
fn kill_group(pid: u32) {
    let Ok(pgid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a process group,
    // here the one `before_spawn` created for this child, so nothing outside the command is hit.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// What a [`RecordingRunner`] answers for a matching command.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// The command finishes with this output.
    Output(Output),
    /// The program is missing.
    NotFound,
    /// The command times out, having printed `last_output`.
    Timeout {
        /// What the error carries.
        last_output: String,
    },
    /// The command takes `after`, then finishes with `output` (a step to interrupt).
    Slow {
        /// How long it runs.
        after: Duration,
        /// How it then finishes.
        output: Output,
    },
}

impl Scripted {
    /// Exit 0 with `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Scripted::Output(Output { status: Some(0), stdout: stdout.into(), stderr: String::new() })
    }

    /// Exit `status` with `stderr`.
    pub fn fail(status: i32, stderr: impl Into<String>) -> Self {
        Scripted::Output(Output { status: Some(status), stdout: String::new(), stderr: stderr.into() })
    }
}

#[derive(Debug)]
struct Rule {
    tool: Tool,
    prefix: Vec<String>,
    answer: Scripted,
    remaining: Option<usize>,
}

/// A test double for [`Runner`]: records every command and answers from a script.
///
/// Rules are matched in the order they were added, by tool and argument prefix; a rule added with
/// [`RecordingRunner::once`] is used up after one match. A command no rule matches fails with an
/// I/O error naming it, so an unexpected command never passes silently.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<Vec<(CommandLine, Duration)>>,
}

impl RecordingRunner {
    /// An empty script.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, tool: Tool, prefix: &[&str], answer: Scripted, remaining: Option<usize>) -> &Self {
        let rule = Rule { tool, prefix: prefix.iter().map(ToString::to_string).collect(), answer, remaining };
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(rule);
        self
    }

    /// Answers every `tool` command whose arguments start with `prefix`.
    pub fn on(&self, tool: Tool, prefix: &[&str], answer: Scripted) -> &Self {
        self.push(tool, prefix, answer, None)
    }

    /// Answers the next matching command only.
    pub fn once(&self, tool: Tool, prefix: &[&str], answer: Scripted) -> &Self {
        self.push(tool, prefix, answer, Some(1))
    }

    /// Every command run so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<CommandLine> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|(c, _)| c.clone()).collect()
    }

    /// Every command run so far with the timeout it was given.
    #[must_use]
    pub fn calls_with_timeouts(&self) -> Vec<(CommandLine, Duration)> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Every command run so far, displayed as in `kyvtel plan`.
    #[must_use]
    pub fn command_lines(&self) -> Vec<String> {
        self.calls().iter().map(ToString::to_string).collect()
    }
}

impl Runner for RecordingRunner {
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((cmd.clone(), timeout));
        let mut rules = self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rule = rules.iter_mut().find(|r| {
            r.tool == cmd.tool
                && r.remaining != Some(0)
                && cmd.args.len() >= r.prefix.len()
                && cmd.args.starts_with(&r.prefix)
        });
        let Some(rule) = rule else {
            return Err(RunError::Io {
                command: cmd.to_string(),
                source: std::io::Error::other("RecordingRunner: no scripted answer for this command"),
            });
        };
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        let answer = rule.answer.clone();
        drop(rules);
        match &answer {
            Scripted::Output(o) => Ok(o.clone()),
            Scripted::Slow { after, output } => {
                std::thread::sleep(*after);
                Ok(output.clone())
            }
            Scripted::NotFound => Err(RunError::NotFound(cmd.tool.program())),
            Scripted::Timeout { last_output } => {
                Err(RunError::Timeout { command: cmd.to_string(), timeout, last_output: last_output.clone() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_from_the_file_system() {
        assert!(free_bytes(Path::new("/")).is_some());
        assert_eq!(free_bytes(Path::new("/nonexistent/kyvtel")), None);
    }

    #[test]
    fn tail_keeps_the_end_on_char_boundaries() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("ääää", 2), "ää");
    }

    #[test]
    fn recording_runner_matches_prefix_and_once() {
        let r = RecordingRunner::new();
        r.once(Tool::Kind, &["get", "clusters"], Scripted::fail(1, "boom"));
        r.on(Tool::Kind, &["get"], Scripted::ok("kyvtel"));
        let cmd = CommandLine::new(Tool::Kind).args(["get", "clusters"]);
        assert_eq!(r.run(&cmd, Duration::from_secs(1)).unwrap().status, Some(1));
        assert_eq!(r.run(&cmd, Duration::from_secs(1)).unwrap().stdout, "kyvtel");
        let other = CommandLine::new(Tool::Helm).args(["list"]);
        let err = r.run(&other, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("no scripted answer"), "{err}");
        assert_eq!(r.command_lines(), ["kind get clusters", "kind get clusters", "helm list"]);
    }

    #[test]
    fn a_tool_run_from_a_path_has_its_directory_first_on_path() {
        let r = DuctRunner::new("/run/r1")
            .with_tools_dir(Some(PathBuf::from("/opt/tools")))
            .with_program(Tool::Telepresence, PathBuf::from("/opt/tools/telepresence-2.27.4/telepresence"));
        let tp = r.environment(&CommandLine::new(Tool::Telepresence).args(["connect"]));
        let path = tp.get("PATH").cloned().unwrap_or_default();
        assert!(path.starts_with("/opt/tools/telepresence-2.27.4:/opt/tools"), "{path}");
        let helm = r.environment(&CommandLine::new(Tool::Helm).args(["list"]));
        assert!(helm.get("PATH").is_some_and(|p| p.starts_with("/opt/tools") && !p.contains("telepresence-2.27.4")));
    }

    #[test]
    fn resolve_prefers_the_tools_dir() {
        let dir = std::env::temp_dir().join(format!("kyvtel-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("sh");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve("sh", Some(&dir), Some("/bin:/usr/bin".as_ref())), Some(fake));
        assert!(resolve("sh", None, Some("/bin:/usr/bin".as_ref())).is_some());
        assert_eq!(resolve("no-such-kyvtel-tool", Some(&dir), Some("/bin".as_ref())), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
