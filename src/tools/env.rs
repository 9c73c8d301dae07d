//! The run-private environment of every external tool.
//!
//! kyvtel must never read or write the user's `~/.kube/config`, `~/.config/telepresence` or Helm
//! repositories. Every path a tool would derive from `$HOME` is therefore pointed into the run
//! directory. These functions are **pure**: they return the variables to set and the files to
//! write, so `kyvtel plan` can print exactly what `kyvtel run` will do. [`materialize`] performs
//! the writes; [`apply`] attaches the variables to a [`CommandLine`].
//!
//! Layout under a run directory `<run>`:
//!
//! | path | what |
//! |---|---|
//! | `<run>/kubeconfig` | `KUBECONFIG`; also passed as `--kubeconfig` to `kind create/delete cluster` |
//! | `<run>/home` | `HOME`, with `XDG_CONFIG_HOME`, `XDG_CACHE_HOME`, `XDG_DATA_HOME` below it |
//! | `<run>/helm/{cache,config,data}` | `HELM_CACHE_HOME`, `HELM_CONFIG_HOME`, `HELM_DATA_HOME` |
//! | `<run>/helm/config/repositories.yaml`, `<run>/helm/cache/repository` | `HELM_REPOSITORY_CONFIG`, `HELM_REPOSITORY_CACHE` |
//! | `<run>/telepresence/config` | `DEV_TELEPRESENCE_CONFIG_DIR`, holds `config.yml` |
//! | `<run>/telepresence/logs` | `DEV_TELEPRESENCE_LOG_DIR` |

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{CommandLine, Tool};
use crate::scenario::version::Version;

/// A file the environment needs, written before the first command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileToWrite {
    /// Where.
    pub path: PathBuf,
    /// Its full contents.
    pub contents: String,
}

/// Variables, directories and files that make one tool run-private.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[must_use]
pub struct ToolEnv {
    /// Environment variables, in a stable order.
    pub vars: Vec<(String, String)>,
    /// Directories to create.
    pub dirs: Vec<PathBuf>,
    /// Files to write.
    pub files: Vec<FileToWrite>,
}

impl ToolEnv {
    fn var(&mut self, key: &str, value: &Path) {
        self.vars.push((key.to_string(), value.display().to_string()));
    }

    fn extend(mut self, other: ToolEnv) -> ToolEnv {
        for (k, v) in other.vars {
            self.vars.retain(|(key, _)| key != &k);
            self.vars.push((k, v));
        }
        self.dirs.extend(other.dirs);
        self.files.extend(other.files);
        self
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Writes a run-private file that only the user can read (a kubeconfig carries credentials),
/// creating its directory and replacing any earlier content.
///
/// # Errors
/// The I/O error of creating the directory or writing the file.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents.as_bytes())
}

/// The run's private kubeconfig file.
#[must_use]
pub fn kubeconfig(run: &Path) -> PathBuf {
    run.join("kubeconfig")
}

/// The run's private home directory.
#[must_use]
pub fn home(run: &Path) -> PathBuf {
    run.join("home")
}

/// What every tool gets: a private `HOME` (and the XDG directories below it) and `KUBECONFIG`.
pub fn base(run: &Path) -> ToolEnv {
    let home = home(run);
    let mut env = ToolEnv::default();
    env.var("HOME", &home);
    env.var("XDG_CONFIG_HOME", &home.join(".config"));
    env.var("XDG_CACHE_HOME", &home.join(".cache"));
    env.var("XDG_DATA_HOME", &home.join(".local/share"));
    env.var("KUBECONFIG", &kubeconfig(run));
    env.dirs.extend([home.join(".config"), home.join(".cache"), home.join(".local/share")]);
    env
}

/// Helm's cache, config, data and repository locations under the run directory.
/// Registry credentials (`HELM_REGISTRY_CONFIG`) and plugins default to paths below these homes.
// upstream: helm/helm pkg/cli/environment.go@v3 (`EnvVars`: HELM_CACHE_HOME, HELM_CONFIG_HOME,
// HELM_DATA_HOME, HELM_REPOSITORY_CACHE, HELM_REPOSITORY_CONFIG); facts.md §3.
pub fn helm(run: &Path) -> ToolEnv {
    let root = run.join("helm");
    let mut env = ToolEnv::default();
    env.var("HELM_CACHE_HOME", &root.join("cache"));
    env.var("HELM_CONFIG_HOME", &root.join("config"));
    env.var("HELM_DATA_HOME", &root.join("data"));
    env.var("HELM_REPOSITORY_CONFIG", &root.join("config/repositories.yaml"));
    env.var("HELM_REPOSITORY_CACHE", &root.join("cache/repository"));
    env.dirs.extend([root.join("cache/repository"), root.join("config"), root.join("data")]);
    env
}

/// Client-side Telepresence timeouts written to the run's `config.yml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TelepresenceTimeouts {
    /// `timeouts.helm`: the atomic `telepresence helm install` wait (upstream default 30 s).
    pub helm: Duration,
    /// `timeouts.intercept`: waiting for an intercept to become active (upstream default 30 s).
    pub intercept: Duration,
    /// `timeouts.trafficManagerConnect`: port-forward to the traffic-manager (upstream default 60 s).
    pub traffic_manager_connect: Duration,
}

