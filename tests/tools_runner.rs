//! `DuctRunner` against fake tools: environment allow-list, output capture, timeouts.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kyvtel::tools::runner::DuctRunner;
use kyvtel::tools::{CommandLine, RunError, Runner, Tool};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tools-runner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    dir
}

/// Installs a shell script as `tool` in `dir/bin`.
fn fake(dir: &Path, tool: Tool, script: &str) {
    let path = dir.join("bin").join(tool.program());
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn runner(dir: &Path) -> DuctRunner {
    DuctRunner::new(dir.join("run")).with_tools_dir(Some(dir.join("bin")))
}

fn env_of(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn child_environment_is_allow_listed_and_run_private() {
    let dir = scratch("env");
    fake(&dir, Tool::Kubectl, "env");
    let out = runner(&dir).run(&CommandLine::new(Tool::Kubectl), Duration::from_secs(20)).unwrap();
    assert!(out.success(), "{out:?}");
    let env = env_of(&out.stdout);
    let run = dir.join("run");
    assert_eq!(env["HOME"], run.join("home").display().to_string());
    assert_eq!(env["KUBECONFIG"], run.join("kubeconfig").display().to_string());
    assert_eq!(env["XDG_CONFIG_HOME"], run.join("home/.config").display().to_string());
    assert!(env["PATH"].starts_with(&dir.join("bin").display().to_string()), "{}", env["PATH"]);
    // cargo sets these for the test process; they are not on the allow-list.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "leaked: {env:?}");
    assert!(!env.contains_key("CARGO_PKG_NAME"), "leaked: {env:?}");
    let allowed: Vec<&str> = kyvtel::tools::runner::INHERITED.to_vec();
    let private = ["HOME", "KUBECONFIG", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "DOCKER_CONFIG"];
    // `sh` itself may add PWD, SHLVL and `_`.
    let shell = ["PWD", "SHLVL", "_", "OLDPWD"];
    for key in env.keys() {
        assert!(
            allowed.contains(&key.as_str()) || private.contains(&key.as_str()) || shell.contains(&key.as_str()),
            "unexpected variable {key}"
        );
    }
}

#[test]
fn command_env_wins() {
    let dir = scratch("override");
    fake(&dir, Tool::Helm, "env");
    let cmd = CommandLine::new(Tool::Helm).env("KUBECONFIG", "/elsewhere/kubeconfig").env("HELM_CACHE_HOME", "/c");
    let out = runner(&dir).run(&cmd, Duration::from_secs(20)).unwrap();
    let env = env_of(&out.stdout);
    assert_eq!(env["KUBECONFIG"], "/elsewhere/kubeconfig");
    assert_eq!(env["HELM_CACHE_HOME"], "/c");
}

#[test]
fn captures_output_status_and_arguments() {
    let dir = scratch("capture");
    fake(&dir, Tool::Kind, r#"echo "args:$*"; echo "to stderr" >&2; exit 3"#);
    let cmd = CommandLine::new(Tool::Kind).args(["get", "clusters", "with space"]);
    let out = runner(&dir).run(&cmd, Duration::from_secs(20)).unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, "args:get clusters with space\n");
    assert_eq!(out.stderr, "to stderr\n");
}

#[test]
fn timeout_kills_the_process_group_and_reports_last_output() {
    let dir = scratch("timeout");
    let pidfile = dir.join("grandchild.pid");
    fake(
        &dir,
        Tool::Telepresence,
        &format!("echo connecting; echo 'still waiting' >&2; sleep 60 & echo $! > {}; wait", pidfile.display()),
    );
    let started = Instant::now();
    let err = runner(&dir)
        .run(&CommandLine::new(Tool::Telepresence).args(["connect"]), Duration::from_millis(700))
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let RunError::Timeout { command, timeout, last_output } = &err else { panic!("{err}") };
    assert_eq!(command, "telepresence connect");
    assert_eq!(*timeout, Duration::from_millis(700));
    assert!(last_output.contains("connecting") && last_output.contains("still waiting"), "{last_output}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    // A killed child lingers as a zombie until reaped by init; treat Z as gone.
    let alive = || std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|s| !s.contains(") Z "));
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(), "the grandchild `sleep` survived the timeout");
}

#[test]
fn missing_program_is_not_found() {
    let dir = scratch("missing");
    let r = runner(&dir);
    if r.program_path(Tool::Kyverno).is_some() {
        eprintln!("skipped: a `kyverno` is on PATH here");
        return;
    }
    let err = r.run(&CommandLine::new(Tool::Kyverno).args(["version"]), Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, RunError::NotFound("kyverno")), "{err}");
}

const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz";

/// The tool's stderr reaches the console in `error: ...`, redacted as the report files are.
#[test]
fn a_failing_tools_stderr_is_redacted_on_the_console() {
    let dir = scratch("console");
    let kyverno = dir.join("bin/kyverno");
    std::fs::write(
        &kyverno,
        format!(
            "#!/bin/sh\necho 'Error: fetching policies: Authorization: Bearer {JWT}' >&2\n\
             echo 'retry with token: s3cr3t-console-value' >&2\nexit 1\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kyverno, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = assert_cmd::Command::cargo_bin("kyvtel")
        .unwrap()
        .args(["check", "scenarios/documented-recipe.yaml"])
        .env("KYVERNO_BIN", &kyverno)
        .env("TMPDIR", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error: kyverno failed during check"), "{stderr}");
    assert!(stderr.contains("REDACTED"), "{stderr}");
    for secret in ["c2lnbmF0dXJl", "eyJzdWIi", "s3cr3t-console-value"] {
        assert!(!stderr.contains(secret), "{secret} reached the console: {stderr}");
    }
}

/// Everything printed to stderr goes through the redacting console (`kyvtel::report::console`).
#[test]
fn nothing_prints_to_stderr_around_the_redacting_console() {
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("report/console.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    // `eprintln!(` / `eprint!(` on their own, not as the end of `console_eprintln!(`.
                    let bare = |m: &str| code.match_indices(m).any(|(i, _)| !code[..i].ends_with('_'));
                    if bare("eprintln!(") || bare("eprint!(") {
                        offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "print through kyvtel::report::console instead:\n{}", offenders.join("\n"));
}
