//! `kyvtel plan` and `kyvtel schema`: snapshots of what people read, and the committed schema.

mod common;

use std::path::Path;

use common::{kyvtel, root};

/// Compares `actual` with the committed snapshot; `KYVTEL_UPDATE_SNAPSHOTS=1` rewrites it.
fn assert_snapshot(name: &str, actual: &str) {
    let path = root().join("tests/snapshots").join(name);
    if std::env::var_os("KYVTEL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from the output (first differing line: {:?}); review and rerun with KYVTEL_UPDATE_SNAPSHOTS=1\n--- actual ---\n{actual}",
            path.display(),
            first.map(|i| i + 1)
        );
    }
}

fn stdout(args: &[&str]) -> String {
    let out = kyvtel().args(args).env_remove("KYVTEL_TOOLS_DIR").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn plan_of_the_documented_recipe_matches_the_snapshot() {
    assert_snapshot("plan-documented-recipe.txt", &stdout(&["plan", "scenarios/documented-recipe.yaml"]));
}

#[test]
fn the_local_plan_of_the_literal_recipe_matches_the_snapshot() {
    // Once per buildable Telepresence version, with the components, the charts, the skipped steps
    // and the adaptations, exactly as `kyvtel run --provider local` executes it.
    let text = stdout(&["plan", "--provider", "local", "scenarios/documented-recipe-literal.yaml"]);
    assert_snapshot("plan-local-documented-recipe-literal.txt", &text);
}

#[test]
fn the_local_plan_starts_the_control_plane_and_skips_only_kubelet_steps() {
    let text = stdout(&["plan", "--provider", "local", "scenarios/documented-recipe.yaml"]);
    // One stack (control plane, Kyverno) for the cell, shared by the scenario's two versions.
    assert!(text.contains("=== cell 1 of 1: cluster kyvtel-cell-k1-35-8-kc3-9-1 (local) ==="), "{text}");
    assert!(text.contains("(once, before its first scenario): start-control-plane, install-kyverno ---"), "{text}");
    assert_eq!(text.matches("local   start .tools/local/etcd ").count(), 1, "{text}");
    for v in ["2.20.2", "2.31.0"] {
        assert!(text.contains(&format!("plan for scenario documented-recipe@{v} ")), "{text}");
        assert!(
            text.contains(&format!(
                "start .tools/local/traffic-{v} with the args and env of Deployment ambassador/traffic-manager"
            )),
            "{text}"
        );
    }
    for step in ["connect", "send-traffic", "leave"] {
        let at = text.find(&format!(". {step}\n")).unwrap_or_else(|| panic!("{step}: {text}"));
        assert!(
            text[at..].lines().nth(1).unwrap_or_default().contains("skip    local provider: no kubelet"),
            "{step}: {text}"
        );
    }
    // 2.20.2 reads the legacy annotation prefix, 2.31.0 the new one; Services come before Deployments.
    assert!(text.contains("telepresence.getambassador.io/inject-traffic-agent: enabled"), "{text}");
    assert!(text.contains("telepresence.io/inject-traffic-agent: enabled"), "{text}");
    assert!(text.contains("--post-renderer-args post-render --post-renderer-args --port=8443"), "{text}");
    assert!(text.contains("local provider adaptations (what differs from a real cluster, and why):"), "{text}");
    assert!(!text.contains("run     kind ") && !text.contains("run     telepresence "), "{text}");
    // Each scenario resets what it set up on the shared stack (the release without hooks, its
    // namespaces, the policies, the workload), stopping its traffic-manager first.
    let member = &text[text.find("--- scenario 2 of 2").unwrap()..text.find("--- teardown of").unwrap()];
    let reset = &member[member.rfind("teardown (").unwrap()..];
    let order: Vec<&str> = reset.lines().filter(|l| l.trim_start().starts_with('#')).collect();
    assert!(order[0].contains("delete workload demo") && order[1].contains("stop traffic-manager"), "{reset}");
    assert!(reset.contains("helm uninstall traffic-manager -n ambassador --no-hooks"), "{reset}");
    assert!(reset.contains("remove the policies") && reset.contains("delete namespace kyvtel-app"), "{reset}");
    // The cell's teardown stops the control plane and Kyverno newest first.
    let cell = &text[text.find("--- teardown of").unwrap()..];
    let order: Vec<&str> = cell.lines().filter(|l| l.trim_start().starts_with('#')).collect();
    assert!(order[0].contains("stop kyverno") && order.last().unwrap().contains("stop etcd"), "{cell}");
}

#[test]
fn plan_never_probes_and_defaults_to_kind() {
    let text = stdout(&["plan", "scenarios/documented-recipe.yaml"]);
    assert!(text.contains("cluster: kyvtel-documented-recipe (kind)"), "{text}");
}

#[test]
fn plan_commands_match_the_facts() {
    let plan = stdout(&["plan", "scenarios/documented-recipe.yaml"]);
    for expected in [
        // facts.md §2: digest-pinned node image, run-private kubeconfig on create and delete.
        "kind create cluster --name kyvtel-documented-recipe --config kind-config/default.yaml --image kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0 --kubeconfig target/kyvtel-work/RUN_ID/documented-recipe/kubeconfig --wait 120s",
        "kind delete cluster --name kyvtel-documented-recipe --kubeconfig target/kyvtel-work/RUN_ID/documented-recipe/kubeconfig",
        // facts.md §3: install from the verified chart tgz.
        "helm install kyverno .tools/bin/charts/kyverno-3.9.1.tgz -n kyverno --create-namespace --wait --timeout 10m",
        // facts.md §4: explicit manager namespace, values file, --mount=false, detach from 2.30.
        "telepresence helm install --manager-namespace ambassador --values scenarios/values/telepresence-agent-security.yaml",
        "telepresence intercept demo --port 8080:80 --mount=false",
        "telepresence status --format json",
        "telepresence detach demo",
        "telepresence helm uninstall --manager-namespace ambassador --no-hooks",
        "StatefulSet ambassador/traffic-manager is ready",
        "KUBECONFIG=target/kyvtel-work/RUN_ID/documented-recipe/kubeconfig",
        "DEV_TELEPRESENCE_CONFIG_DIR=target/kyvtel-work/RUN_ID/documented-recipe/telepresence/config",
    ] {
        assert!(plan.contains(expected), "plan lacks `{expected}`");
    }
    // The exclusions are merged into exactly the three named rules.
    assert_eq!(plan.matches("- ambassador").count(), 3, "{plan}");
}

#[test]
fn teardown_is_the_reverse_of_setup() {
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&["plan", "scenarios/documented-recipe.yaml", "--output", "json"])).unwrap();
    let registered: Vec<&str> =
        v["teardown"].as_array().unwrap().iter().map(|t| t["registeredBy"].as_str().unwrap()).collect();
    let phases: Vec<&str> = v["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    // Every teardown entry is registered by a phase, in phase order; the printed order is its reverse.
    let positions: Vec<usize> = registered.iter().map(|r| phases.iter().position(|p| p == r).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{registered:?}");
    let text = stdout(&["plan", "scenarios/documented-recipe.yaml"]);
    let td = &text[text.find("teardown (LIFO").unwrap()..];
    let printed: Vec<&str> = td.lines().filter(|l| l.starts_with("  #")).collect();
    assert!(printed.first().unwrap().contains("delete the traffic client pod"), "{td}");
    assert!(printed.last().unwrap().contains("delete the kind cluster"), "{td}");
}

#[test]
fn plan_all_matches_the_snapshot() {
    assert_snapshot("plan-all.txt", &stdout(&["plan", "--all"]));
}

/// The catalog's scenarios that keep Kyverno's default chart values, in catalog order: they share
/// the first cell (a scenario with its own Kyverno values gets a cell of its own).
fn default_kyverno_names() -> Vec<String> {
    kyvtel::scenario::catalog::files(&root().join("scenarios"))
        .unwrap()
        .iter()
        .map(|f| kyvtel::scenario::load(f).unwrap())
        .filter(|l| l.scenario.spec.kyverno.values.is_none())
        .map(|l| l.name().to_string())
        .collect()
}

/// How many distinct Kyverno chart values the catalog uses: one cell each.
fn cell_count() -> usize {
    let mut values: Vec<String> = kyvtel::scenario::catalog::files(&root().join("scenarios"))
        .unwrap()
        .iter()
        .map(|f| format!("{:?}", kyvtel::scenario::load(f).unwrap().scenario.spec.kyverno.values))
        .collect();
    values.sort();
    values.dedup();
    values.len()
}

#[test]
fn plan_all_shares_one_cluster_and_one_kyverno_install() {
    let text = stdout(&["plan", "--all", "scenarios"]);
    // One cluster and one Kyverno install per cell: per distinct set of Kyverno chart values.
    let cells = cell_count();
    assert!(cells < default_kyverno_names().len());
    assert_eq!(text.matches("run     kind create cluster").count(), cells, "{text}");
    assert_eq!(text.matches("run     helm install kyverno").count(), cells, "{text}");
    assert_eq!(text.matches("run     kind delete cluster").count(), cells, "{text}");
    assert!(text.contains("kind create cluster --name kyvtel-cell-k1-35-8-kc3-9-1 "), "{text}");
    // Each scenario installs its own traffic-manager, in its own section, after the shared setup.
    let setup = text.find("--- shared setup of kyvtel-cell-k1-35-8-kc3-9-1").unwrap();
    let mut sections = Vec::new();
    for name in default_kyverno_names() {
        let heading = format!(": {name} (shared phases create-cluster, preload-images, install-kyverno omitted) ---");
        let start = text.find(&heading).unwrap_or_else(|| panic!("no section for {name}"));
        assert!(start > setup);
        sections.push(start);
    }
    let teardown = text.find("--- teardown of kyvtel-cell-k1-35-8-kc3-9-1").unwrap();
    sections.push(teardown);
    for w in sections.windows(2) {
        let section = &text[w[0]..w[1]];
        assert_eq!(section.matches("run     telepresence helm install --manager-namespace ambassador").count(), 1);
        assert!(!section.contains("helm install kyverno") && !section.contains("kind create cluster"), "{section}");
        assert!(section.contains("KUBECONFIG=target/kyvtel-work/RUN_ID/kyvtel-cell-k1-35-8-kc3-9-1/kubeconfig"));
    }
    assert!(text[teardown..].contains("uninstall Kyverno"), "{}", &text[teardown..]);
}

#[test]
fn plan_all_as_json_lists_cells_with_their_setup_and_scenarios() {
    let v: serde_json::Value = serde_json::from_str(&stdout(&["plan", "--all", "--output", "json"])).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), cell_count());
    let cell = &cells[0];
    assert_eq!(cell["cluster"], "kyvtel-cell-k1-35-8-kc3-9-1");
    assert_eq!(cell["key"]["kyvernoChart"], "3.9.1");
    let setup: Vec<&str> =
        cell["setup"]["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(setup, ["create-cluster", "preload-images", "install-kyverno"]);
    let scenarios: Vec<&str> =
        cell["scenarios"].as_array().unwrap().iter().map(|p| p["scenario"].as_str().unwrap()).collect();
    assert_eq!(scenarios, default_kyverno_names());
    for p in cell["scenarios"].as_array().unwrap() {
        assert_eq!(p["cluster"], cell["cluster"]);
        let kubeconfig = p["env"].as_array().unwrap().iter().find(|kv| kv[0] == "KUBECONFIG").unwrap();
        assert_eq!(kubeconfig[1], cell["kubeconfig"]);
    }
}