impl Default for TelepresenceTimeouts {
    /// Raised well above upstream's defaults: a fresh kind node pulls the tel2 image first.
    fn default() -> Self {
        TelepresenceTimeouts {
            helm: Duration::from_secs(300),
            intercept: Duration::from_secs(180),
            traffic_manager_connect: Duration::from_secs(120),
        }
    }
}

/// Where the run's image archives go (`docker save`, then `kind load image-archive`).
#[must_use]
pub fn images_dir(run: &Path) -> PathBuf {
    run.join("images")
}

/// The run's Telepresence config directory (`DEV_TELEPRESENCE_CONFIG_DIR`).
#[must_use]
pub fn telepresence_config_dir(run: &Path) -> PathBuf {
    run.join("telepresence/config")
}

/// The run's Telepresence log directory (`DEV_TELEPRESENCE_LOG_DIR`).
#[must_use]
pub fn telepresence_log_dir(run: &Path) -> PathBuf {
    run.join("telepresence/logs")
}

/// The contents of the run's Telepresence `config.yml`.
///
/// Durations are written as whole seconds with an `s` suffix, which every client since 2.x parses.
/// For a client of 2.29 or later (`version`), `usage.enabled: false` turns off anonymous usage
/// reporting and `intercept.localShortcut: false` makes a workstation's request to an intercepted
/// Service cross the cluster (facts.md §4: both keys are new in 2.29); older clients, and the
/// config written before the version is known, get neither, and honour `SCOUT_DISABLE=1`, which
/// [`telepresence`] sets for every client.
// upstream: telepresenceio/telepresence pkg/client/config.go@v2.20.2 (Timeouts yaml keys `helm`,
// `intercept`, `trafficManagerConnect`; `ParseConfigYAML` uses non-strict yaml.Unmarshal).
// upstream: telepresenceio/telepresence pkg/client/config.go@02eabaa5 (main, 2026: `Usage{Enabled
// json:"enabled"}` under top-level `usage`; unknown keys are logged, then parsed leniently).
// upstream: telepresenceio/telepresence pkg/client/envconfig.go@v2.20.2 (`SCOUT_DISABLE`).
// upstream: telepresenceio/telepresence pkg/client/config.go@v2.31.0:820-841 (`intercept.localShortcut`).
#[must_use]
pub fn telepresence_config_yml(t: &TelepresenceTimeouts, version: Option<&Version>) -> String {
    let mut s = String::from("# Written by kyvtel for this run only.\n");
    s.push_str("timeouts:\n");
    let _ = writeln!(s, "  helm: {}s", t.helm.as_secs());
    let _ = writeln!(s, "  intercept: {}s", t.intercept.as_secs());
    let _ = writeln!(s, "  trafficManagerConnect: {}s", t.traffic_manager_connect.as_secs());
    if version.is_some_and(has_usage_key) {
        s.push_str("usage:\n  enabled: false\n");
        s.push_str("intercept:\n  localShortcut: false\n");
    }
    s
}

/// Whether Telepresence `version` knows the `usage` key, in its client config and its chart
/// (from 2.29; facts.md §4: charts from 2.22 reject unknown keys).
#[must_use]
pub fn has_usage_key(version: &Version) -> bool {
    *version >= Version::parse("2.29").expect("literal")
}

/// Telepresence's config and log directories under the run directory, the `config.yml` with raised
/// timeouts (and, for a `version` from 2.29, telemetry and the local shortcut off; see
/// [`telepresence_config_yml`]), and `SCOUT_DISABLE=1` for every client.
// upstream: telepresenceio/telepresence pkg/client/cli/main.go@v2.20.2 (DEV_TELEPRESENCE_CONFIG_DIR,
// DEV_TELEPRESENCE_LOG_DIR); facts.md §4.
pub fn telepresence(run: &Path, timeouts: &TelepresenceTimeouts, version: Option<&Version>) -> ToolEnv {
    let config = telepresence_config_dir(run);
    let logs = telepresence_log_dir(run);
    let mut env = ToolEnv::default();
    env.var("DEV_TELEPRESENCE_CONFIG_DIR", &config);
    env.var("DEV_TELEPRESENCE_LOG_DIR", &logs);
    env.vars.push(("SCOUT_DISABLE".into(), "1".into()));
    env.files
        .push(FileToWrite { path: config.join("config.yml"), contents: telepresence_config_yml(timeouts, version) });
    env.dirs.extend([config, logs]);
    env
}

