//! Confinement of a local run: private network, mount and PID namespaces, entered before the async
//! runtime starts (a multi-threaded process cannot move itself).
//!
//! [`enter`] unshares the namespaces (as root, or in a user namespace without root), then forks:
//! the child is PID 1 of the new PID namespace and goes on to run kyvtel; the parent only forwards
//! signals and exits with the child's status. The child dies with the parent (`PR_SET_PDEATHSIG`),
//! and when PID 1 ends the kernel kills every process left in its namespace, so even `kill -9` of
//! kyvtel or a CI timeout leaves no component running.
//!
//! Inside: `lo` is brought up and is the only interface (a dial to any other address fails at once
//! with "Network is unreachable"); `/` is made private and `/run` is a fresh tmpfs (the components
//! that insist on `/var/run/secrets/...` get their files there; the host's `/run` is never touched).

use std::ffi::CString;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::plan::providers::local::components::Ports;

/// Set in the confined child, so that it does not confine itself again.
pub const MARKER: &str = "KYVTEL_CONFINED";

/// How a run is confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As root: plain `unshare`.
    Root,
    /// Without root, in a user namespace that maps the user to root.
    UserNamespace,
}

/// Whether this process already runs confined: the marker kyvtel sets after entering, and PID 1 of
/// its own PID namespace (an inherited or forged marker alone is not enough).
#[must_use]
pub fn is_confined() -> bool {
    // SAFETY: getpid has no preconditions.
    std::env::var_os(MARKER).is_some_and(|v| v == "1") && unsafe { libc::getpid() } == 1
}

