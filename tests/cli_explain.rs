//! `kyvtel explain`: every exit code, the real sample, JSON shape, `--pod`, hints.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use rstest::rstest;
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn denial(name: &str) -> PathBuf {
    root().join("tests/fixtures/denials").join(name)
}

fn pod(name: &str) -> PathBuf {
    root().join("tests/fixtures/pods").join(name)
}

fn explain(args: &[&Path]) -> Command {
    let mut cmd = Command::cargo_bin("kyvtel").expect("the kyvtel binary");
    cmd.arg("explain").args(args);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The shared directory: env `KYVTEL_SHARED_DIR`, default `<CARGO_MANIFEST_DIR>/../shared`.
fn shared_dir() -> PathBuf {
    std::env::var_os("KYVTEL_SHARED_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared"))
}

#[test]
fn real_sample_cluster_scoped_namespace_label() {
    let sample = shared_dir().join("fixtures/kyverno/denial-namespace-label.txt");
    if !sample.is_file() {
        eprintln!("skipped: {} not found (set KYVTEL_SHARED_DIR)", sample.display());
        return;
    }
    let out = explain(&[Path::new("--output"), Path::new("json"), &sample]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["webhook"], "validate.kyverno.svc-fail");
    assert_eq!(v["resource"], json!({"kind": "Namespace", "namespace": "", "name": "asdfhl"}));
    let violations = v["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0]["policy"], "require-ns-owner-label");
    assert_eq!(violations[0]["rule"], "check-for-namespace-owner-label");
    assert_eq!(violations[0]["paths"], json!(["/metadata/labels/uw.systems/owner/"]));
    // Folded over four lines in the source; one line once decoded.
    assert_eq!(
        violations[0]["message"],
        "The label `uw.systems/owner` is required. Check policy at \
         https://github.com/utilitywarehouse/system-manifests/tree/master/kyverno/policies/namespaces/require-ns-owner-label.yaml \
         for allowed label values."
    );
    assert_eq!(v["hints"], json!([]));
}

#[rstest]
#[case::kubectl_stderr("kubectl-agent-blocked.txt")]
#[case::replicaset_event("replicaset-event.txt")]
#[case::combined_events("replicaset-combined-events.txt")]
#[case::statefulset_event("statefulset-traffic-manager.txt")]
#[case::replicafailure_crlf("replicafailure-init-container-crlf.txt")]
#[case::any_pattern("anypattern.txt")]
#[case::autogen("deployment-traffic-manager-autogen.txt")]
fn every_form_exits_0(#[case] fixture: &str) {
    let out = explain(&[&denial(fixture)]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Kyverno (validate.kyverno.svc-fail) denied "), "{}", text(&out.stdout));
}

#[test]
fn json_with_pod_names_containers_and_hints() {
    let out = explain(&[
        Path::new("--pod"),
        &pod("agent-recipe-2.32.yaml"),
        Path::new("--output"),
        Path::new("json"),
        &denial("replicaset-combined-events.txt"),
    ])
    .output()
    .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["resource"]["name"], "demo-7d9c5b6f4-x2x9q");
    let targets: Vec<&Value> = v["violations"].as_array().unwrap().iter().map(|x| &x["targets"]).collect();
    assert_eq!(targets, [&json!([null]), &json!(["container/traffic-agent"]), &json!(["container/traffic-agent"])]);
    let hints: Vec<(&str, &str)> = v["hints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["cause"].as_str().unwrap(), h["fixedBy"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hints,
        [
            ("agent-blocked-by-container-rule", "documented-recipe"),
            ("agent-image-blocked-by-registry", "hardened-exemption")
        ]
    );
}

#[test]
fn human_output_with_pod_names_the_container_and_the_fix() {
    let out = explain(&[Path::new("--pod"), &pod("agent-recipe-2.32.yaml"), &denial("kubectl-agent-blocked.txt")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("at /spec/containers/1/securityContext/allowPrivilegeEscalation/  (container/traffic-agent)"),
        "{s}"
    );
    assert!(
        s.contains("fix demonstrated by scenario documented-recipe; reproduced by scenario documented-recipe-literal"),
        "{s}"
    );
}

#[test]
fn reads_standard_input_by_default() {
    let src = std::fs::read_to_string(denial("statefulset-traffic-manager.txt")).unwrap();
    let out = explain(&[]).write_stdin(src).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("fix demonstrated by scenario documented-recipe"), "{}", text(&out.stdout));
}

#[rstest]
#[case::not_a_denial(
    "not-a-denial.txt",
    "not an admission denial: expected `admission webhook \"<name>\" denied the request:`"
)]
#[case::another_webhook(
    "injector-denied.txt",
    "denied by another webhook `agent-injector-ambassador.getambassador.io`, not by Kyverno"
)]
#[case::no_policy_list(
    "kyverno-without-policy-list.txt",
    "expected a line `resource <Kind>/<namespace>/<name> was blocked"
)]
#[case::broken_policy_list("broken-policy-list.txt", "broken-policy-list.txt:5:1: expected the policy list as YAML")]
#[case::missing_file("nope.txt", "nope.txt: file not found")]
fn not_a_kyverno_denial_exits_2(#[case] fixture: &str, #[case] says: &str) {
    let out = explain(&[&denial(fixture)]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_pod_exits_2() {
    let out = explain(&[Path::new("--pod"), &pod("bad-capabilities.yaml"), &denial("replicaset-event.txt")])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bad-capabilities.yaml:13:16:"), "{}", text(&out.stderr));
}

/// Real texts of the real Kyverno v1.19.1 admission controller (`tests/fixtures/denials/real-1.19.1`,
/// provenance in its README): every ClusterPolicy and Policy denial in the wrappings `explain` reads
/// today (the raw API message, the `Error creating:` event, the ReplicaSet condition, `kubectl
/// create` output) gives the webhook, the resource the text names and each violation's policy and
/// rule. The `kubectl get -o yaml|json` and `describe` wrappings, ValidatingPolicy,
/// ImageValidatingPolicy, generated VAP, policy-webhook and Pod Security Admission texts are not read
/// yet (issue 11 stays open for them).
#[test]
fn real_kyverno_1_19_denials_are_read() {
    let dir = root().join("tests/fixtures/denials/real-1.19.1");
    let blocked = regex::Regex::new(r"resource (\w+)/([^/\s]+)/(\S+) was blocked").unwrap();
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read_to_string(&path).unwrap_or_default();
        let wrapped = name.contains(".kubectl-get-") || name.contains(".kubectl-describe-");
        if !name.ends_with(".txt") || wrapped || !raw.contains("admission webhook \"validate.kyverno.svc-fail\"") {
            continue;
        }
        let out = explain(&[Path::new("--output"), Path::new("json"), &path]).output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(v["webhook"], "validate.kyverno.svc-fail", "{name}");
        let c = blocked.captures(&raw).unwrap_or_else(|| panic!("{name}: no resource line"));
        assert_eq!(
            (v["resource"]["kind"].as_str(), v["resource"]["namespace"].as_str(), v["resource"]["name"].as_str()),
            (Some(&c[1]), Some(&c[2]), Some(&c[3])),
            "{name}"
        );
        let violations = v["violations"].as_array().expect("violations");
        assert!(!violations.is_empty(), "{name}");
        for x in violations {
            let (policy, rule) = (x["policy"].as_str().unwrap(), x["rule"].as_str().unwrap());
            assert!(raw.contains(&format!("{policy}:")) && raw.contains(&format!("{rule}:")), "{name}: {x}");
        }
        read += 1;
    }
    assert!(read >= 17, "only {read} real texts were read");
}

fn real(name: &str) -> PathBuf {
    root().join("tests/fixtures/denials/real-1.19.1").join(name)
}

fn explain_json(path: &Path) -> serde_json::Value {
    let out = explain(&[Path::new("--output"), Path::new("json"), path]).output().expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `(policy, rule)` of every violation.
fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    v["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|x| (x["policy"].as_str().unwrap().to_string(), x["rule"].as_str().unwrap().to_string()))
        .collect()
}

/// Every source Kyverno 1.19 denies from, in the real texts: the typed source, webhook, resource
/// and each violation's policy, rule and message.
#[rstest]
#[case::validating_policy("validatingpolicy-pod-create.txt", "validatingPolicy", "vpol.validate.kyverno.svc-fail", ("", "", ""),
    "dn-vpol-host-namespaces", "", "hostNetwork is not allowed")]
