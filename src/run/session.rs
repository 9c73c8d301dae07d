//! One `kyvtel run`: load every scenario (bad input stops everything, exit 2), check the
//! prerequisites (exit 3), then execute each plan in turn with Ctrl-C forwarding, write an evidence
//! bundle for each failure, and write the JUnit, JSON and Markdown reports.
//!
//! Telepresence daemons are machine-wide, so scenarios run one after another, never concurrently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::api::ClusterApi;
use super::executor::{ScenarioResult, Settings, Status, execute};
use super::kube_api::KubeApi;
use super::reuse::{self, Decision};
use crate::kube::ownership::Owner;
use crate::plan::{self, Options, Plan};
use crate::provider::ClusterProvider;
use crate::provider::k3s::{K3sProvider, K3sSpec};
use crate::report::evidence::Bundle;
use crate::report::{self, Phase, RunReport, ScenarioReport, Verdict};
use crate::scenario::{self, Loaded};
use crate::tools::install::ToolsDir;
use crate::tools::runner::{DuctRunner, default_tools_dir, interrupt_all};
use crate::tools::{Runner, Tool, kind, telepresence};
use crate::{Error, Exit, Result};

/// Where the cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A kind cluster per scenario, created and deleted by the plan.
    Kind,
    /// A privileged k3s container (testcontainers) per scenario, removed afterwards; images are
    /// pulled by k3s itself (it cannot preload them).
    K3s {
        /// The image, `rancher/k3s:<tag>` (kyvtel pins none).
        image: String,
    },
    /// An existing cluster: a kubeconfig and optional context; never created or deleted.
    Existing {
        /// The user's kubeconfig (copied into the run directory, never written).
        kubeconfig: PathBuf,
        /// The context to use.
        context: Option<String>,
    },
}

/// What a run needs to know.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The scenario files.
    pub scenarios: Vec<PathBuf>,
    /// Keep clusters after the run.
    pub keep: bool,
    /// Reuse a kind cluster whose fingerprint matches (implies keeping it).
    pub reuse: bool,
    /// The cluster provider.
    pub provider: Provider,
    /// The report root (`target/kyvtel`).
    pub report_dir: PathBuf,
    /// An extra JUnit output path.
    pub junit: Option<PathBuf>,
}

/// A run id that sorts by time: `run-<unix seconds>-<pid>`.
pub fn new_run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    format!("run-{secs}-{}", std::process::id())
}

/// A random-enough per-run token for the traffic check (time, pid and address entropy).
fn new_token(run_id: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    let local = 0u8;
    format!("{run_id}-{nanos:08x}-{:x}", std::ptr::addr_of!(local) as usize & 0xffff)
}

/// Loads every scenario; all problems are reported together, and nothing runs if there is one.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Loaded>> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        match scenario::load(p) {
            Ok(l) => loaded.push(l),
            Err(Error::Input(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() { Ok(loaded) } else { Err(Error::Input(problems)) }
}

/// Rewrites a kind plan for an existing cluster: no cluster creation, no image preloading, and
/// nothing in the teardown that deletes the cluster.
pub fn for_existing_cluster(plan: Plan) -> Plan {
    plan.without_phases(&["create-cluster", "preload-images"])
}

/// Copies the user's kubeconfig into the run directory, selecting `context`; the user's file is
/// only read.
fn private_kubeconfig(user: &Path, context: Option<&str>, target: &Path) -> Result<()> {
    let src = crate::yaml::read(user)?;
    let docs = crate::yaml::documents(user, &src)?;
    let mut cfg =
        docs.into_iter().next().map(|d| d.value).ok_or_else(|| Error::input(user, None, "empty kubeconfig"))?;
    if let Some(c) = context {
        let known = cfg["contexts"].as_array().is_some_and(|cs| cs.iter().any(|x| x["name"] == c));
        if !known {
            return Err(Error::input(user, None, format!("no context `{c}` in this kubeconfig")));
        }
        cfg["current-context"] = serde_json::json!(c);
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::infra(format!("create {}", dir.display()), e))?;
    }
    let text = serde_saphyr::to_string(&cfg).map_err(|e| Error::infra("serialize kubeconfig", e))?;
    std::fs::write(target, text).map_err(|e| Error::infra(format!("write {}", target.display()), e))
}

