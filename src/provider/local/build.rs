//! Builds the local provider's components from their wrapper Go modules (`tools/<group>/`), into
//! `.tools/local/`. A binary is warm when its stamp matches: no `go` invocation at all then.
//!
//! The stamp covers what decides the binary: the wrapper's `go.mod` and `go.sum`, the Go toolchain
//! (its `GOROOT/VERSION`, read without running `go`), `GOFLAGS`, `GOEXPERIMENT` and the ldflags.
//! Go's module and build caches stay where the user keeps them (outside the clone), shared by every
//! wrapper module.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::providers::local::paths::{OUT_DIR, traffic_name};
use crate::scenario::pins::{GoBinary, Pins};

/// One binary to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The file name under [`OUT_DIR`] (`traffic-<version>` for Telepresence).
    pub name: String,
    /// What the pins say.
    pub spec: GoBinary,
}

/// Everything the local provider builds by default, in build order (control plane first); the
/// nightly Kyverno versions are [`nightly_kyverno`].
#[must_use]
pub fn targets(pins: &Pins) -> Vec<Target> {
    let mut out: Vec<Target> =
        pins.local.binaries.iter().map(|(n, b)| Target { name: n.clone(), spec: b.clone() }).collect();
    out.sort_by_key(|t| order(&t.name));
    out.extend(pins.local.telepresence.iter().map(|(v, b)| Target { name: traffic_name(v), spec: b.clone() }));
    out
}

/// The nightly Kyverno of `version` (`1.18.2`), when the local provider builds it as a second one.
#[must_use]
pub fn nightly_kyverno(pins: &Pins, version: &str) -> Option<Target> {
    let k = pins.local.kyverno(version)?;
    (k.name != "kyverno").then(|| Target { name: k.name.to_string(), spec: k.binary.clone() })
}

fn order(name: &str) -> usize {
    ["etcd", "kube-apiserver", "kube-controller-manager", "helm", "kyverno", "kyverno-cli"]
        .iter()
        .position(|n| *n == name)
        .unwrap_or(usize::MAX)
}

/// The `-X` flags that make `/version` and logs tell the truth.
#[must_use]
pub fn version_flags(t: &Target) -> Vec<String> {
    let v = &t.spec.version;
    let mut parts = v.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
    match t.spec.module.as_str() {
        // upstream: kubernetes/kubernetes hack/lib/version.sh (kube::version::ldflags).
        "k8s.io/kubernetes" => ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
            .iter()
            .flat_map(|p| {
                [
                    format!("{p}.gitVersion={v}"),
                    format!("{p}.gitMajor={major}"),
                    format!("{p}.gitMinor={minor}"),
                    format!("{p}.gitTreeState=clean"),
                ]
            })
            .collect(),
        // upstream: helm/helm internal/version/version.go@v3.21.4 (`version`) and
        // pkg/chartutil/capabilities.go (`k8sVersionMajor/Minor`, the default kube version).
        "helm.sh/helm/v3" => vec![
            format!("helm.sh/helm/v3/internal/version.version={v}"),
            "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1".into(),
            "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=35".into(),
        ],
        // upstream: kyverno/kyverno pkg/version/version.go@v1.19.1 (BuildVersion).
        "github.com/kyverno/kyverno" => vec![format!("github.com/kyverno/kyverno/pkg/version.BuildVersion={v}")],
        // upstream: telepresenceio/telepresence pkg/version/version.go (Version).
        "github.com/telepresenceio/telepresence/v2" => {
            vec![format!("github.com/telepresenceio/telepresence/v2/pkg/version.Version={v}")]
        }
        // etcd's version is a constant of its api module.
        _ => Vec::new(),
    }
}

/// The `-ldflags` value.
#[must_use]
pub fn ldflags(t: &Target) -> String {
    let mut f = vec!["-s".to_string(), "-w".to_string()];
    for x in version_flags(t) {
        f.push(format!("-X {x}"));
    }
    f.join(" ")
}

/// The environment a build sees (and that the stamp covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoEnv {
    /// The `go` binary.
    pub go: PathBuf,
    /// The toolchain version (`GOROOT/VERSION`'s first line), e.g. `go1.26.8`.
    pub version: String,
    /// The user's `GOPROXY`, honoured (a company mirror); Go's default when unset.
    pub goproxy: String,
    /// The user's `GOFLAGS`.
    pub goflags: String,
    /// The file:// module mirror for modules the proxy refuses, when present.
    pub mirror: Option<PathBuf>,
}