#[case::validating_policy_message_expression("validatingpolicy-pod-create-messageexpression.txt", "validatingPolicy",
    "vpol.validate.kyverno.svc-fail", ("", "", ""), "dn-vpol-host-namespaces", "", "containers must set runAsNonRoot: app, sidecar")]
#[case::image_validating_policy_error("imagevalidatingpolicy-pod-create.txt", "imageValidatingPolicy",
    "ivpol.validate.kyverno.svc-fail", ("", "", ""), "dn-ivpol-registry", "", "error: failed to evaluate policy: Get")]
#[case::generated_vap("generated-vap-cpol-pod-create.txt", "generatedValidatingAdmissionPolicy", "",
    ("Pod", "", "hostpid-pod"), "cpol-dn-vap-no-host-pid", "", "hostPID must be unset or false")]
#[case::generated_vap_kubectl("kubectl-create-pod-generated-vap.stderr.txt", "generatedValidatingAdmissionPolicy", "",
    ("Pod", "", "hostpid-pod"), "cpol-dn-vap-no-host-pid", "", "hostPID must be unset or false")]
#[case::generated_vap_condition("rs-generated-vap-cpol.rs-condition-message.txt", "generatedValidatingAdmissionPolicy", "",
    ("Pod", "", "hostpid-deploy-8587ccc646-g6sxd"), "cpol-dn-vap-no-host-pid", "", "hostPID must be unset or false")]