fn errno(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Why namespaces cannot be created here, with the fix; `None` when they can. Probes in a child
/// process, so the caller is unchanged.
#[must_use]
pub fn probe() -> Option<String> {
    // A separate process (util-linux `unshare`, present wherever these namespaces are): the caller
    // may be multi-threaded, and a forked child of such a process may not allocate. It makes the same
    // namespaces, the private tmpfs on /run and the PID namespace's /proc that [`enter`] makes.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = std::process::Command::new("unshare");
    c.args(["--net", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private"]);
    if !root {
        c.args(["--user", "--map-root-user"]);
    }
    c.args(["sh", "-c", "mount -t tmpfs -o size=1m tmpfs /run"]);
    let out = c.stdin(std::process::Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("{} ({})", unavailable_reason(), String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Some(format!("cannot run `unshare` (util-linux) to probe namespaces: {e}")),
    }
}

fn unavailable_reason() -> String {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    let mut m = String::from(
        "cannot create network, mount and PID namespaces: kyvtel is not root and an unprivileged user namespace was \
         refused",
    );
    if sysctl {
        m.push_str(
            " (kernel.apparmor_restrict_unprivileged_userns=1, e.g. Ubuntu >= 23.10 and GitHub's ubuntu-24.04 \
             runners)",
        );
    }
    m.push_str(
        "; fix: run as root (`sudo -n` works on GitHub's runners: `sudo -E env PATH=$PATH kyvtel run ...`), or allow \
         user namespaces (`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), or accept a partial run \
         without namespaces: `kyvtel run --provider local --unconfined` (loopback ports picked free, the \
         traffic-manager not started, the steps that need its injector skipped with the reason)",
    );
    m
}

/// What an unconfined run does instead, for its first lines and `kyvtel plan --unconfined`.
#[must_use]
pub fn unconfined_notice(ports: &Ports) -> String {
    format!(
        "unconfined: no private namespaces (--unconfined): listeners on 127.0.0.1 at ports picked free ({}; etcd \
         has no client authentication, so any local user can reach it during the run), every start cold, each \
         component dies with kyvtel (PR_SET_PDEATHSIG); {}",
        ports.describe(),
        crate::plan::provider::UNCONFINED.trim_start_matches("unconfined: ")
    )
}

impl Mode {
    /// The line a confined run prints first.
    #[must_use]
    pub fn notice(self) -> &'static str {
        match self {
            Mode::Root => "confined: private network, mount and PID namespaces, as root",
            Mode::UserNamespace => {
                "confined: private network, mount and PID namespaces, in a user namespace (without root)"
            }
        }
    }
}

/// Unshares network, mount and PID namespaces (with a user namespace when not root).
fn unshare_all() -> Result<Mode, String> {
    let base = libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    // SAFETY: plain syscalls on the current (single-threaded) process.
    if unsafe { libc::geteuid() } == 0 {
        if unsafe { libc::unshare(base) } == 0 {
            return Ok(Mode::Root);
        }
        return Err(errno("unshare"));
    }
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if unsafe { libc::unshare(base | libc::CLONE_NEWUSER) } != 0 {
        return Err(errno("unshare(user)"));
    }
    let write = |p: &str, s: String| std::fs::write(p, s).map_err(|e| format!("{p}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(Mode::UserNamespace)
}

static CHILD: AtomicI32 = AtomicI32::new(0);

/// Called just before the run installs its own Ctrl-C and SIGTERM handling: those handlers chain to
/// the previous one (signal-hook-registry), which must then no longer end the process.
pub fn hand_signals_to_runtime() {
    if is_confined() {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: restoring the default disposition.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

extern "C" fn exit_on_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) };
}

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Enters the namespaces. Returns in the confined child; the parent never returns (it exits with
/// the child's status). Must be called before any thread is started.
///
/// # Errors
/// Why the namespaces cannot be created (exit 3 for the caller).
pub fn enter() -> Result<Mode, String> {
    if is_confined() {
        return Ok(Mode::Root);
    }
    let mode = unshare_all().map_err(|e| format!("{e}; {}", unavailable_reason()))?;
    // SAFETY: single-threaded here (before the runtime); the child continues as a normal process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno("fork"));
    }
    if pid > 0 {
        wait_as_parent(pid);
    }
    // The child: PID 1 of the new PID namespace (its parent is outside it, so getppid() is 0 here).
    // PID 1 ignores every signal it has no handler for: until the run installs its own (Ctrl-C and
    // SIGTERM stop the step and tear down), these end it, and with it every process of the namespace.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: a handler that only calls _exit.
        unsafe { libc::signal(sig, exit_on_signal as *const () as libc::sighandler_t) };
    }
    // SAFETY: prctl on ourselves.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // Its own process group: a terminal's Ctrl-C reaches the parent only, which forwards it once.
        libc::setpgid(0, 0);
    }
    setup_mounts()?;
    loopback_up()?;
    // SAFETY: single-threaded still.
    unsafe { std::env::set_var(MARKER, "1") };
    Ok(mode)
}

fn wait_as_parent(pid: libc::pid_t) -> ! {
    CHILD.store(pid, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: installing a handler that only calls kill().
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::process::exit(3);
        }
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    std::process::exit(code)
}

fn mount(
    src: &str,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (src_c, target_c) = (c(src)?, c(target)?);
    let fstype_c = fstype.map(c).transpose()?;
    let data_c = data.map(c).transpose()?;
    // SAFETY: valid C strings or null pointers.
    let r = unsafe {
        libc::mount(
            src_c.as_ptr(),
            target_c.as_ptr(),
            fstype_c.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            data_c.as_ref().map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    if r == 0 { Ok(()) } else { Err(errno(&format!("mount {target}"))) }
}

fn setup_mounts() -> Result<(), String> {
    // Nothing mounted here propagates back to the host.
    mount("none", "/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    mount("tmpfs", "/run", Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755,size=16m"))?;
    // The PID namespace's own /proc (processes of the run only).
    mount("proc", "/proc", Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)?;
    Ok(())
}

/// Brings `lo` up: a new network namespace has it down.
fn loopback_up() -> Result<(), String> {
    // SAFETY: a plain socket and two ioctls on a zeroed, correctly sized ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(errno("socket"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &raw mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            let r2 = libc::ioctl(fd, libc::SIOCSIFFLAGS, &raw mut req);
            libc::close(fd);
            if r2 != 0 {
                return Err(errno("bring lo up"));
            }
            return Ok(());
        }
        libc::close(fd);
        Err(errno("read lo flags"))
    }
}