impl GoEnv {
    /// Finds `go` on `PATH` and reads its version from `GOROOT/VERSION`; never runs it.
    ///
    /// # Errors
    /// A message naming what is missing.
    pub fn detect(mirror: Option<PathBuf>) -> Result<GoEnv, String> {
        let go = crate::tools::runner::resolve("go", None, std::env::var_os("PATH").as_deref())
            .ok_or("go not found on PATH (the local provider builds its components with Go)")?;
        let real = std::fs::canonicalize(&go).unwrap_or_else(|_| go.clone());
        let goroot = std::env::var_os("GOROOT")
            .map(PathBuf::from)
            .or_else(|| real.parent().and_then(Path::parent).map(Path::to_path_buf))
            .ok_or("cannot tell GOROOT")?;
        let version = std::fs::read_to_string(goroot.join("VERSION"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string))
            .ok_or_else(|| format!("cannot read the Go version from {}", goroot.join("VERSION").display()))?;
        Ok(GoEnv {
            go,
            version,
            goproxy: std::env::var("GOPROXY")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "https://proxy.golang.org,direct".into()),
            goflags: std::env::var("GOFLAGS").unwrap_or_default(),
            mirror: mirror.filter(|m| m.is_dir()),
        })
    }

    /// `GOPROXY` for `t`: the mirror first when `t` needs it and it exists, then the user's.
    #[must_use]
    pub fn goproxy_for(&self, t: &Target) -> String {
        match (&self.mirror, t.spec.mirror_modules.is_empty()) {
            (Some(m), false) => format!("file://{},{}", m.display(), self.goproxy),
            _ => self.goproxy.clone(),
        }
    }
}

/// One `go build`: what `kyvtel plan --provider local` prints and what the build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    /// The wrapper module directory it runs in.
    pub cwd: PathBuf,
    /// `go`.
    pub go: PathBuf,
    /// The arguments.
    pub args: Vec<String>,
    /// Variables set for the build (the rest of the environment, Go's caches included, is the user's).
    pub env: Vec<(String, String)>,
    /// The binary it writes.
    pub output: PathBuf,
}

impl std::fmt::Display for GoBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(cd {} &&", self.cwd.display())?;
        for (k, v) in self.env.iter().filter(|(_, v)| !v.is_empty()) {
            write!(f, " {k}={}", crate::tools::quote(v))?;
        }
        write!(f, " go")?;
        for a in &self.args {
            write!(f, " {}", crate::tools::quote(a))?;
        }
        f.write_str(")")
    }
}

/// The `go build` of `t`, run in its wrapper directory under `root`.
#[must_use]
pub fn command(t: &Target, env: &GoEnv, root: &Path) -> GoBuild {
    let output = root.join(OUT_DIR).join(&t.name);
    let goflags = format!("-mod=readonly -buildvcs=false {}", env.goflags).trim().to_string();
    GoBuild {
        cwd: root.join(&t.spec.wrapper),
        go: env.go.clone(),
        args: vec![
            "build".into(),
            "-trimpath".into(),
            "-ldflags".into(),
            ldflags(t),
            "-o".into(),
            output.display().to_string(),
            t.spec.package.clone(),
        ],
        env: vec![
            ("CGO_ENABLED".into(), "0".into()),
            ("GOFLAGS".into(), goflags),
            ("GOPROXY".into(), env.goproxy_for(t)),
            ("GOEXPERIMENT".into(), t.spec.goexperiment.clone().unwrap_or_default()),
        ],
        output,
    }
}