#[case::policy_webhook("policy-webhook-invalid-variable.txt", "policyValidation", "validate-policy.kyverno.svc", ("", "", ""),
    "", "", "policy contains invalid variables: variable substitution failed for rule r1")]
#[case::policy_webhook_cel("policy-webhook-invalid-cel-validatingpolicy.txt", "policyValidation", "validate-policy.kyverno.svc",
    ("", "", ""), "", "", "[<nil>: Internal error: validating policy compiler 1.0 error: failed to compile policy")]
#[case::pod_security_admission("psa-restricted-pod-create.txt", "podSecurity", "", ("Pod", "", "insecure-pod"),
    "PodSecurity restricted:latest", "allowPrivilegeEscalation != false", "containers \"app\", \"sidecar\" must set securityContext.allowPrivilegeEscalation=false")]
#[case::pod_security_admission_event("rs-psa-restricted.event-message.txt", "podSecurity", "", ("Pod", "", "insecure-deploy-95ccf5bb8-pb7c5"),
    "PodSecurity restricted:latest", "allowPrivilegeEscalation != false", "containers \"app\", \"sidecar\" must set securityContext.allowPrivilegeEscalation=false")]
fn every_kyverno_1_19_source_is_read(
    #[case] file: &str,
    #[case] source: &str,
    #[case] webhook: &str,
    #[case] resource: (&str, &str, &str),
    #[case] policy: &str,
    #[case] rule: &str,
    #[case] message: &str,
) {
    let v = explain_json(&real(file));
    assert_eq!(v["source"]["type"], source, "{v}");
    assert_eq!(v["webhook"].as_str().unwrap_or_default(), webhook, "{v}");
    let r = &v["resource"];
    let got =
        (r["kind"].as_str().unwrap_or(""), r["namespace"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
    assert_eq!(got, resource, "{v}");
    let first = &v["violations"][0];
    assert_eq!((first["policy"].as_str().unwrap(), first["rule"].as_str().unwrap()), (policy, rule), "{v}");
    assert!(first["message"].as_str().unwrap().starts_with(message), "{v}");
}

#[test]
fn a_generated_vap_names_its_binding_and_psa_its_level_containers_and_fields() {
    let v = explain_json(&real("generated-vap-cpol-pod-create.txt"));
    assert_eq!(v["source"]["binding"], "cpol-dn-vap-no-host-pid-binding", "{v}");
    let v = explain_json(&real("psa-restricted-pod-create.txt"));
    assert_eq!((v["source"]["level"].as_str(), v["source"]["version"].as_str()), (Some("restricted"), Some("latest")));
    assert_eq!(v["violations"].as_array().unwrap().len(), 4, "{v}");
    let seccomp = &v["violations"][3];
    assert_eq!(seccomp["rule"], "seccompProfile");
    assert_eq!(seccomp["containers"], serde_json::json!(["app", "sidecar"]), "{v}");
    assert_eq!(seccomp["fields"], serde_json::json!(["securityContext.seccompProfile.type"]), "{v}");
    assert_eq!(seccomp["pod"], true, "`pod or containers`: {v}");
}

#[test]
fn pod_security_subrule_field_errors_are_json_pointer_paths() {
    let v = explain_json(&real("clusterpolicy-podsecurity-restricted-pod-create.txt"));
    let paths: Vec<&str> =
        v["violations"][0]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(paths.contains(&"/spec/containers/0/securityContext/allowPrivilegeEscalation"), "{paths:?}");
    assert!(paths.contains(&"/spec/containers/1/securityContext/seccompProfile/type"), "{paths:?}");
    assert_eq!(paths.len(), 8, "{paths:?}");
}

#[test]
fn policy_webhook_field_paths_are_json_pointers() {
    let v = explain_json(&real("policy-webhook-invalid-cel-validatingpolicy.txt"));
    assert_eq!(v["violations"][0]["paths"], serde_json::json!(["/spec/validations/0/expression"]), "{v}");
    let v = explain_json(&real("policy-webhook-unknown-field.txt"));
    assert_eq!(v["violations"][0]["paths"], serde_json::json!(["/spec/rules/0/validate"]), "{v}");
}

/// `kubectl get rs|event -o yaml|json` and `kubectl describe rs` wrap the same text: the result is
/// the one of the text they carry.
#[rstest]
fn every_kubectl_wrapping_is_read(
    #[values(
        "rs-clusterpolicy-pattern",
        "rs-clusterpolicy-foreach",
        "rs-clusterpolicy-podsecurity",
        "rs-psa-restricted",
        "rs-generated-vap-cpol"
    )]
    tag: &str,
) {
    let condition = explain_json(&real(&format!("{tag}.rs-condition-message.txt")));
    let event = explain_json(&real(&format!("{tag}.event-message.txt")));
    for wrapped in ["kubectl-get-rs-o-yaml", "kubectl-get-rs-o-json"] {
        assert_eq!(explain_json(&real(&format!("{tag}.{wrapped}.txt"))), condition, "{tag}.{wrapped}");
    }
    for wrapped in ["kubectl-get-event-o-yaml", "kubectl-get-event-o-json"] {
        assert_eq!(explain_json(&real(&format!("{tag}.{wrapped}.txt"))), event, "{tag}.{wrapped}");
    }
    let described = explain_json(&real(&format!("{tag}.kubectl-describe-rs.txt")));
    assert_eq!((&described["source"], &described["webhook"]), (&event["source"], &event["webhook"]), "{tag}");
    assert_eq!(pairs(&described), pairs(&event), "{tag}");
}

