//! The live suite: one test per scenario file, `cargo test --test e2e -- <scenario>` runs one.
//!
//! Each scenario runs on a provider that can run here: kind when the prerequisites `kyvtel doctor`
//! checks (Docker, kind, helm, telepresence, sudo, TUN) are met, else the local provider (real
//! control plane, Kyverno and Telepresence injector built from Go modules, in private namespaces),
//! which runs the scenario once per Telepresence version it builds. `KYVTEL_E2E_PROVIDER=kind|local`
//! forces one. When neither can run, each scenario is reported **ignored, with the reason**; with
//! `KYVTEL_REQUIRE_LIVE=1`, a missing prerequisite is a failure. Missing pinned tools (kind) and
//! components (local) are provisioned first.

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
        let findings = kyvtel::doctor::machine_findings();
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
        kyvtel::doctor::machine_findings()
            .into_iter()
            .filter(|f| !f.ok && f.check != "kubectl")
            .map(|f| format!("{}: {}", f.check, f.detail))
            .collect()
    })
}

/// The catalog: the scenario files under `scenarios/` (its top level and `reports/`), relative to the
/// repository root (the working directory).
fn catalog() -> Vec<PathBuf> {
    kyvtel::scenario::catalog::files(Path::new("scenarios")).expect("scenarios/")
}

/// What the local provider still lacks here (empty when it can run); builds missing components.
fn local_missing() -> &'static Vec<String> {
    static MISSING: OnceLock<Vec<String>> = OnceLock::new();
    MISSING.get_or_init(|| {
        let mut missing = Vec::new();
        if let Some(why) = kyvtel::provider::local::confine::probe().filter(|_| !unconfined()) {
            missing.push(format!("namespaces: {why}"));
        }
        let pins = Pins::builtin();
        let versions: Vec<&str> = pins.local.telepresence.keys().map(String::as_str).collect();
        if let Err(e) = session::local::build_components(&pins, &versions) {
            missing.push(format!("components: {e}"));
        }
        missing
    })
}

/// The provider to use, or why none can run.
fn provider() -> Result<&'static str, String> {
    let forced = std::env::var("KYVTEL_E2E_PROVIDER").unwrap_or_default();
    if forced != "local" && missing_prerequisites().is_empty() {
        return Ok("kind");
    }
    if forced == "kind" {
        return Err(format!(
            "live prerequisites missing: {} (KYVTEL_E2E_PROVIDER=kind)",
            missing_prerequisites().join("; ")
        ));
    }
    let local = local_missing();
    if local.is_empty() {
        return Ok("local");
    }
    Err(format!(
        "live prerequisites missing: kind: {}; local: {}",
        missing_prerequisites().join("; "),
        local.join("; ")
    ))
}

/// `KYVTEL_UNCONFINED=1` (`make e2e UNCONFINED=1`): the local provider runs with `--unconfined`.
fn unconfined() -> bool {
    std::env::var("KYVTEL_UNCONFINED").is_ok_and(|v| v == "1")
}

/// Runs the kyvtel binary (the local provider enters its namespaces in a fresh process).
/// `KYVTEL_STRICT_MODEL=1` (`make test`): unexplained model drift fails the scenario.
fn strict_model() -> bool {
    std::env::var("KYVTEL_STRICT_MODEL").is_ok_and(|v| v == "1")
}

fn run_local(path: &Path) -> Result<Completion, Failed> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kyvtel"))
        .args(["run", "--provider", "local"])
        .args(unconfined().then_some("--unconfined"))
        .args(strict_model().then_some("--strict-model"))
        .arg(path)
        .current_dir(root())
        .output()
        .map_err(|e| Failed::from(format!("kyvtel: {e}")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => Ok(Completion::Completed),
        code => Err(format!("scenario failed on the local provider (exit {code:?}):\n{text}").into()),
    }
}

