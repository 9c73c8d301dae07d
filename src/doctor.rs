//! `kyvtel doctor`: what a live run needs, one finding per prerequisite, each with a fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::scenario::pins::Pins;
use crate::scenario::version::Version;
use crate::tools::install::version;
use crate::tools::runner::{DuctRunner, default_tools_dir};
use crate::tools::{CommandLine, RunError, Runner, Tool};

/// Minimum free disk for a kind cluster and its images.
pub const MIN_FREE_DISK_GIB: u64 = 10;

/// One prerequisite and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Short name, e.g. `docker`, `kind`, `sudo`.
    pub check: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was observed.
    pub detail: String,
    /// How to fix it (empty when ok).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    fn ok(check: &str, detail: impl Into<String>) -> Self {
        Finding { check: check.into(), ok: true, detail: detail.into(), fix: String::new() }
    }
    fn fail(check: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { check: check.into(), ok: false, detail: detail.into(), fix: fix.into() }
    }
}

/// What the checks look at; real values in the CLI, fixed ones in tests.
pub struct Probe<'a> {
    /// Runs tool commands.
    pub runner: &'a dyn Runner,
    /// The pinned versions.
    pub pins: &'a Pins,
    /// Whether the process runs as root (then sudo is not needed).
    pub is_root: bool,
    /// The TUN device path (`/dev/net/tun`).
    pub tun: PathBuf,
    /// Where the run writes (for the free-disk check).
    pub work_dir: PathBuf,
}

