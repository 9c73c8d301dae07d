//! The live suite: one test per scenario file, `cargo test --test e2e -- <scenario>` runs one.
//!
//! Without the prerequisites `kyvtel doctor` checks (Docker, kind, helm, telepresence, sudo, TUN),
//! each scenario is reported **ignored, with the reason**. With `KYVTEL_REQUIRE_LIVE=1`, a missing
//! prerequisite is a failure. Missing pinned tools are provisioned first with the same code as
//! `kyvtel tools install`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kyvtel::Exit;
use kyvtel::run::session::{self, Provider, SessionOptions};
use kyvtel::scenario::pins::Pins;
use kyvtel::tools::install::{self, Item, Request, ToolsDir, lock};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Provisions missing pinned tools once, then returns what is still missing (empty when ready).
fn missing_prerequisites() -> &'static Vec<String> {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    MISSING.get_or_init(|| {
        let findings = kyvtel::cli::doctor::machine_findings();
        let docker = findings.iter().find(|f| f.check == "docker");
        // Tools are only worth downloading where a cluster can run at all.
        if docker.is_some_and(|d| d.ok) {
            let pins = Pins::builtin();
            let mut requests: Vec<Request> = [Item::Kind, Item::Helm, Item::Telepresence, Item::KyvernoChart]
                .into_iter()
                .map(|i| Request::default_for(i, &pins))
                .collect();
            // Every catalog scenario's own Telepresence and chart. A scenario that does not load
            // adds nothing here; its own test reports the input error.
            let loaded: Vec<_> = catalog().iter().filter_map(|p| kyvtel::scenario::load(p).ok()).collect();
            requests.extend(Request::for_scenarios(&loaded));
            let requests = install::dedup(requests);
            if let Err(e) = install::ensure_tools(&ToolsDir::from_env(), &root().join(lock::FILE_NAME), &requests) {
                return vec![format!("tools: {e}")];
            }
        }
        kyvtel::cli::doctor::machine_findings()
            .into_iter()
            .filter(|f| !f.ok && f.check != "kubectl")
            .map(|f| format!("{}: {}", f.check, f.detail))
            .collect()
    })
}

/// The catalog: `scenarios/*.yaml`, sorted (relative to the repository root, the working directory).
fn catalog() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("scenarios")
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn run_scenario(path: &Path) -> Result<Completion, Failed> {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        let reason = format!("live prerequisites missing: {}", missing.join("; "));
        if std::env::var("KYVTEL_REQUIRE_LIVE").is_ok_and(|v| v == "1") {
            return Err(format!("KYVTEL_REQUIRE_LIVE=1 and {reason}").into());
        }
        return Ok(Completion::ignored_with(reason));
    }
    let opts = SessionOptions {
        scenarios: vec![path.to_path_buf()],
        keep: false,
        reuse: false,
        provider: Provider::Kind,
        report_dir: root().join("target/kyvtel"),
        work_dir: root().join(session::DEFAULT_WORK_DIR),
        junit: None,
    };
    match session::run(&opts) {
        Ok(Exit::Success) => Ok(Completion::Completed),
        Ok(other) => Err(format!("scenario failed (exit {})", other.code()).into()),
        Err(e) => Err(e.to_string().into()),
    }
}

fn main() {
    std::env::set_current_dir(root()).expect("repository root");
    let mut args = Arguments::from_args();
    // Telepresence's daemons are machine-wide: scenarios never run concurrently.
    args.test_threads = Some(1);
    let trials = catalog()
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().to_string();
            Trial::ignorable_test(name, move || run_scenario(&p)).with_kind("live")
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
