//! Differential tests of the injection model against the real Telepresence injectors the local
//! provider builds (2.20.2 and 2.31.0): generated workloads, created on the real stack in batches, each
//! injected pod (or refusal) compared field by field with the model's prediction from the same inputs
//! (the `compareModel` step). The corpus comes from a proptest strategy with a fixed seed; the test
//! prints the case count, the seed and how often each dimension occurred, and fails when any value
//! occurred fewer than 5 times. A disagreement is shrunk (bounded) and written to
//! `tests/fixtures/model/` for committing; committed fixtures are replayed first.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::corpus::{self, AgentValues, Case, Inject};
use common::local::{serial, skip_or_fail};
use kyvtel::predict::inject;
use kyvtel::scenario::version::Version;
use serde_json::{Value, json};

/// The seed (override: `KYVTEL_MODEL_SEED`).
const SEED: u64 = 0x6b79_7674_656c;
/// Workloads per Telepresence version (override: `KYVTEL_MODEL_CASES`).
const CASES: usize = 200;
/// How many simplifications a failing case may try (each one stack, about 15 s).
const SHRINK_STEPS: usize = 6;
/// How many failing cases per version are shrunk.
const SHRINK_CASES: usize = 2;
/// The workloads' namespace.
const NAMESPACE: &str = "kyvtel-model";
/// The versions whose injector the local provider builds (facts.md §7).
const VERSIONS: [&str; 2] = ["2.20.2", "2.31.0"];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn prefix(version: &str) -> &'static str {
    if version.starts_with("2.20") { "telepresence.getambassador.io/" } else { "telepresence.io/" }
}

/// Whether a version's manager survives the case. Both managers crash on an `inject-container-ports`
/// number that no container declares (a nil container in `appendServiceLessAgentContainerConfigs`), and
/// 2.20.2's on any failed config generation of an enabled workload (`watcher.go:714`; facts.md §7). Such
/// a case would end the whole batch, so it is left out and counted; the model's own config generation
/// says which (its `Failure`), and unit tests pin those predictions.
fn survivable(case: &Case, name: &str, version: &str) -> bool {
    let manifests = case.manifests(name, prefix(version));
    let services: Vec<Value> = manifests.iter().filter(|m| m["kind"] == "Service").cloned().collect();
    let deployment = manifests.iter().find(|m| m["kind"] == "Deployment").expect("a Deployment");
    let tp = inject::Telepresence { version: Version::parse(version).expect("version"), values: None };
    let workload =
        inject::Workload { kind: "Deployment", name, namespace: NAMESPACE, template: &deployment["spec"]["template"] };
    let cluster = inject::Cluster {
        services: &services,
        manager_namespace: "ambassador",
        trigger: inject::Trigger::Annotation,
        cluster_domain: None,
    };
    match inject::generate(&tp, &workload, &cluster) {
        Err(inject::Failure::Panic(_)) => false,
        Err(_) if version.starts_with("2.20") => case.inject != Inject::Enabled,
        _ => true,
    }
}

fn yaml_docs(docs: &[Value]) -> String {
    docs.iter().map(|d| serde_json::to_string(d).expect("json")).collect::<Vec<_>>().join("\n---\n")
}

/// Writes one scenario (one stack): every case's manifests, the values, a pinned version.
fn write_scenario(dir: &Path, name: &str, version: &str, values: AgentValues, cases: &[(String, Value)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    let docs: Vec<Value> = std::iter::once(namespace)
        .chain(cases.iter().flat_map(|(_, m)| m.as_array().cloned().unwrap_or_default()))
        .collect();
    std::fs::write(dir.join(format!("{name}-workloads.yaml")), yaml_docs(&docs)).unwrap();
    std::fs::write(dir.join(format!("{name}-values.yaml")), values.values().to_string()).unwrap();
    let first = &cases[0].0;
    let scenario = json!({
        "apiVersion": "kyvtel.dev/v1alpha1", "kind": "Scenario",
        "metadata": {"name": name, "description": "generated workloads for the differential test of the injection model"},
        "spec": {
            "versions": {"telepresence": version},
            "cluster": {"kindConfig": "../../../kind-config/default.yaml"},
            "kyverno": {"policies": []},
            "telepresence": {"managerNamespace": "ambassador", "values": format!("{name}-values.yaml")},
            "workload": {"namespace": NAMESPACE, "name": first, "manifests": [format!("{name}-workloads.yaml")]},
            "steps": [{"installKyverno": {}}, {"installTelepresence": {}}, {"deployWorkload": {}}, {"compareModel": {"timeout": "3m"}}],
        },
    });
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, serde_json::to_string(&scenario).unwrap()).unwrap();
    path
}