#[rstest]
#[case::suffix("validate.kyverno.svc-fail-x")]
#[case::prefix("evil.validate.kyverno.svc-fail")]
#[case::longer_suffix("validate.kyverno.svc-failover")]
#[case::bare_base("validate.kyverno.svc")]
#[case::vpol_suffix("vpol.validate.kyverno.svc-fail.attacker")]
fn a_look_alike_webhook_name_is_not_a_kyverno_denial(#[case] name: &str) {
    let real = std::fs::read_to_string(real("clusterpolicy-pattern-pod-create.txt")).unwrap();
    let fake = real.replace("validate.kyverno.svc-fail", name);
    let out = explain(&[]).write_stdin(fake).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("not by Kyverno"), "{name}: {}", text(&out.stderr));
}

#[test]
fn control_characters_and_ansi_escapes_are_never_echoed_raw() {
    let real = std::fs::read_to_string(real("clusterpolicy-pattern-pod-create.txt")).unwrap();
    let hostile = real.replace(
        "Privilege escalation is disallowed.",
        "\u{1b}[2J\u{1b}]0;pwned\u{7}Privilege\u{8}\u{8} escalation\r is disallowed.",
    );
    for output in [&[][..], &["--output", "json"][..]] {
        let out = explain(&output.iter().map(Path::new).collect::<Vec<_>>())
            .write_stdin(hostile.clone())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(!printed.chars().any(|c| c.is_control() && c != '\n'), "{output:?}: {printed:?}");
    }
    // Not a denial at all: the refusal does not echo them either.
    let out = explain(&[])
        .write_stdin("\u{1b}[31mred\u{7} admission webhook \"x\u{1b}[0m\" denied the request: \u{1b}]8;;")
        .output()
        .expect("runs");
    assert!(!text(&out.stderr).chars().any(|c| c.is_control() && c != '\n'), "{:?}", text(&out.stderr));
}

/// The mutate (verify-images) webhook sees a pod created with only `generateName` before it has a
/// name: `resource Pod/<ns>/ was blocked`. It is read, with the name left empty.
#[test]
fn a_pod_without_a_name_yet_is_read() {
    let v = explain_json(&denial("mutate-verify-images-generatename.txt"));
    assert_eq!(v["webhook"], "mutate.kyverno.svc-fail");
    assert_eq!(v["resource"], serde_json::json!({"kind": "Pod", "namespace": "kyvtel-app", "name": ""}));
    assert_eq!(pairs(&v), [("verify-image".to_string(), "check-signature".to_string())]);
    let out = explain(&[&denial("mutate-verify-images-generatename.txt")]).output().expect("runs");
    assert!(text(&out.stdout).contains("denied Pod kyvtel-app/(no name yet: generateName)"), "{}", text(&out.stdout));
}