impl GoBuild {
    /// Runs the build, its output going to `<output>.log`; kills it after `timeout`.
    ///
    /// # Errors
    /// The tail of the log, or why it could not run.
    pub fn run(&self, timeout: Duration) -> Result<(), String> {
        let log_path = with_suffix(&self.output, ".log");
        if let Some(d) = self.output.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        use std::os::unix::process::CommandExt as _;
        let mut child = std::process::Command::new(&self.go)
            // Its own process group: a timeout kills `go` and the compilers and linkers it runs.
            .process_group(0)
            .args(&self.args)
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.go.display()))?;
        let deadline = std::time::Instant::now().checked_add(timeout);
        let status = loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(s) => break s,
                None if deadline.is_some_and(|d| std::time::Instant::now() >= d) => {
                    // SAFETY: killing the process group of our own child.
                    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                    let _ = child.wait();
                    return Err(format!(
                        "did not finish within {timeout:?}; last output: {}",
                        super::process::log_tail(&log_path, 6)
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(format!("go build exited with {status}: {}", super::process::log_tail(&log_path, 6)))
        }
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The stamp of `t`: a digest over everything that decides the binary.
///
/// # Errors
/// The wrapper's `go.mod`/`go.sum` cannot be read.
pub fn stamp(t: &Target, env: &GoEnv, root: &Path) -> std::io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for f in ["go.mod", "go.sum"] {
        let p = root.join(&t.spec.wrapper).join(f);
        let bytes = std::fs::read(&p).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        ctx.update(f.as_bytes());
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(&bytes);
    }
    if t.spec.package.starts_with("./") {
        // A main.go of ours is part of the input too.
        let dir = root.join(&t.spec.wrapper).join(&t.spec.package);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                ctx.update(&std::fs::read(&f)?);
            }
        }
    }
    for s in
        [&env.version, &env.goflags, &t.spec.goexperiment.clone().unwrap_or_default(), &ldflags(t), &t.spec.package]
    {
        ctx.update(&(s.len() as u64).to_le_bytes());
        ctx.update(s.as_bytes());
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `t` is built and its stamp matches.
#[must_use]
pub fn is_warm(t: &Target, env: &GoEnv, root: &Path) -> bool {
    let out = root.join(OUT_DIR).join(&t.name);
    let Ok(want) = stamp(t, env, root) else { return false };
    out.is_file() && std::fs::read_to_string(stamp_path(&out)).is_ok_and(|s| s.trim() == want)
}

pub(crate) fn stamp_path(out: &Path) -> PathBuf {
    with_suffix(out, ".stamp")
}

/// A failed build: exit 3, naming the module, the proxy and the fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "building {name} ({module}@{version}) failed with GOPROXY={goproxy}: {detail}\nfix: check that the proxy serves \
     {module}@{version} and its dependencies (`go list -m -json {module}@{version}`){mirror_hint}"
)]
pub struct BuildError {
    /// The binary.
    pub name: String,
    /// The module.
    pub module: String,
    /// Its version.
    pub version: String,
    /// The proxy used.
    pub goproxy: String,
    /// The tail of `go build`'s output.
    pub detail: String,
    /// Where the mirror helps.
    pub mirror_hint: String,
}