/// Everything `tool` needs: [`base`] plus its own part.
pub fn for_tool(tool: Tool, run: &Path, timeouts: &TelepresenceTimeouts) -> ToolEnv {
    let base = base(run);
    match tool {
        Tool::Helm => base.extend(helm(run)),
        // `telepresence helm install` runs an embedded Helm: keep its caches private too.
        Tool::Telepresence => base.extend(helm(run)).extend(telepresence(run, timeouts, None)),
        Tool::Docker => {
            let mut env = base;
            env.dirs.push(images_dir(run));
            env
        }
        Tool::Kind | Tool::Kubectl | Tool::Kyverno | Tool::Sudo | Tool::Df => base,
    }
}

/// Attaches the environment's variables to a command (later values replace earlier ones).
pub fn apply(mut cmd: CommandLine, env: &ToolEnv) -> CommandLine {
    for (k, v) in &env.vars {
        cmd.env.retain(|(key, _)| key != k);
        cmd.env.push((k.clone(), v.clone()));
    }
    cmd
}

/// Creates the directories and writes the files of `env`.
pub fn materialize(env: &ToolEnv) -> std::io::Result<()> {
    for d in &env.dirs {
        std::fs::create_dir_all(d)?;
    }
    for f in &env.files {
        if let Some(parent) = f.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&f.path, &f.contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_gets_private_home_and_kubeconfig() {
        let run = Path::new("/r");
        for tool in [Tool::Kind, Tool::Helm, Tool::Telepresence, Tool::Docker, Tool::Kubectl] {
            let env = for_tool(tool, run, &TelepresenceTimeouts::default());
            assert_eq!(env.get("HOME"), Some("/r/home"), "{tool:?}");
            assert_eq!(env.get("KUBECONFIG"), Some("/r/kubeconfig"), "{tool:?}");
            assert!(env.vars.iter().all(|(_, v)| v.starts_with("/r/") || v == "1"), "{tool:?}: {:?}", env.vars);
        }
    }

    #[test]
    fn helm_dirs_are_under_the_run() {
        let env = for_tool(Tool::Helm, Path::new("/r"), &TelepresenceTimeouts::default());
        for key in
            ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_REPOSITORY_CONFIG", "HELM_REPOSITORY_CACHE"]
        {
            assert!(env.get(key).is_some_and(|v| v.starts_with("/r/helm/")), "{key}");
        }
        assert!(env.get("DEV_TELEPRESENCE_CONFIG_DIR").is_none());
    }

    #[test]
    fn telepresence_config_raises_timeouts_and_disables_usage() {
        let t = TelepresenceTimeouts {
            helm: Duration::from_secs(240),
            intercept: Duration::from_secs(90),
            traffic_manager_connect: Duration::from_secs(75),
        };
        let env = for_tool(Tool::Telepresence, Path::new("/r"), &t);
        assert_eq!(env.get("DEV_TELEPRESENCE_CONFIG_DIR"), Some("/r/telepresence/config"));
        assert_eq!(env.get("DEV_TELEPRESENCE_LOG_DIR"), Some("/r/telepresence/logs"));
        assert_eq!(env.get("SCOUT_DISABLE"), Some("1"));
        let file = env.files.iter().find(|f| f.path.ends_with("config.yml")).expect("config.yml");
        assert_eq!(file.path, Path::new("/r/telepresence/config/config.yml"));
        let yaml: serde_json::Value = serde_saphyr::from_str(&file.contents).expect("valid YAML");
        assert_eq!(yaml["timeouts"]["helm"], "240s");
        assert_eq!(yaml["timeouts"]["intercept"], "90s");
        assert_eq!(yaml["timeouts"]["trafficManagerConnect"], "75s");
        // Before the version is known, no key a 2.2x client lacks.
        assert!(yaml.get("usage").is_none() && yaml.get("intercept").is_none(), "{yaml}");
        let yaml = |version: &str| -> serde_json::Value {
            serde_saphyr::from_str(&telepresence_config_yml(&t, Some(&Version::parse(version).unwrap()))).unwrap()
        };
        for old in ["2.20.2", "2.22.6", "2.27.4", "2.28.9"] {
            assert!(yaml(old).get("usage").is_none(), "{old}");
        }
        for new in ["2.29.0", "2.31.2", "2.32.1"] {
            assert_eq!(yaml(new)["usage"]["enabled"], false, "{new}");
            assert_eq!(yaml(new)["intercept"]["localShortcut"], false, "{new}");
        }
    }

    #[test]
    fn apply_replaces_existing_values() {
        let cmd = CommandLine::new(Tool::Kind).env("KUBECONFIG", "/elsewhere");
        let cmd = apply(cmd, &base(Path::new("/r")));
        let kube: Vec<_> = cmd.env.iter().filter(|(k, _)| k == "KUBECONFIG").collect();
        assert_eq!(kube, vec![&("KUBECONFIG".to_string(), "/r/kubeconfig".to_string())]);
    }

    #[test]
    fn materialize_writes_files() {
        let dir = std::env::temp_dir().join(format!("kyvtel-env-{}", std::process::id()));
        let env = for_tool(Tool::Telepresence, &dir, &TelepresenceTimeouts::default());
        materialize(&env).unwrap();
        assert!(dir.join("telepresence/config/config.yml").is_file());
        assert!(dir.join("helm/cache/repository").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