/// Runs scenarios on the local provider; returns each workload's drift record and the output.
fn run(scenarios: &[PathBuf], reports: &Path) -> (BTreeMap<String, Value>, String) {
    let out = common::kyvtel()
        .args(["run", "--provider", "local", "--report-dir"])
        .arg(reports)
        .args(scenarios)
        .output()
        .expect("kyvtel runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let mut records = BTreeMap::new();
    let Ok(runs) = std::fs::read_dir(reports) else { panic!("kyvtel wrote no report:\n{text}") };
    for run in runs.flatten() {
        for f in std::fs::read_dir(run.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            let Some(scenario) = name.strip_suffix("-model-drift.json") else { continue };
            let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(f.path()).unwrap()).unwrap();
            for r in list {
                records.insert(format!("{scenario}/{}", r["workload"].as_str().unwrap_or_default()), r);
            }
        }
    }
    (records, text)
}

/// Runs one case alone (its own stack) and returns its drift record.
fn single(dir: &Path, version: &str, values: AgentValues, name: &str, case: &Case) -> Option<Value> {
    let scenario = format!("shrink-{}-{name}", version.replace('.', "-"));
    let path = write_scenario(
        dir,
        &scenario,
        version,
        values,
        &[(name.to_string(), Value::Array(case.manifests(name, prefix(version))))],
    );
    let (records, _) = run(&[path], &dir.join(format!("reports-{scenario}")));
    records.into_values().next()
}

/// Committed shrunk cases of `version` (`tests/fixtures/model/*.json`), each as a scenario of its own.
fn replay_fixtures(dir: &Path, version: &str, scenarios: &mut Vec<PathBuf>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(common::root().join("tests/fixtures/model")) else { return out };
    for e in entries.flatten() {
        let Ok(f) = serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).unwrap_or_default()) else {
            continue;
        };
        if f["telepresence"] != version {
            continue;
        }
        let values = AgentValues::ALL.into_iter().find(|v| f["agentValues"] == v.label()).unwrap_or(AgentValues::Unset);
        let manifests = f["manifests"].clone();
        let name = manifests
            .as_array()
            .and_then(|m| m.iter().find(|d| d["kind"] == "Deployment"))
            .and_then(|d| d["metadata"]["name"].as_str())
            .unwrap_or_default()
            .to_string();
        let stem = e.path().file_stem().unwrap_or_default().to_string_lossy().to_string();
        let scenario = format!("fixture-{stem}");
        scenarios.push(write_scenario(dir, &scenario, version, values, &[(name, manifests)]));
        out.push((scenario, e.path().display().to_string()));
    }
    out
}

struct Batch {
    values: AgentValues,
    cases: Vec<(String, Case)>,
}

fn scenario_name(version: &str, values: AgentValues) -> String {
    format!(
        "model-{}-{}",
        version.replace('.', "-"),
        match values {
            AgentValues::Set => "set",
            AgentValues::Empty => "empty",
            AgentValues::Unset => "unset",
        }
    )
}

