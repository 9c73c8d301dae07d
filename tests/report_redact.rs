//! Redaction of tokens and certificates, and evidence bundles.

use std::path::Path;

use kyvtel::report::evidence::Bundle;
use kyvtel::report::redact::{REDACTED, redact};
use rstest::rstest;

const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz";

#[rstest]
#[case::kubeconfig_cert("    client-certificate-data: LS0tLS1CRUdJTi...\n", "LS0tLS1CRUdJTi")]
#[case::kubeconfig_key("    client-key-data: S0VZLURBVEE=\n", "S0VZLURBVEE")]
#[case::kubeconfig_ca("    certificate-authority-data: Q0EtREFUQQ==\n", "Q0EtREFUQQ")]
#[case::yaml_token("  token: s3cr3t-value\n", "s3cr3t-value")]
#[case::list_item_token("- token: s3cr3t-value\n", "s3cr3t-value")]
#[case::json_token(r#"{"token":"s3cr3t-value","kind":"Secret"}"#, "s3cr3t-value")]
#[case::json_key(r#"{"client-key-data": "S0VZ\"LURBVEE="}"#, "LURBVEE")]
#[case::inline("pod admitted; token: abc.def, retrying", "abc.def")]
#[case::env_style("KYVTEL_X=1 password=hunter2 next", "hunter2")]
#[case::bearer("Authorization: Bearer abc.DEF-123_x\n", "abc.DEF-123_x")]
#[case::jwt_anywhere(JWT, "c2lnbmF0dXJl")]
#[case::pem(
    "x\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\ny",
    "MIIBszCCAVmgAwIBAgIU"
)]
#[case::pem_key("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow")]
fn secrets_are_removed(#[case] input: &str, #[case] secret: &str) {
    let out = redact(input);
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains(REDACTED), "{out}");
}

#[test]
fn structure_and_harmless_text_survive() {
    let kubeconfig = "apiVersion: v1\nusers:\n- name: kind-kyvtel\n  user:\n    client-key-data: QUJD\n    token: abc\ncurrent-context: kind-kyvtel\n";
    let out = redact(kubeconfig);
    assert_eq!(
        out,
        "apiVersion: v1\nusers:\n- name: kind-kyvtel\n  user:\n    client-key-data: REDACTED\n    token: REDACTED\ncurrent-context: kind-kyvtel\n"
    );
    let pem = redact("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----");
    assert_eq!(pem, "-----BEGIN CERTIFICATE----- REDACTED -----END CERTIFICATE-----");
    let event = "Error creating: admission webhook \"validate.kyverno.svc-fail\" denied the request";
    assert_eq!(redact(event), event);
    assert_eq!(
        redact("serviceAccountName: default\ntokenExpirationSeconds: 3600"),
        "serviceAccountName: default\ntokenExpirationSeconds: 3600"
    );
    assert_eq!(redact(&redact("token: x")), "token: REDACTED", "redaction is idempotent");
}

#[test]
fn bundle_redacts_text_lists_files_and_never_writes_binaries() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut bundle = Bundle::create(&root, "run-1", "documented-recipe").unwrap();
    bundle
        .add("pod.yaml", "app pod with managedFields", format!("metadata:\n  name: app\ntoken: {JWT}\n").as_bytes())
        .unwrap();
    bundle.add("../escape.txt", "a name that tries to leave the bundle", b"Bearer abcdef").unwrap();
    let binary = [0x50, 0x4b, 0x03, 0x04, 0xff, 0xfe, 0x00];
    assert_eq!(bundle.add("gather-logs.zip", "telepresence gather-logs", &binary).unwrap(), None);
    // A log cut mid-character is still text: kept, with the bad byte replaced, and redacted.
    let cut = [b"kubelet: Bearer abcdef\n".as_slice(), &[0xe2, 0x82]].concat();
    bundle.add("kubelet.log", "kind export logs", &cut).unwrap();
    let dir = bundle.finish().unwrap();
    assert_eq!(dir, root.join("run-1/documented-recipe"));

    let pod = std::fs::read_to_string(dir.join("pod.yaml")).unwrap();
    assert!(!pod.contains("eyJ") && pod.contains("name: app"), "{pod}");
    assert!(!root.join("run-1/escape.txt").exists());
    assert!(!dir.join("gather-logs.zip").exists(), "binary content cannot be redacted and is not written");

    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let files = index["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["name"], "pod.yaml");
    assert_eq!(files[0]["description"], "app pod with managedFields");
    assert_eq!(files[0]["bytes"], pod.len());
    assert_eq!(files[0]["redacted"], true);
    assert_eq!(files[1]["name"], "_escape.txt");
    assert_eq!(std::fs::read_to_string(dir.join("_escape.txt")).unwrap(), "Bearer REDACTED");
    assert_eq!(files[2]["name"], "kubelet.log");
    assert_eq!(files[2]["description"], "kind export logs (invalid UTF-8 replaced)");
    assert_eq!(std::fs::read_to_string(dir.join("kubelet.log")).unwrap(), "kubelet: Bearer REDACTED\n\u{fffd}");
    let skipped = index["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["name"], "gather-logs.zip");
    assert_eq!(skipped[0]["description"], "telepresence gather-logs");
    assert_eq!(skipped[0]["bytes"], binary.len());
    assert!(skipped[0]["reason"].as_str().unwrap().contains("cannot be redacted"), "{skipped:?}");
}