fn run_scenario(path: &Path) -> Result<Completion, Failed> {
    if std::env::var("KYVTEL_SKIP_LOCAL").is_ok_and(|v| v == "1")
        && std::env::var("KYVTEL_E2E_PROVIDER").is_ok_and(|v| v == "local")
    {
        return Ok(Completion::ignored_with("KYVTEL_SKIP_LOCAL=1: the local provider's run was skipped on request"));
    }
    let provider = match provider() {
        Ok(p) => p,
        Err(reason) => {
            if std::env::var("KYVTEL_REQUIRE_LIVE").is_ok_and(|v| v == "1") {
                return Err(format!("KYVTEL_REQUIRE_LIVE=1 and {reason}").into());
            }
            return Ok(Completion::ignored_with(reason));
        }
    };
    if provider == "local" {
        return run_local(path);
    }
    let opts = SessionOptions {
        confinement: Default::default(),
        scenarios: vec![path.to_path_buf()],
        keep: false,
        reuse: false,
        provider: Provider::Kind,
        report_dir: root().join("target/kyvtel"),
        work_dir: root().join(session::DEFAULT_WORK_DIR),
        junit: None,
        cold: false,
        unconfined: false,
        strict_model: strict_model(),
        cell: None,
        record: false,
        retries: 0,
        // The catalog's quarantine.yaml: a tolerated failure completes (reported quarantined).
        quarantine: kyvtel::cli::validate::quarantine(&[path.to_path_buf()], None).map_err(|e| e.to_string())?,
    };
    match session::run(&opts) {
        Ok(Exit::Success) => Ok(Completion::Completed),
        Ok(other) => Err(format!("scenario failed (exit {})", other.code()).into()),
        Err(e) => Err(e.to_string().into()),
    }
}

/// The first line of a run: which provider runs the catalog, why, and what is never run here.
fn announce() -> String {
    let forced = std::env::var("KYVTEL_E2E_PROVIDER").unwrap_or_default();
    if std::env::var("KYVTEL_SKIP_LOCAL").is_ok_and(|v| v == "1") && forced == "local" {
        return "e2e: KYVTEL_SKIP_LOCAL=1: the local provider's catalog run is skipped (each scenario reported \
                ignored); kind is never started"
            .into();
    }
    match provider() {
        Ok("local") if unconfined() => "e2e: provider local --unconfined (KYVTEL_UNCONFINED=1): no namespaces, \
             kind is never started; the traffic-manager is not started, so each scenario's injection and pod \
             checks are skipped with the reason (a partial run)"
            .into(),
        Ok("local") => format!(
            "e2e: provider local ({}): the catalog runs on a real control plane, Kyverno and injector; kind is never \
             started; kubelet-only steps are skipped with the reason",
            if forced == "local" { "KYVTEL_E2E_PROVIDER=local".to_string() } else { "kind cannot run here".into() }
        ),
        Ok(p) => format!(
            "e2e: provider {p} ({}): the catalog runs on kind clusters kyvtel creates and deletes",
            if forced == p { format!("KYVTEL_E2E_PROVIDER={p}") } else { "doctor's kind checks pass".into() }
        ),
        Err(why) => format!("e2e: no provider can run here: {why}"),
    }
}

fn main() {
    std::env::set_current_dir(root()).expect("repository root");
    // Never "0 run, passed": the summary line counts ignored scenarios, each with its reason.
    let mut args = Arguments::from_args();
    // Telepresence's daemons are machine-wide: scenarios never run concurrently.
    args.test_threads = Some(1);
    let trials: Vec<Trial> = catalog()
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap_or_default().to_string_lossy().to_string();
            Trial::ignorable_test(name, move || run_scenario(&p)).with_kind("live")
        })
        .collect();
    if !args.list {
        eprintln!("{}", announce());
    }
    // A filter that names no scenario (a typo in `make e2e SCENARIO=...`) fails, listing the names:
    // "0 passed" would read as success.
    if let Some(filter) = &args.filter {
        let names: Vec<&str> = trials.iter().map(Trial::name).collect();
        let matches = |n: &&str| if args.exact { *n == filter.as_str() } else { n.contains(filter.as_str()) };
        if !args.list && !names.iter().any(matches) {
            eprintln!("error: no scenario matches `{filter}`; the scenarios are: {}", names.join(", "));
            std::process::exit(2);
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
