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
use serde_json::{Value, json};

/// The seed (override: `KYVTEL_MODEL_SEED`).
const SEED: u64 = 0x6b79_7674_656c;
/// Workloads per Telepresence version (override: `KYVTEL_MODEL_CASES`).
const CASES: usize = 200;
/// How many simplifications a failing case may try.
const SHRINK_STEPS: usize = 6;
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

/// Cases a version's manager survives. Both versions' managers crash on an `inject-container-ports`
/// number that no container declares (a nil container in `appendServiceLessAgentContainerConfigs`),
/// and 2.20.2's on any failed config generation of an enabled workload (`watcher.go:714`; facts.md §7):
/// those would end the whole batch, so they are left out and counted.
fn survivable(case: &Case, version: &str) -> bool {
    let declared: Vec<String> = case
        .containers
        .iter()
        .flat_map(|c| {
            c.ports.iter().filter(|p| !p.udp).flat_map(|p| [p.number.to_string()].into_iter().chain(p.name.clone()))
        })
        .collect();
    let container_ports_ok = case.container_ports.as_ref().is_none_or(|l| l.iter().all(|p| declared.contains(p)));
    if version.starts_with("2.20") {
        container_ports_ok
            && !case.services.is_empty()
            && case.inject == Inject::Enabled
            && case.service_ports.is_none()
    } else {
        container_ports_ok
            || case
                .container_ports
                .as_ref()
                .is_some_and(|l| l.iter().all(|p| p.parse::<u16>().is_err() || declared.contains(p)))
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
    let mut coverage: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut summary = Vec::new();
    for version in versions {
        let started = Instant::now();
        let trees = corpus::draw(seed ^ u64::from(version.len() as u8), count * 2);
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
            if !survivable(&case, version) {
                left_out += 1;
                continue;
            }
            batches[kept % 3].cases.push((format!("w{i}"), case));
            kept += 1;
        }
        let mut scenarios = Vec::new();
        for b in &batches {
            let named: Vec<(String, Value)> =
                b.cases.iter().map(|(n, c)| (n.clone(), Value::Array(c.manifests(n, prefix(version))))).collect();
            scenarios.push(write_scenario(&dir, &scenario_name(version, b.values), version, b.values, &named));
            for (_, c) in &b.cases {
                for d in c.dimensions(b.values) {
                    *coverage.entry(d).or_insert(0) += 1;
                }
            }
        }
        let (records, output) = run(&scenarios, &dir.join(format!("reports-{version}")));
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
        if records.is_empty() {
            panic!("no drift record for Telepresence {version}: the run did not compare anything:\n{output}");
        }
        summary.push(format!(
            "Telepresence {version}: {kept} workloads (seed {seed:#x}; {left_out} drawn cases left out as crashing the manager), \
             {agreed} agree with the model, in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
    }
    println!("model differential test:");
    for s in &summary {
        println!("  {s}");
    }
    println!("  {:<28} {:<34} {:>6}", "dimension", "value", "cases");
    let mut thin = Vec::new();
    for ((dim, value), n) in &coverage {
        println!("  {dim:<28} {value:<34} {n:>6}");
        if *n < 5 {
            thin.push(format!("{dim}={value} ({n})"));
        }
    }
    if !failures.is_empty() {
        let fixtures = common::root().join("tests/fixtures/model");
        std::fs::create_dir_all(&fixtures).unwrap();
        for (version, values, name, case, record) in failures.iter().take(SHRINK_STEPS) {
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