#[test]
fn the_model_matches_the_real_injectors_on_a_generated_corpus() {
    if skip_or_fail("the_model_matches_the_real_injectors_on_a_generated_corpus") {
        return;
    }
    let _one = serial();
    let seed = env_or("KYVTEL_MODEL_SEED", SEED);
    let count = env_or("KYVTEL_MODEL_CASES", CASES);
    let versions: Vec<&str> = std::env::var("KYVTEL_MODEL_VERSIONS")
        .map(|v| VERSIONS.iter().copied().filter(|x| v.split(',').any(|y| y == *x)).collect())
        .unwrap_or_else(|_| VERSIONS.to_vec());
    let dir = common::root().join("target/tmp").join(format!("model-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut failures = Vec::new();
    let mut coverage: BTreeMap<(&str, String), BTreeMap<&str, usize>> = BTreeMap::new();
    let mut summary = Vec::new();
    let versions_run = versions.clone();
    for version in versions {
        let started = Instant::now();
        // A corpus of its own per version (the version's digits mixed into the seed).
        let version_seed = version.bytes().fold(seed, |acc, b| acc.rotate_left(5) ^ u64::from(b));
        let mut trees = corpus::draw(version_seed, count * 3);
        let mut batches: Vec<Batch> =
            AgentValues::ALL.iter().map(|v| Batch { values: *v, cases: Vec::new() }).collect();
        let (mut kept, mut left_out) = (0, 0);
        for (i, tree) in trees.iter().enumerate() {
            if kept == count {
                break;
            }
            let mut case = tree.current();
            if batches[kept % 3].cases.is_empty() {
                // The scenario's named workload: the deploy step annotates it `enabled` anyway.
                case.inject = Inject::Enabled;
            }
            if !survivable(&case, &format!("w{i}"), version) {
                left_out += 1;
                continue;
            }
            batches[kept % 3].cases.push((format!("w{i}"), case));
            kept += 1;
        }
        assert_eq!(
            kept,
            count,
            "Telepresence {version}: only {kept} of {count} survivable cases in {} draws",
            trees.len()
        );
        let mut scenarios = Vec::new();
        for b in &batches {
            let named: Vec<(String, Value)> =
                b.cases.iter().map(|(n, c)| (n.clone(), Value::Array(c.manifests(n, prefix(version))))).collect();
            scenarios.push(write_scenario(&dir, &scenario_name(version, b.values), version, b.values, &named));
            for (_, c) in &b.cases {
                for d in c.dimensions(b.values) {
                    *coverage.entry(d).or_default().entry(version).or_insert(0) += 1;
                }
            }
        }
        let replayed = replay_fixtures(&dir, version, &mut scenarios);
        let (records, output) = run(&scenarios, &dir.join(format!("reports-{version}")));
        for (scenario, file) in &replayed {
            match records.iter().find(|(k, _)| k.starts_with(&format!("{scenario}@"))) {
                Some((_, r)) if r["differences"].as_array().is_some_and(Vec::is_empty) => {}
                other => panic!("committed fixture {file} still disagrees with the model: {other:?}"),
            }
        }
        let mut agreed = 0;
        for b in &batches {
            for (name, case) in &b.cases {
                let key = format!("{}@{version}/{name}", scenario_name(version, b.values));
                match records.get(&key) {
                    Some(r) if r["differences"].as_array().is_some_and(Vec::is_empty) => agreed += 1,
                    Some(r) => failures.push((version, b.values, name.clone(), case.clone(), r.clone())),
                    None => failures.push((version, b.values, name.clone(), case.clone(), json!({"missing": true}))),
                }
            }
        }
        // Bounded shrinking of the first failures of this version, one single-workload stack per try.
        for f in failures.iter_mut().filter(|f| f.0 == version).take(SHRINK_CASES) {
            let Some(tree) = f.2.strip_prefix('w').and_then(|i| i.parse::<usize>().ok()).and_then(|i| trees.get_mut(i))
            else {
                continue;
            };
            for step in 0..SHRINK_STEPS {
                if !tree.simplify() {
                    break;
                }
                let mut candidate = tree.current();
                // Alone in its scenario, the workload is the named one: the deploy step enables it.
                candidate.inject = Inject::Enabled;
                let name = format!("s{step}");
                let still = survivable(&candidate, &name, version)
                    && single(&dir, version, f.1, &name, &candidate)
                        .is_some_and(|r| r["differences"].as_array().is_some_and(|d| !d.is_empty()));
                if still {
                    f.3 = candidate;
                } else if !tree.complicate() {
                    break;
                }
            }
        }
        if records.is_empty() {
            panic!("no drift record for Telepresence {version}: the run did not compare anything:\n{output}");
        }
        summary.push(format!(
            "Telepresence {version}: {kept} workloads (seed {version_seed:#x}, from {seed:#x}; {left_out} drawn cases left out as crashing the manager), \
             {agreed} agree with the model, in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    println!("model differential test:");
    for s in &summary {
        println!("  {s}");
    }
    println!("  {:<24} {:<30} {:>6} {:>8} {:>8}", "dimension", "value", "cases", "2.20.2", "2.31.0");
    let mut thin = Vec::new();
    for (dim, value) in corpus::EXPECTED {
        if !coverage.contains_key(&(*dim, (*value).to_string())) {
            thin.push(format!("{dim}={value} (never drawn)"));
        }
    }
    for ((dim, value), per) in &coverage {
        let n: usize = per.values().sum();
        let of = |v: &str| per.get(v).copied().unwrap_or(0);
        println!("  {dim:<24} {value:<30} {n:>6} {:>8} {:>8}", of("2.20.2"), of("2.31.0"));
        for v in &versions_run {
            if of(v) < 5 {
                thin.push(format!("{dim}={value} ({} for {v})", of(v)));
            }
        }
    }
    if !failures.is_empty() {
        let fixtures = common::root().join("tests/fixtures/model");
        std::fs::create_dir_all(&fixtures).unwrap();
        for (version, values, name, case, record) in failures.iter().take(SHRINK_CASES * 2) {
            let path = fixtures.join(format!("failing-{}-{name}.json", version.replace('.', "-")));
            let manifests = case.manifests(name, prefix(version));
            let fixture = json!({"telepresence": version, "agentValues": values.label(), "manifests": manifests, "record": record});
            std::fs::write(&path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
        }
        let shown: Vec<String> = failures
            .iter()
            .take(8)
            .map(|(v, values, name, _, r)| {
                format!(
                    "{v} ({}) {name}: model {} / live {}: {}",
                    values.label(),
                    r["model"],
                    r["live"],
                    r["differences"]
                )
            })
            .collect();
        panic!(
            "{} workload(s) disagree with the model (fixtures in tests/fixtures/model/):\n{}",
            failures.len(),
            shown.join("\n")
        );
    }
    assert!(thin.is_empty(), "dimension values seen fewer than 5 times: {}", thin.join(", "));
}