/// Writes the evidence bundle of a failed scenario and returns its directory.
fn write_evidence(
    root: &Path,
    run_id: &str,
    plan: &Plan,
    result: &ScenarioResult,
    runner: &dyn Runner,
    kind_cluster: bool,
) -> std::io::Result<PathBuf> {
    let mut b = Bundle::create(root, run_id, &plan.scenario)?;
    let summary = serde_json::to_string_pretty(result).unwrap_or_default();
    b.add("result.json", "phase results, pod checks and teardown of this scenario", summary.as_bytes())?;
    for (name, content) in &result.evidence {
        b.add(name, "collected from the cluster after the failure", content.as_bytes())?;
    }
    let zip = b.dir().join("telepresence-gather-logs.zip");
    if let Ok(o) = runner.run(&telepresence::gather_logs(&zip), Duration::from_secs(120)) {
        let note = if o.success() { "telepresence gather-logs" } else { "telepresence gather-logs (failed)" };
        if zip.is_file() {
            let _ = b.add_file("telepresence-gather-logs.zip", note, &zip);
        } else {
            b.add("telepresence-gather-logs.txt", note, format!("{}\n{}", o.stdout, o.stderr).as_bytes())?;
        }
    }
    if kind_cluster {
        let dir = b.dir().join("kind-logs");
        let _ = runner.run(&kind::export_logs(&plan.cluster, &dir), Duration::from_secs(180));
        if dir.is_dir() {
            b.add(
                "kind-logs.txt",
                "kind export logs (directory kind-logs/ next to this file)",
                dir.display().to_string().as_bytes(),
            )?;
        }
    }
    b.finish()
}

fn scenario_report(plan: &Plan, r: &ScenarioResult, took: Duration, evidence: Option<PathBuf>) -> ScenarioReport {
    let verdict = if r.passed {
        Verdict::Passed
    } else if r.cancelled {
        Verdict::Failed { message: "cancelled (Ctrl-C)".into() }
    } else {
        Verdict::Failed { message: r.failure().unwrap_or_else(|| "failed".into()) }
    };
    let mut s = ScenarioReport::new(&plan.scenario, verdict, took);
    s.phases = r
        .phases
        .iter()
        .filter(|p| !matches!(p.status, Status::Skipped(_)))
        .map(|p| Phase {
            name: p.name.clone(),
            duration: Duration::from_secs_f64(p.seconds),
            ok: p.status == Status::Passed,
        })
        .collect();
    s.evidence = evidence;
    s
}