/// Builds every target in `which` that is not warm, one at a time, calling `progress` before each.
///
/// # Errors
/// The first build that fails.
pub fn build_missing(
    which: &[Target],
    env: &GoEnv,
    root: &Path,
    timeout: Duration,
    mut progress: impl FnMut(&Target, bool),
) -> Result<Vec<String>, Box<BuildError>> {
    let mut built = Vec::new();
    for t in which {
        if is_warm(t, env, root) {
            progress(t, true);
            continue;
        }
        progress(t, false);
        let fail = |detail: String| {
            Box::new(BuildError {
                name: t.name.clone(),
                module: t.spec.module.clone(),
                version: t.spec.version.clone(),
                goproxy: env.goproxy_for(t),
                detail,
                mirror_hint: if t.spec.mirror_modules.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} come from a file:// mirror where the proxy refuses them: set KYVTEL_SHARED_DIR to the \
                     directory holding goproxy/",
                        t.spec.mirror_modules.join(", ")
                    )
                },
            })
        };
        command(t, env, root).run(timeout).map_err(fail)?;
        let stamp = stamp(t, env, root).map_err(|e| fail(e.to_string()))?;
        std::fs::write(stamp_path(&root.join(OUT_DIR).join(&t.name)), stamp).map_err(|e| fail(e.to_string()))?;
        built.push(t.name.clone());
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    use super::super::charts::required_version as required;

    #[test]
    fn every_wrapper_go_mod_requires_the_pinned_module_version() {
        for t in targets(&Pins::builtin()) {
            let go_mod = std::fs::read_to_string(root().join(&t.spec.wrapper).join("go.mod")).unwrap();
            assert_eq!(
                required(&go_mod, &t.spec.module).as_deref(),
                Some(t.spec.version.as_str()),
                "{}: {}/go.mod and pins.yaml disagree on {}",
                t.name,
                t.spec.wrapper,
                t.spec.module
            );
            assert!(
                go_mod.contains(&format!("tool {}", t.spec.package))
                    || t.spec.package.starts_with("./")
                    || go_mod.contains(&format!("\t{}\n", t.spec.package)),
                "{}: not a tool of {}",
                t.name,
                t.spec.wrapper
            );
        }
    }

    #[test]
    fn the_kyverno_api_chart_module_is_the_version_kyverno_requires() {
        let pins = Pins::builtin();
        for v in pins.local.kyverno_versions() {
            let k = pins.local.kyverno(&v).unwrap();
            let go_mod = std::fs::read_to_string(root().join(&k.binary.wrapper).join("go.mod")).unwrap();
            let api = k.kyverno_api;
            assert_eq!(required(&go_mod, &api.module).as_deref(), Some(api.version.as_str()), "Kyverno {v}");
            assert_eq!(required(&go_mod, &k.binary.module).as_deref(), Some(k.binary.version.as_str()), "Kyverno {v}");
        }
        assert_eq!(nightly_kyverno(&pins, "1.18.2").map(|t| t.name).as_deref(), Some("kyverno-1.18.2"));
        assert_eq!(nightly_kyverno(&pins, "1.19.1"), None, "the default is among the default targets");
    }

    #[test]
    fn mirror_modules_are_in_the_wrapper_go_sum() {
        for t in targets(&Pins::builtin()) {
            let sum = std::fs::read_to_string(root().join(&t.spec.wrapper).join("go.sum")).unwrap();
            for m in &t.spec.mirror_modules {
                assert!(sum.lines().any(|l| l.starts_with(&format!("{m} "))), "{}: {m} missing from go.sum", t.name);
            }
        }
    }

    #[test]
    fn kubernetes_gets_its_version_variables_and_etcd_none() {
        let ts = targets(&Pins::builtin());
        let api = ts.iter().find(|t| t.name == "kube-apiserver").unwrap();
        let f = ldflags(api);
        assert!(f.contains("-X k8s.io/component-base/version.gitVersion=v1.35.8"), "{f}");
        assert!(f.contains("-X k8s.io/client-go/pkg/version.gitMinor=35"), "{f}");
        let etcd = ts.iter().find(|t| t.name == "etcd").unwrap();
        assert_eq!(ldflags(etcd), "-s -w");
    }

    #[test]
    fn the_stamp_changes_with_every_input_it_covers() {
        let ts = targets(&Pins::builtin());
        let t = ts.iter().find(|t| t.name == "helm").unwrap().clone();
        let env = GoEnv {
            go: "go".into(),
            version: "go1.26.8".into(),
            goproxy: "https://proxy.golang.org,direct".into(),
            goflags: String::new(),
            mirror: None,
        };
        let base = stamp(&t, &env, &root()).unwrap();
        assert_eq!(base, stamp(&t, &env, &root()).unwrap());
        assert_ne!(base, stamp(&t, &GoEnv { version: "go1.26.9".into(), ..env.clone() }, &root()).unwrap());
        assert_ne!(base, stamp(&t, &GoEnv { goflags: "-race".into(), ..env.clone() }, &root()).unwrap());
        let mut exp = t.clone();
        exp.spec.goexperiment = Some("jsonv2".into());
        assert_ne!(base, stamp(&exp, &env, &root()).unwrap());
        let mut v = t.clone();
        v.spec.version = "v3.21.5".into();
        assert_ne!(base, stamp(&v, &env, &root()).unwrap(), "the ldflags carry the version");
    }

    #[test]
    fn the_mirror_goes_first_only_for_binaries_that_need_it() {
        let ts = targets(&Pins::builtin());
        let env = GoEnv {
            go: "go".into(),
            version: "go1.26.8".into(),
            goproxy: "https://corp.example/go".into(),
            goflags: String::new(),
            mirror: Some("/m".into()),
        };
        let tp = ts.iter().find(|t| t.name == "traffic-2.31.0").unwrap();
        assert_eq!(env.goproxy_for(tp), "file:///m,https://corp.example/go");
        let helm = ts.iter().find(|t| t.name == "helm").unwrap();
        assert_eq!(env.goproxy_for(helm), "https://corp.example/go");
    }
}