#[rstest::rstest]
#[case::neither(&["plan"], "give a scenario file, or --all")]
#[case::both(&["plan", "scenarios/documented-recipe.yaml", "--all"], "not both")]
fn plan_needs_exactly_one_of_a_scenario_and_all(#[case] args: &[&str], #[case] message: &str) {
    let out = kyvtel().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn plan_all_rejects_two_scenarios_with_one_name() {
    let out = kyvtel()
        .args(["plan", "--all", "scenarios/documented-recipe.yaml", "scenarios/documented-recipe.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scenarios/documented-recipe.yaml:5:9: scenario name `documented-recipe` is also used"),
        "{stderr}"
    );
}

#[test]
fn committed_schema_is_in_sync() {
    let committed = std::fs::read_to_string(root().join("schema/scenario.schema.json")).unwrap();
    assert_eq!(stdout(&["schema"]), committed, "run `cargo run -- schema > schema/scenario.schema.json`");
}

#[test]
fn every_scenario_points_editors_at_the_schema() {
    for path in kyvtel::scenario::catalog::files(&root().join("scenarios")).unwrap() {
        let first = std::fs::read_to_string(&path).unwrap().lines().next().unwrap_or_default().to_string();
        let target = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: first line is `{first}`", path.display()));
        assert!(
            Path::new(&path).parent().unwrap().join(target).is_file(),
            "{}: schema link {target} is broken",
            path.display()
        );
    }
}

#[test]
fn schema_rejects_unknown_fields() {
    let v: serde_json::Value = serde_json::from_str(&stdout(&["schema"])).unwrap();
    assert_eq!(v["additionalProperties"], serde_json::json!(false));
    assert_eq!(v["properties"]["apiVersion"]["$ref"].as_str().map(|r| r.contains("ApiVersion")), Some(true));
}

#[test]
fn a_scenario_on_another_telepresence_shows_the_binary_it_runs() {
    let fixture = "tests/fixtures/run/recipe-telepresence-2.27.yaml";
    let text = stdout(&["plan", fixture]);
    assert!(text.contains("telepresence  2.27.4 (runs .tools/bin/telepresence-2.27.4/telepresence)"), "{text}");
    assert!(text.contains("docker pull --platform linux/amd64 ghcr.io/telepresenceio/tel2:2.27.4"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&["plan", fixture, "--output", "json"])).unwrap();
    assert_eq!(v["telepresenceBinary"], ".tools/bin/telepresence-2.27.4/telepresence");
    let recipe: serde_json::Value =
        serde_json::from_str(&stdout(&["plan", "scenarios/documented-recipe.yaml", "--output", "json"])).unwrap();
    assert!(recipe.get("telepresenceBinary").is_none(), "the default runs from the tools directory or PATH");
}

#[test]
fn the_plan_names_the_tools_directory_the_run_uses() {
    let out = kyvtel()
        .args(["plan", "tests/fixtures/run/recipe-telepresence-2.27.yaml"])
        .env("KYVTEL_TOOLS_DIR", "/opt/kyvtel-tools")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(runs /opt/kyvtel-tools/telepresence-2.27.4/telepresence)"), "{text}");
    assert!(text.contains("helm install kyverno /opt/kyvtel-tools/charts/kyverno-3.9.1.tgz"), "{text}");
    assert!(text.contains("KUBECONFIG=target/kyvtel-work/RUN_ID/recipe-on-telepresence-2-27/kubeconfig"), "{text}");
}

/// The local provider creates every Service before its Deployment (Telepresence 2.20.2 panics on a
/// Deployment without its Service, and its webhook then fails open) and adds the injection annotation
/// to the pod template only; the scenario's files are unchanged.
#[test]
fn the_local_plan_creates_services_first_and_annotates_only_the_pod_template() {
    let json: serde_json::Value = serde_json::from_str(&stdout(&[
        "plan",
        "--provider",
        "local",
        "--output",
        "json",
        "scenarios/documented-recipe.yaml",
    ]))
    .unwrap();
    for plan in json["cells"][0]["scenarios"].as_array().unwrap() {
        let deploy = plan["phases"].as_array().unwrap().iter().find(|p| p["name"] == "deploy-workload").unwrap();
        let objects = deploy["actions"][0]["objects"].as_array().unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        let first_deployment = kinds.iter().position(|k| *k == "Deployment").unwrap();
        assert!(kinds[..first_deployment].contains(&"Service"), "{kinds:?}");
        assert!(!kinds[first_deployment..].contains(&"Service"), "{kinds:?}");
        let d = &objects[first_deployment];
        let key = if plan["versions"]["telepresence"] == "2.20.2" {
            "telepresence.getambassador.io/inject-traffic-agent"
        } else {
            "telepresence.io/inject-traffic-agent"
        };
        assert_eq!(d["spec"]["template"]["metadata"]["annotations"][key], "enabled", "{d}");
        assert!(d["metadata"]["annotations"].get(key).is_none(), "only the pod template: {d}");
    }
    let kind: serde_json::Value =
        serde_json::from_str(&stdout(&["plan", "--output", "json", "scenarios/documented-recipe.yaml"])).unwrap();
    let text = kind.to_string();
    assert!(!text.contains("inject-traffic-agent"), "kind injects by intercept, never by annotation");
}

/// By default a local stack is restored from a matching snapshot (the installs run on a cold start
/// only, and a cold start saves one); `--cold` plans neither restore nor save, and no condition.
#[test]
fn the_local_plan_restores_a_snapshot_unless_cold() {
    let warm = stdout(&["plan", "--provider", "local", "scenarios/documented-recipe.yaml"]);
    assert_eq!(warm.matches("local   restore into ").count(), 1, "{warm}");
    assert_eq!(warm.matches("local   [cold start only] save ").count(), 1, "{warm}");
    assert!(warm.contains("run     [cold start only] helm install kyverno "), "{warm}");
    assert!(warm.contains("local   [warm start only] set kyverno.io/last-request-time"), "{warm}");
    let cold = stdout(&["plan", "--provider", "local", "--cold", "scenarios/documented-recipe.yaml"]);
    for absent in ["restore into", "snapshot", "start only]"] {
        assert!(!cold.contains(absent), "--cold: {absent}\n{cold}");
    }
    assert!(cold.contains("run     helm install kyverno "), "{cold}");
    for args in [
        &["plan", "--cold", "scenarios/documented-recipe.yaml"][..],
        &["run", "--provider", "kind", "--cold", "scenarios/documented-recipe.yaml"][..],
    ] {
        let out = kyvtel().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--cold goes with --provider local"), "{args:?}");
    }
}

/// `--unconfined` plans a run without namespaces: every port picked free (none of the confined run's
/// fixed ones), every start cold (no snapshot: its webhooks name ports), the Telepresence chart still
/// installed (its admission is real) but the traffic-manager never started (it reads its credentials
/// from a fixed path under /var/run, which kyvtel writes only on a private /run), so every step that
/// needs its injector is skipped with that reason.
#[test]
fn the_unconfined_local_plan_picks_free_ports_and_skips_what_needs_the_injector() {
    let text = stdout(&["plan", "--provider", "local", "--unconfined", "scenarios/documented-recipe.yaml"]);
    assert!(text.contains("unconfined: no private namespaces"), "{text}");
    for fixed in [":2379", ":2380", ":6443", ":9443", "--secure-port=6443", "--webhookServerPort=9443"] {
        // A whole port number, not the start of a longer one (a picked port may begin with these digits).
        let whole =
            text.match_indices(fixed).any(|(i, _)| !text[i + fixed.len()..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(!whole, "a confined run's fixed port {fixed}\n{text}");
    }
    for absent in ["restore into", "snapshot", "start only]", "start .tools/local/traffic-"] {
        assert!(!text.contains(absent), "--unconfined: {absent}\n{text}");
    }
    assert_eq!(text.matches("helm install traffic-manager ").count(), 2, "{text}");
    for step in ["deploy-workload", "intercept"] {
        let at = text.find(&format!(". {step}")).unwrap_or_else(|| panic!("{step}\n{text}"));
        let next = text[at..].lines().nth(1).unwrap_or_default();
        assert!(next.contains("skip    unconfined: the traffic-manager is not started"), "{step}: {next}");
    }
    for args in [
        &["plan", "--unconfined", "scenarios/documented-recipe.yaml"][..],
        &["run", "--provider", "kind", "--unconfined", "scenarios/documented-recipe.yaml"][..],
    ] {
        let out = kyvtel().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--unconfined goes with --provider local"), "{args:?}");
    }
}

/// A reader that stops early (`kyvtel plan --all --output json | head -c 10`) is no error of
/// kyvtel's: no panic and no "Broken pipe" message; kyvtel ends as other command-line tools do.
#[test]
fn plan_into_a_reader_that_stops_early_does_not_panic() {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    // More than a pipe buffer (64 KiB), so that kyvtel is still writing when the reader goes.
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kyvtel"))
        .current_dir(root())
        .args(["plan", "--provider", "local", "--all", "scenarios", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is closed here (dropped).
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{:?}", out.status);
}