/// Runs the scenarios; returns exit 0 when all pass, 1 when one fails.
pub fn run(opts: &SessionOptions) -> Result<Exit> {
    let loaded = load_all(&opts.scenarios)?;
    if let Provider::Existing { kubeconfig, .. } = &opts.provider
        && !kubeconfig.is_file()
    {
        return Err(Error::input(kubeconfig, None, "file not found"));
    }
    let findings = crate::cli::doctor::machine_findings();
    let needed: &[&str] = match opts.provider {
        Provider::Kind => &["docker", "kind", "helm", "telepresence", "sudo", "tun"],
        Provider::K3s { .. } => &["docker", "helm", "telepresence", "sudo", "tun"],
        Provider::Existing { .. } => &["helm", "telepresence", "sudo", "tun"],
    };
    let missing: Vec<String> = findings
        .iter()
        .filter(|f| !f.ok && needed.contains(&f.check.as_str()))
        .map(|f| format!("{}: {} (fix: {})", f.check, f.detail, f.fix))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Prerequisite(missing.join("; ")));
    }

    let run_id = new_run_id();
    let root = opts.report_dir.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::infra("start the async runtime", e))?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping the current step, then tearing down (Ctrl-C again has no effect)");
            let _ = cancel_tx.send(true);
            interrupt_all();
        }
    });

    let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut report = RunReport {
        run_id: run_id.clone(),
        started_at: format!("{started}"),
        versions: Default::default(),
        digests: Default::default(),
        server_version: None,
        scenarios: Vec::new(),
    };
    let progress = report::progress::Progress::detect();
    let mut refused = false;
    for l in &loaded {
        let work = root.join(&run_id).join("work").join(l.name());
        let mut p = plan::build(l, &Options { run_dir: work.clone(), tools: ToolsDir::at(default_tools_dir()) });
        let kind_cluster = opts.provider == Provider::Kind;
        let mut k3s = None;
        let (kubeconfig, context) = match &opts.provider {
            Provider::Kind => (crate::tools::env::kubeconfig(&work), None),
            Provider::K3s { image } => {
                p = for_existing_cluster(p);
                let spec = K3sSpec {
                    image: image.clone(),
                    kubeconfig: crate::tools::env::kubeconfig(&work),
                    startup_timeout: Duration::from_secs(300),
                };
                // A malformed image reference is bad input.
                let provider = K3sProvider::new(spec).map_err(|e| Error::Usage(format!("--k3s-image: {e}")))?;
                let ensured = rt
                    .block_on(provider.ensure())
                    .map_err(|e| Error::infra(format!("start k3s ({image}) for {}", l.name()), e))?;
                k3s = Some(provider);
                (ensured.cluster.kubeconfig, ensured.cluster.context)
            }
            Provider::Existing { kubeconfig, context } => {
                p = for_existing_cluster(p);
                let private = crate::tools::env::kubeconfig(&work);
                private_kubeconfig(kubeconfig, context.as_deref(), &private)?;
                (private, None)
            }
        };
        report.versions.insert(format!("{}/telepresence", l.name()), p.versions.telepresence.clone());
        report.versions.insert(format!("{}/kyvernoChart", l.name()), p.versions.kyverno_chart.clone());
        report.digests.insert(format!("{}/nodeImage", l.name()), p.versions.node_image.reference.clone());
        // The run-private HOME, Helm and Telepresence directories exist before any tool runs.
        for tool in [Tool::Kind, Tool::Helm, Tool::Telepresence, Tool::Docker] {
            crate::tools::env::materialize(&crate::tools::env::for_tool(tool, &work, &Default::default()))
                .map_err(|e| Error::infra(format!("prepare the run directory {}", work.display()), e))?;
        }
        let runner: Arc<dyn Runner> = Arc::new(DuctRunner::new(&work).with_tools_dir(Some(default_tools_dir())));
        let api = KubeApi::new(kubeconfig.clone(), context, Owner::new(&run_id));
        let t0 = Instant::now();
        let mut keep = opts.keep;
        let mut record = None;
        if opts.reuse && kind_cluster {
            keep = true;
            let config = std::fs::read_to_string(&l.kind_config)
                .map_err(|e| Error::infra(format!("read {}", l.kind_config.display()), e))?;
            let want = reuse::expected(&p, &config);
            match rt.block_on(reuse::decide(&p, &api, runner.clone(), &want, &kubeconfig)) {
                Ok(Decision::Reuse) => {
                    eprintln!("reusing cluster {} (fingerprint matches)", p.cluster);
                    p = reuse::reused(p);
                }
                Ok(Decision::Create) => record = Some(want),
                Ok(Decision::Refuse(why)) => {
                    eprintln!("refused: {why}");
                    refused = true;
                    let mut r = ScenarioReport::new(l.name(), Verdict::Failed { message: why }, t0.elapsed());
                    r.phases = Vec::new();
                    report.scenarios.push(r);
                    continue;
                }
                Err(e) => return Err(Error::infra("check the cluster for --reuse", e)),
            }
        }
        let settings = Settings { runner: runner.clone(), token: new_token(&run_id), keep, cancel: cancel_rx.clone() };
        let phase = progress.phase(l.name(), "run");
        let result = rt.block_on(execute(&p, &api, &settings));
        phase.finish(result.passed);
        if let Some(provider) = k3s.take()
            && let Err(e) = rt.block_on(provider.delete())
        {
            eprintln!("warning: could not remove the k3s container: {e}");
        }
        let set_up = |name: &str| result.phases.iter().any(|ph| ph.name == name && ph.status == Status::Passed);
        if let Some(fp) = record
            && reuse::SETUP_PHASES.iter().all(|ph| set_up(ph))
            && let Err(e) = rt.block_on(api.write_fingerprint(&fp))
        {
            eprintln!("warning: could not record the cluster fingerprint for --reuse: {e}");
        }
        let evidence = if result.passed {
            None
        } else {
            match write_evidence(&root, &run_id, &p, &result, runner.as_ref(), kind_cluster) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    eprintln!("warning: could not write the evidence bundle: {e}");
                    None
                }
            }
        };
        if !result.drift.is_empty() {
            eprintln!("model drift in {} (the offline injection model differs from the live pod):", l.name());
            for d in &result.drift {
                eprintln!("  {d}");
            }
            let file = root.join(&run_id).join(format!("{}-model-drift.json", l.name()));
            let _ = std::fs::create_dir_all(root.join(&run_id));
            let _ = std::fs::write(&file, serde_json::to_string_pretty(&result.drift).unwrap_or_default());
        }
        for ph in &result.phases {
            eprintln!("  {:<24} {:>7.1}s  {}", ph.name, ph.seconds, status_text(&ph.status));
        }
        report.scenarios.push(scenario_report(&p, &result, t0.elapsed(), evidence));
        if result.cancelled {
            break;
        }
    }
    let written = report
        .write(&root.join(&run_id), opts.junit.as_deref())
        .map_err(|e| Error::infra(format!("write reports under {}", root.display()), e))?;
    eprintln!("reports: {}, {}, {}", written.junit.display(), written.json.display(), written.markdown.display());
    println!("{}", report.closing_line());
    Ok(if refused {
        Exit::Infra
    } else if report.counts().failed == 0 {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Passed => "passed".into(),
        Status::Failed(r) => format!("FAILED: {r}"),
        Status::Skipped(r) => format!("skipped ({r})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_cluster_plans_never_create_or_delete_the_cluster() {
        let l = scenario::load(Path::new("scenarios/documented-recipe.yaml")).unwrap();
        let full = plan::build(&l, &Options::default());
        let p = for_existing_cluster(full.clone());
        let text = plan::render::text(&p);
        assert!(!text.contains("kind create cluster") && !text.contains("kind delete cluster"), "{text}");
        assert_eq!(p.teardown.len(), full.teardown.len() - 1);
        // The leave step still undoes the intercept entry.
        let undo = p.phases.iter().flat_map(|ph| &ph.actions).find_map(|a| match a {
            plan::Action::Undo { index } => Some(*index),
            _ => None,
        });
        assert!(p.teardown[undo.unwrap()].label.starts_with("leave the intercept"));
    }

    #[test]
    fn private_kubeconfig_selects_the_context_and_leaves_the_source_alone() {
        let dir = std::env::temp_dir().join(format!("kyvtel-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = dir.join("user");
        let src = "apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: a}\n- name: b\n  context: {cluster: b}\n";
        std::fs::write(&user, src).unwrap();
        let target = dir.join("run/kubeconfig");
        private_kubeconfig(&user, Some("b"), &target).unwrap();
        assert!(std::fs::read_to_string(&target).unwrap().contains("current-context: b"));
        assert_eq!(std::fs::read_to_string(&user).unwrap(), src);
        let err = private_kubeconfig(&user, Some("zz"), &target).unwrap_err().to_string();
        assert!(err.contains("no context `zz`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
