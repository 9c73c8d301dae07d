//! The kind path as `kyvtel plan` shows it and `kyvtel run` executes it (the plan is what runs):
//! image preload that works on Docker 29, nested timeouts, telemetry per pinned version, and every
//! missing prerequisite named at once. Offline: no Docker, no kind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn kyvtel() -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("kyvtel"));
    c.current_dir(common::root());
    c
}

fn plan_json(args: &[&str]) -> Value {
    let out = kyvtel().args(["plan", "--output", "json"]).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `run` action of a plan: phases, evidence and teardown (with fallbacks), as (args, timeout).
fn runs(plan: &Value) -> Vec<(String, Vec<String>, Duration)> {
    let mut out = Vec::new();
    let mut visit = |a: &Value| {
        if a["op"] == "run" {
            let args = a["command"]["args"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string());
            let timeout = kyvtel::duration::parse(a["timeout"].as_str().unwrap()).unwrap();
            out.push((a["command"]["tool"].as_str().unwrap().to_string(), args.collect(), timeout));
        }
    };
    for p in plan["phases"].as_array().unwrap() {
        p["actions"].as_array().unwrap().iter().for_each(&mut visit);
    }
    plan["evidence"].as_array().into_iter().flatten().for_each(&mut visit);
    for t in plan["teardown"].as_array().unwrap() {
        t["actions"].as_array().unwrap().iter().for_each(&mut visit);
        t["onFailure"].as_array().into_iter().flatten().for_each(&mut visit);
    }
    out
}

fn catalog() -> Vec<String> {
    common::catalog_files().iter().map(|p| p.display().to_string()).collect()
}

/// Docker 29 defaults to the containerd image store, with which `kind load docker-image` fails
/// (kind issue 3795; facts.md §2): images are saved for one platform into the run directory and
/// loaded with `kind load image-archive`.
#[test]
fn images_are_preloaded_through_an_archive_in_the_run_directory() {
    let plan = plan_json(&["scenarios/documented-recipe.yaml"]);
    let all = runs(&plan);
    assert!(all.iter().all(|(_, a, _)| !a.windows(2).any(|w| w == ["load", "docker-image"])), "{all:?}");
    let preload: Vec<&(String, Vec<String>, Duration)> =
        all.iter().filter(|(t, a, _)| t == "docker" || a.first().is_some_and(|a| a == "load")).collect();
    let images = ["registry.k8s.io/e2e-test-images/agnhost:2.53", "ghcr.io/telepresenceio/tel2:2.32.1"];
    for img in images {
        let pull = preload.iter().find(|(t, a, _)| t == "docker" && a[0] == "pull" && a.last().unwrap() == img);
        let pull = pull.unwrap_or_else(|| panic!("pull {img}: {preload:?}"));
        assert_eq!(pull.1[..3], ["pull", "--platform", "linux/amd64"], "{pull:?}");
        let save = preload.iter().find(|(t, a, _)| t == "docker" && a[0] == "save" && a.last().unwrap() == img);
        let save = save.unwrap_or_else(|| panic!("save {img}: {preload:?}"));
        assert_eq!(save.1[..4], ["save", "--platform", "linux/amd64", "-o"], "{save:?}");
        let archive = &save.1[4];
        assert!(archive.starts_with("target/kyvtel-work/RUN_ID/documented-recipe/images/"), "{archive}");
        assert!(archive.ends_with(".tar"), "{archive}");
        let load = preload.iter().find(|(t, a, _)| t == "kind" && a.get(2) == Some(archive));
        let load = load.unwrap_or_else(|| panic!("load {archive}: {preload:?}"));
        assert_eq!(load.1, ["load", "image-archive", archive, "--name", "kyvtel-documented-recipe"]);
    }
}

/// A tool's own timeout (`--timeout`, `kind create --wait`, Telepresence's `timeouts.helm`) is
/// shorter than the runner's kill timeout for that command, so the tool reports its own last state.
#[test]
fn every_tool_timeout_is_shorter_than_the_runner_timeout_around_it() {
    let mut checked = 0;
    for scenario in catalog() {
        for provider in ["kind", "existing", "local"] {
            let plan = plan_json(&["--provider", provider, &scenario]);
            let plans: Vec<Value> = match plan["cells"].as_array() {
                Some(cells) => cells
                    .iter()
                    .flat_map(|c| {
                        let mut v = vec![c["setup"].clone()];
                        v.extend(c["scenarios"].as_array().unwrap().iter().cloned());
                        v
                    })
                    .collect(),
                None => vec![plan],
            };
            for p in &plans {
                for (tool, args, outer) in runs(p) {
                    for flag in ["--timeout", "--wait"] {
                        // `helm --wait` is a switch; `kind create --wait 120s` takes a duration.
                        if let Some(i) = args.iter().position(|a| a == flag)
                            && let Some(Ok(inner)) = args.get(i + 1).map(|d| kyvtel::duration::parse(d))
                        {
                            assert!(
                                inner < outer,
                                "{scenario} ({provider}): {tool} {args:?}: {flag} {inner:?} >= {outer:?}"
                            );
                            checked += 1;
                        }
                    }
                }
                for phase in p["phases"].as_array().into_iter().flatten() {
                    let acts = phase["actions"].as_array().unwrap();
                    let helm = acts.iter().find_map(|a| {
                        let c = a["contents"].as_str()?;
                        let line = c.lines().find(|l| l.trim_start().starts_with("helm:"))?;
                        kyvtel::duration::parse(line.split(':').nth(1)?.trim()).ok()
                    });
                    let install = acts.iter().find(|a| {
                        a["command"]["tool"] == "telepresence"
                            && a["command"]["args"][0] == "helm"
                            && a["command"]["args"][1] == "install"
                    });
                    if let (Some(inner), Some(a)) = (helm, install) {
                        let outer = kyvtel::duration::parse(a["timeout"].as_str().unwrap()).unwrap();
                        assert!(inner < outer, "{scenario}: timeouts.helm {inner:?} >= {outer:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10, "nested timeouts checked: {checked}");
}

/// A scenario file like the documented recipe, pinned to `version`, in `dir`.
fn pinned_recipe(dir: &Path, version: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::root().join("scenarios/documented-recipe.yaml")).unwrap();
    let text = text.replace("../kind-config/", &format!("{}/kind-config/", common::root().display()));
    let text = text.replace("policies/", &format!("{}/scenarios/policies/", common::root().display()));
    let text = text.replace("values/", &format!("{}/scenarios/values/", common::root().display()));
    let text = text.replace("workloads/", &format!("{}/scenarios/workloads/", common::root().display()));
    let text = text.replacen("spec:\n", &format!("spec:\n  versions:\n    telepresence: {version}\n"), 1);
    let f = dir.join(format!("recipe-{version}.yaml"));
    std::fs::write(&f, text).unwrap();
    f
}

/// Telemetry off where the pinned version has the key (facts.md §4: `usage` in the client config
/// and the chart's `usage.enabled` from 2.29; charts from 2.22 reject unknown keys), and
/// `SCOUT_DISABLE=1` for every client. Shown for every pinned Telepresence version.
#[test]
fn telemetry_is_off_as_each_pinned_version_accepts_it() {
    let dir = common::root().join(format!("target/tmp/telemetry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pins = kyvtel::scenario::pins::Pins::builtin();
    let mut shown = Vec::new();
    for version in pins.telepresence.releases.keys() {
        let f = pinned_recipe(&dir, version);
        let plan = plan_json(&["--allow-outside-root", f.to_str().unwrap()]);
        let phase = plan["phases"].as_array().unwrap().iter().find(|p| p["name"] == "install-telepresence").unwrap();
        let acts = phase["actions"].as_array().unwrap();
        let config = acts.iter().find_map(|a| a["contents"].as_str()).unwrap_or_default().to_string();
        let install = acts.iter().find(|a| a["command"]["args"][1] == "install").unwrap();
        let args: Vec<&str> = install["command"]["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let env = install["command"]["env"].to_string();
        let new = kyvtel::scenario::version::Version::parse(version).unwrap()
            >= kyvtel::scenario::version::Version::parse("2.29").unwrap();
        let chart = args.windows(2).any(|w| w == ["--set", "usage.enabled=false"]);
        let client = config.contains("usage:\n  enabled: false");
        assert_eq!(chart, new, "{version}: chart usage.enabled: {args:?}");
        assert_eq!(client, new, "{version}: client usage.enabled: {config}");
        assert!(env.contains("\"SCOUT_DISABLE\",\"1\""), "{version}: {env}");
        shown.push(format!("{version}: chart usage.enabled={chart}, client usage.enabled={client}, SCOUT_DISABLE=1"));
    }
    eprintln!("telemetry per pinned Telepresence version:\n  {}", shown.join("\n  "));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kyvtel run --provider kind` on a machine without Docker and without the tools lists every
/// missing prerequisite in one message, the blocking one (Docker) first, each with its fix.
#[test]
fn a_kind_run_names_every_missing_prerequisite_at_once() {
    let empty = common::root().join(format!("target/tmp/no-tools-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = kyvtel()
        .env("PATH", &empty)
        .env("KYVTEL_TOOLS_DIR", &empty)
        .env_remove("DOCKER_HOST")
        .args(["run", "--provider", "kind", "scenarios/documented-recipe.yaml", "--work-dir"])
        .arg(empty.join("work"))
        .arg("--report-dir")
        .arg(empty.join("reports"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{text}");
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}: {text}"));
    let docker = at("docker:");
    for other in ["kind:", "helm:", "telepresence:", "the Kyverno chart 3.9.1"] {
        assert!(at(other) > docker, "Docker first, then {other}: {text}");
    }
    assert!(text.matches("fix:").count() >= 5, "each with its fix: {text}");
    let _ = std::fs::remove_dir_all(&empty);
}

/// From 2.29 `intercept.localShortcut` answers a workstation's request locally (facts.md §4, §5.7),
/// so the traffic that proves the intercept is sent from inside the cluster: a short-lived client
/// pod, pinned by digest, fully qualified, from a registry the catalog's policies allow, running
/// non-root under the workload's own strict securityContext, part of the plan and of the teardown.
/// A host-side request stays as an extra check only.
#[test]
fn intercepted_traffic_is_sent_from_a_client_pod_inside_the_cluster() {
    let plan = plan_json(&["scenarios/documented-recipe.yaml"]);
    let phase = plan["phases"].as_array().unwrap().iter().find(|p| p["name"] == "send-traffic").unwrap();
    let acts = phase["actions"].as_array().unwrap();
    assert_eq!(acts[0]["op"], "clientRequest", "{phase}");
    let url = acts[0]["url"].as_str().unwrap();
    assert_eq!(url, "http://demo.kyvtel-app:80/");
    let pod = &acts[0]["pod"];
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["namespace"], "kyvtel-app");
    let pins = kyvtel::scenario::pins::Pins::builtin();
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], pins.images.client.as_str());
    assert!(pins.images.client.starts_with("registry.k8s.io/") && pins.images.client.contains("@sha256:"));
    assert_eq!(c["command"].as_array().unwrap().last().unwrap(), url);
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let workload = std::fs::read_to_string(common::root().join("scenarios/workloads/demo.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&workload).unwrap();
    let template = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(pod["spec"]["securityContext"], template["securityContext"]);
    assert_eq!(c["securityContext"], template["containers"][0]["securityContext"]);
    let hosts: Vec<&Value> = acts.iter().filter(|a| a["op"] == "request").collect();
    assert_eq!(hosts.len(), 1, "one host-side request, as an extra check: {phase}");
    let undo = plan["teardown"].as_array().unwrap().iter().find(|t| t["registeredBy"] == "send-traffic");
    let undo = undo.unwrap_or_else(|| panic!("the client pod is part of the teardown"));
    assert_eq!(undo["actions"][0]["op"], "delete", "{undo}");
    assert_eq!(undo["clusterOnly"], true, "{undo}");
}

/// `make test` (what `.ci/run` runs) never starts kind, whatever the machine has: its cargo test run
/// pins the e2e provider to `local`, and no command of the target names kind or `auto`.
#[test]
fn make_test_never_starts_kind() {
    let ci = std::fs::read_to_string(common::root().join(".ci/run")).unwrap();
    let commands: Vec<&str> =
        ci.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("set ")).collect();
    assert!(commands.contains(&"make test"), "{ci}");
    assert!(commands.iter().all(|l| *l == "make test" || l.starts_with("cd ") || l.starts_with("export ")), "{ci}");
    let make = std::fs::read_to_string(common::root().join("Makefile")).unwrap();
    let start = make.find("\ntest:").expect("a test target");
    let recipe: Vec<&str> = make[start + 1..].lines().skip(1).take_while(|l| l.starts_with('\t')).collect();
    let text = recipe.join("\n");
    let cargo_test = recipe.iter().find(|l| l.contains("test --all-targets")).expect("the cargo test line");
    assert!(cargo_test.contains("KYVTEL_E2E_PROVIDER=local"), "{cargo_test}");
    for never in ["--provider kind", "--provider auto", "kind create", "KYVTEL_E2E_PROVIDER=kind", "make e2e"] {
        assert!(!text.contains(never), "make test runs `{never}`:\n{text}");
    }
}