fn short(e: &RunError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn pinned_tool(p: &Probe<'_>, tool: Tool, pin: &str, optional: bool) -> Finding {
    let name = tool.program();
    let want = Version::parse(pin);
    let install = format!("run `kyvtel tools install` (installs {name} {pin} into .tools/bin)");
    let Some(probe) = version::probe(tool) else { return Finding::fail(name, "no version probe", install) };
    let found = match p.runner.run(&probe, Duration::from_secs(20)) {
        Err(RunError::NotFound(_)) if optional => {
            return Finding::ok(name, format!("not installed (optional; pin {pin})"));
        }
        Err(RunError::NotFound(_)) => {
            return Finding::fail(name, "not found in the tools directory or on PATH", install);
        }
        Err(e) => return Finding::fail(name, short(&e), install),
        // A pre-release suffix (`v1.32.4-dispatcher`) does not change the release.
        Ok(o) => version::parse(tool, &o.stdout).and_then(|v| Version::parse(v.split(['-', '+']).next().unwrap_or(&v))),
    };
    match found {
        None => Finding::fail(name, "installed, but its version could not be read", install),
        Some(v) if Some(&v) == want.as_ref() => Finding::ok(name, format!("{v} (pinned {pin})")),
        Some(v) if optional => Finding::ok(name, format!("{v} is not the pin {pin}, so it is not used (optional)")),
        Some(v) => Finding::fail(name, format!("{v} does not match the pin {pin}"), install),
    }
}

/// The oldest Docker Engine the kind path supports (its image preload).
pub const MIN_DOCKER_MAJOR: u32 = 28;

fn docker(p: &Probe<'_>) -> Finding {
    let cmd = CommandLine::new(Tool::Docker).args(["info", "--format", "{{.ServerVersion}}"]);
    match p.runner.run(&cmd, Duration::from_secs(20)) {
        Err(RunError::NotFound(_)) => {
            Finding::fail("docker", "docker CLI not found", "install Docker Engine and start it")
        }
        Err(e) => Finding::fail("docker", short(&e), "start the Docker daemon"),
        Ok(o) if o.success() && !o.stdout.trim().is_empty() => {
            let v = o.stdout.trim();
            // The image preload runs `docker save --platform`, which needs API 1.48 (Docker 28+).
            // upstream: docker/cli cli/command/image/save.go (`--platform`, annotated API 1.48).
            match v.split('.').next().and_then(|m| m.parse::<u32>().ok()) {
                Some(major) if major < MIN_DOCKER_MAJOR => Finding::fail(
                    "docker",
                    format!(
                        "daemon {v} is older than {MIN_DOCKER_MAJOR}: the image preload (`docker save --platform`) \
                         needs Docker {MIN_DOCKER_MAJOR} or newer"
                    ),
                    "upgrade Docker Engine to 28 or newer",
                ),
                _ => Finding::ok("docker", format!("daemon {v} reachable")),
            }
        }
        Ok(o) => Finding::fail(
            "docker",
            format!("daemon not reachable: {}", o.stderr.lines().last().unwrap_or("no output").trim()),
            "start the Docker daemon (or set DOCKER_HOST) and make sure this user may use it",
        ),
    }
}

fn sudo(p: &Probe<'_>) -> Finding {
    if p.is_root {
        return Finding::ok("sudo", "running as root; the root daemon needs no sudo");
    }
    match p.runner.run(&crate::tools::telepresence::sudo_probe(), Duration::from_secs(10)) {
        Ok(o) if o.success() => Finding::ok("sudo", "passwordless sudo works (`sudo -n true`)"),
        Ok(_) | Err(_) => Finding::fail(
            "sudo",
            "`sudo -n true` failed: Telepresence's root daemon cannot start",
            "allow passwordless sudo for this user (e.g. a NOPASSWD sudoers entry), or run kyvtel as root",
        ),
    }
}

fn tun(p: &Probe<'_>) -> Finding {
    if p.tun.exists() {
        Finding::ok("tun", format!("{} present", p.tun.display()))
    } else {
        Finding::fail("tun", format!("{} missing", p.tun.display()), "load the tun module (`modprobe tun`)")
    }
}

fn disk(p: &Probe<'_>) -> Finding {
    let dir = existing_ancestor(&p.work_dir);
    match free_gib(p.runner, &dir) {
        Some(g) if g >= MIN_FREE_DISK_GIB => Finding::ok("disk", format!("{g} GiB free in {}", dir.display())),
        Some(g) => Finding::fail(
            "disk",
            format!("{g} GiB free in {}, need {MIN_FREE_DISK_GIB}", dir.display()),
            "free disk space (docker system prune, remove old kind clusters)",
        ),
        None => Finding::fail("disk", format!("could not read free space of {}", dir.display()), "check `df -Pk`"),
    }
}

fn existing_ancestor(p: &Path) -> PathBuf {
    p.ancestors().find(|a| a.exists()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Free GiB of the file system holding `dir`, from `df -Pk` (POSIX format: 4th column, KiB).
fn free_gib(runner: &dyn Runner, dir: &Path) -> Option<u64> {
    let out = runner.run(&df(dir), Duration::from_secs(10)).ok()?;
    let line = out.stdout.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / (1024 * 1024))
}

/// `df -Pk DIR`. df is not a pinned tool; the runner resolves it on PATH.
fn df(dir: &Path) -> CommandLine {
    CommandLine::new(Tool::Df).args(["-Pk".to_string(), dir.display().to_string()])
}

/// Runs every check.
pub fn check(p: &Probe<'_>) -> Vec<Finding> {
    vec![
        docker(p),
        pinned_tool(p, Tool::Kind, &p.pins.kind.default, false),
        pinned_tool(p, Tool::Helm, &p.pins.helm.default, false),
        pinned_tool(p, Tool::Telepresence, &p.pins.telepresence.default, false),
        pinned_tool(p, Tool::Kubectl, &p.pins.kubectl.default, true),
        sudo(p),
        tun(p),
        disk(p),
    ]
}

/// [`check`] on this machine: the real runner, `/dev/net/tun`, the `target/` directory.
pub fn machine_findings() -> Vec<Finding> {
    let scratch = std::env::temp_dir().join(format!("kyvtel-doctor-{}", std::process::id()));
    let runner = DuctRunner::new(&scratch).with_tools_dir(Some(default_tools_dir()));
    let pins = Pins::builtin();
    let probe = Probe {
        runner: &runner,
        pins: &pins,
        is_root: crate::tools::is_root(),
        tun: PathBuf::from("/dev/net/tun"),
        work_dir: PathBuf::from("target"),
    };
    let findings = check(&probe);
    let _ = std::fs::remove_dir_all(&scratch);
    findings
}

/// Whether every finding of the kind path holds (the `local-*` findings report the local provider,
/// which `--provider auto` falls back to).
#[must_use]
pub fn ready(findings: &[Finding]) -> bool {
    findings.iter().filter(|f| !f.check.starts_with("local-")).all(|f| f.ok)
}

/// Free disk the local provider's first build needs, with Go's caches (issue: about 15 GB).
pub const LOCAL_MIN_FREE_DISK_GIB: u64 = 15;

/// The local provider: namespaces, each component built (stamp matches) or not, and the free disk
/// where Go keeps its caches.
#[must_use]
pub fn local(runner: &dyn Runner, pins: &Pins, root: &Path) -> Vec<Finding> {
    use crate::provider::local::{build, confine};
    let mut out = vec![match confine::probe() {
        None => Finding::ok("local-namespaces", "network, mount and PID namespaces can be created"),
        Some(why) => Finding::fail("local-namespaces", why, "see the detail"),
    }];
    match build::GoEnv::detect(None) {
        Err(e) => out.push(Finding::fail("local-go", e, "install Go 1.26+ (https://go.dev/dl)")),
        Ok(env) => {
            let (warm, cold): (Vec<_>, Vec<_>) =
                build::targets(pins).into_iter().partition(|t| build::is_warm(t, &env, root));
            let names = |v: &[build::Target]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(", ");
            out.push(if cold.is_empty() {
                Finding::ok("local-components", format!("built with {}: {}", env.version, names(&warm)))
            } else {
                Finding::fail(
                    "local-components",
                    format!("not built: {}", names(&cold)),
                    "run `kyvtel tools build` (a local run builds what it needs before it starts)",
                )
            });
        }
    }
    let cache = crate::plan::providers::local::paths::module_cache();
    let dir = existing_ancestor(&cache);
    out.push(match free_gib(runner, &dir) {
        Some(g) if g >= LOCAL_MIN_FREE_DISK_GIB => {
            Finding::ok("local-disk", format!("{g} GiB free in {} (Go's caches)", dir.display()))
        }
        Some(g) => Finding::fail(
            "local-disk",
            format!("{g} GiB free in {}; a first build needs about {LOCAL_MIN_FREE_DISK_GIB} GiB", dir.display()),
            "free disk space or point GOMODCACHE/GOCACHE elsewhere",
        ),
        None => {
            Finding::fail("local-disk", format!("could not read free space of {}", dir.display()), "check `df -Pk`")
        }
    });
    out
}

/// One line per finding: `ok   docker: ...` or `FAIL kind: ... (fix: ...)`.
pub fn render(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            if f.ok {
                format!("ok   {}: {}\n", f.check, f.detail)
            } else {
                format!("FAIL {}: {} (fix: {})\n", f.check, f.detail, f.fix)
            }
        })
        .collect()
}
