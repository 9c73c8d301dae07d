//! Redaction of tokens and certificates, and evidence bundles.

use std::path::Path;

use kyvtel::report::evidence::{Bundle, NAME_LIMIT, nested_name, safe_name};
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

fn fresh_bundle(test: &str) -> Bundle {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bundle-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    Bundle::create(&root, "run-1", "documented-recipe").unwrap()
}

fn index_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap()
}

#[test]
fn a_too_long_name_is_cut_with_a_hash_of_the_full_name_and_keeps_its_extension() {
    let long = nested_name("kind-logs", &format!("{}/kubelet.log", "d".repeat(300)));
    assert_eq!(long, format!("kind-logs__{}__kubelet.log", "d".repeat(300)), "nested names are not cut");
    let other = nested_name("kind-logs", &format!("{}/kubelet-2.log", "d".repeat(300)));
    let short = safe_name(&long);
    let digest = ring::digest::digest(&ring::digest::SHA256, long.as_bytes());
    let hash: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(short.len(), NAME_LIMIT);
    assert!(short.starts_with("kind-logs__ddd"), "{short}");
    assert!(short.ends_with(&format!("-{hash}.log")), "{short}");
    assert_eq!(safe_name(&long), short, "stable");
    assert_ne!(safe_name(&other), short, "names sharing a long prefix stay apart");
    assert_eq!(safe_name(&short), short, "a capped name is left as it is");
    let no_ext = safe_name(&"x".repeat(400));
    assert_eq!(no_ext.len(), NAME_LIMIT);
    assert!(no_ext.starts_with("xxx") && !no_ext.contains('.'), "{no_ext}");

    let mut bundle = fresh_bundle("long-name");
    let path = bundle.add(&long, "kind export logs", b"token: abc\n").unwrap().expect("written");
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), short);
    let dir = bundle.finish().unwrap();
    assert_eq!(std::fs::read_to_string(dir.join(&short)).unwrap(), "token: REDACTED\n");
    let files = &index_of(&dir)["files"];
    assert_eq!(files[0]["name"], short.as_str());
    assert_eq!(files[0]["description"], format!("kind export logs (collected as {long})"));
}

#[test]
fn names_that_flatten_alike_are_de_duplicated_not_replaced() {
    let mut bundle = fresh_bundle("collide");
    bundle.add(&nested_name("g", "a/b"), "first", b"1").unwrap();
    bundle.add(&nested_name("g", "a__b"), "second", b"2").unwrap();
    bundle.add("\u{e9}.txt", "e acute", b"3").unwrap();
    bundle.add("\u{fc}.txt", "u umlaut", b"4").unwrap();
    bundle.add("\u{f6}.txt", "o umlaut", b"5").unwrap();
    bundle.add("INDEX.json", "a collected file named like the index", b"6").unwrap();
    let dir = bundle.finish().unwrap();

    let files = index_of(&dir)["files"].as_array().unwrap().clone();
    let listed: Vec<(&str, &str)> =
        files.iter().map(|f| (f["name"].as_str().unwrap(), f["description"].as_str().unwrap())).collect();
    assert_eq!(
        listed,
        [
            ("g__a__b", "first"),
            ("g__a__b-2", "second (collected as g__a__b)"),
            ("_.txt", "e acute"),
            ("_-2.txt", "u umlaut (collected as \u{fc}.txt)"),
            ("_-3.txt", "o umlaut (collected as \u{f6}.txt)"),
            ("INDEX-2.json", "a collected file named like the index (collected as INDEX.json)"),
        ]
    );
    for (name, contents) in [("g__a__b", "1"), ("g__a__b-2", "2"), ("_.txt", "3"), ("_-2.txt", "4"), ("_-3.txt", "5")] {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), contents, "{name}");
    }
}

#[test]
fn a_file_that_cannot_be_written_is_skipped_and_the_index_still_written() {
    let mut bundle = fresh_bundle("unwritable");
    // A directory where the file would go: writing fails, for root too.
    std::fs::create_dir(bundle.dir().join("pod.yaml")).unwrap();
    assert_eq!(bundle.add("pod.yaml", "app pod", b"metadata: {}\n").unwrap(), None);
    assert!(bundle.add("events.json", "events", b"[]").unwrap().is_some(), "later files are still written");
    let dir = bundle.finish().unwrap();

    let index = index_of(&dir);
    assert_eq!(index["files"].as_array().unwrap().len(), 1);
    assert_eq!(index["files"][0]["name"], "events.json");
    let skipped = index["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["name"], "pod.yaml");
    assert_eq!(skipped[0]["description"], "app pod");
    assert_eq!(skipped[0]["bytes"], 13);
    assert!(skipped[0]["reason"].as_str().unwrap().starts_with("could not be written: "), "{skipped:?}");
    assert!(dir.join("pod.yaml").is_dir(), "the directory in the way is left alone");
}

/// `text` redacted: none of `secrets` is left, and [`REDACTED`] is there instead.
fn assert_redacted(text: &str, secrets: &[&str]) -> String {
    let out = redact(text);
    for s in secrets {
        assert!(!out.contains(s), "{s:?} survived in {out:?}");
    }
    assert!(out.contains(REDACTED), "{out:?}");
    assert_eq!(redact(&out), out, "redaction is idempotent");
    out
}

#[rstest]
#[case::basic("Authorization: Basic dXNlcjpodW50ZXIy\n", "dXNlcjpodW50ZXIy")]
#[case::basic_lower("authorization: basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy")]
#[case::token_scheme("Authorization: token 0123456789abcdef0123", "0123456789abcdef0123")]
#[case::digest(
    r#"Authorization: Digest username="kyvtel", realm="r", nonce="dcd98b7102dd2f0e", response="6629fae49393a05397450978507c4ef1""#,
    "6629fae49393a05397450978507c4ef1"
)]
#[case::negotiate("Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", "YIIGhgYGKwYBBQUCoIIGejCCBnag")]
#[case::no_scheme("Authorization: s3cr3t-opaque-value", "s3cr3t-opaque-value")]
#[case::proxy("Proxy-Authorization: Basic cHJveHk6cGFzcw==\r\n", "cHJveHk6cGFzcw")]
#[case::curl_flag("curl -H 'Authorization: ApiKey abcd1234efgh' https://x", "abcd1234efgh")]
#[case::json_header(r#"{"headers":{"Authorization":"Basic dXNlcjpodW50ZXIy"}}"#, "dXNlcjpodW50ZXIy")]
#[case::go_header_map("req headers map[Authorization:[Basic dXNlcjpodW50ZXIy] Accept:[*/*]]", "dXNlcjpodW50ZXIy")]
#[case::bearer_still("authorization: bearer abc.DEF-123_x", "abc.DEF-123_x")]
fn authorization_headers_of_every_scheme(#[case] input: &str, #[case] secret: &str) {
    assert_redacted(input, &[secret]);
}

#[test]
fn authorization_keeps_the_scheme_and_the_rest_of_the_text() {
    assert_eq!(redact("Authorization: Basic dXNlcjpodW50ZXIy\nnext"), "Authorization: Basic REDACTED\nnext");
    assert_eq!(
        redact(r#"{"Authorization":"token abc123def","Accept":"*/*"}"#),
        r#"{"Authorization":"token REDACTED","Accept":"*/*"}"#
    );
    let rbac = r#"clusterroles.rbac.authorization.k8s.io "view" not found; authorization mode Node,RBAC"#;
    assert_eq!(redact(rbac), rbac);
}

/// `prefix` followed by `n` characters of a random-looking mix of letters and digits.
fn token(prefix: &str, n: usize) -> String {
    let alphabet = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5cD7eF9gH2iK4";
    let body: String = alphabet.chars().cycle().take(n).collect();
    format!("{prefix}{body}")
}

#[rstest]
#[case::github_classic("ghp_", 36)]
#[case::github_oauth("gho_", 36)]
#[case::github_user_to_server("ghu_", 36)]
#[case::github_server_to_server("ghs_", 36)]
#[case::github_refresh("ghr_", 36)]
#[case::github_fine_grained("github_pat_11ABCDEFG0_", 59)]
#[case::gitlab("glpat-", 20)]
#[case::slack_bot("xoxb-123456789012-", 24)]
#[case::slack_user("xoxp-123456789012-", 24)]
#[case::aws_access_key_id("AKIA", 0)]
#[case::openai_style("sk-", 48)]
#[case::openai_project("sk-proj-", 48)]
#[case::google_api_key("AIza", 35)]
#[case::npm("npm_", 36)]
#[case::docker_hub("dckr_pat_", 27)]
#[case::stripe("sk_live_", 24)]
fn well_known_token_formats(#[case] prefix: &str, #[case] n: usize) {
    let secret = if prefix == "AKIA" { "AKIAIOSFODNN7EXAMPLE".to_string() } else { token(prefix, n) };
    for text in [
        format!("cloning with {secret} failed"),
        format!("url: https://x-access:{secret}@github.com/o/r.git\n"),
        format!(r#"{{"note":"{secret}"}}"#),
        format!("{secret}\n"),
    ] {
        assert_redacted(&text, &[&secret]);
    }
}

#[rstest]
#[case::rs256("eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLWJ5dGVz")]
#[case::typ_first("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJrIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk")]
#[case::unsigned("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")]
fn jwts_anywhere(#[case] jwt: &str) {
    let body = jwt.split('.').nth(1).unwrap();
    assert_redacted(&format!("id-token in log line ({jwt}) end"), &[body]);
    assert_redacted(&format!("x={jwt}&y=1"), &[body]);
}

#[test]
fn token_lookalikes_are_kept() {
    for text in [
        "disk-pressure-threshold-exceeded-on-node",
        "task-runner-kyverno-admission-controller",
        "sk-kyverno-admission-controller-abcdefgh",
        "ghp_short",
        "the AKIA prefix alone",
        "xoxb-",
        "glpat-short",
    ] {
        assert_eq!(redact(text), text);
    }
}

#[rstest]
// YAML, any case and quoting of the key.
#[case::yaml_upper("TOKEN: s3cr3t-value\n")]
#[case::yaml_title("Token: s3cr3t-value\n")]
#[case::yaml_api_key_snake("api_key: s3cr3t-value\n")]
#[case::yaml_api_key_upper_kebab("API-KEY: s3cr3t-value\n")]
#[case::yaml_api_key_camel("  apiKey: s3cr3t-value\n")]
#[case::yaml_x_api_key("x-api-key: s3cr3t-value\n")]
#[case::yaml_client_secret_pascal("ClientSecret: s3cr3t-value\n")]
#[case::yaml_client_secret_snake("client_secret: s3cr3t-value\n")]
#[case::yaml_client_secret_kebab("    client-secret: s3cr3t-value\n")]
#[case::yaml_secret("secret: s3cr3t-value\n")]
#[case::yaml_single_quoted_key("'password': 's3cr3t-value'\n")]
#[case::yaml_double_quoted_key("\"password\": \"s3cr3t value\"\n")]
#[case::yaml_quoted_value("password: \"s3cr3t value with spaces\"\n")]
#[case::yaml_access_token("accessToken: s3cr3t-value\n")]
#[case::yaml_secret_access_key("aws_secret_access_key: s3cr3t-value\n")]
#[case::yaml_private_key("privateKey: s3cr3t-value\n")]
#[case::yaml_passphrase("passphrase: s3cr3t-value\n")]
#[case::yaml_credentials("credentials: s3cr3t-value\n")]
// JSON, also escaped inside another JSON string.
#[case::json_upper(r#"{"TOKEN":"s3cr3t-value"}"#)]
#[case::json_api_key(r#"{"apiKey": "s3cr3t-value", "x": 1}"#)]
#[case::json_client_secret(r#"{"client_secret":"s3cr3t-value"}"#)]
#[case::json_password_spaces(r#"{"Password" : "s3cr3t value"}"#)]
#[case::json_escaped(r#"{"msg":"applied {\"password\":\"s3cr3t-value\"}"}"#)]
#[case::python_repr("{'password': 's3cr3t-value', 'user': 'u'}")]
// env files and shells.
#[case::env_export("export GITHUB_TOKEN=s3cr3t-value\n")]
#[case::env_db_password("DB_PASSWORD=s3cr3t-value\n")]
#[case::env_quoted("DB_PASSWORD='s3cr3t value'\n")]
#[case::env_double_quoted("API_KEY=\"s3cr3t value\"\n")]
#[case::env_client_secret("OIDC_CLIENT_SECRET=s3cr3t-value")]
// key=value in logs, flags.
#[case::kv_in_log("level=info msg=login password=s3cr3t-value user=u")]
#[case::kv_go_struct("{User:u Password:s3cr3t-value}")]
#[case::kv_url_query("GET /cb?code=1&access_token=s3cr3t-value&x=1")]
#[case::flag_equals("helm install --password=s3cr3t-value x")]
#[case::flag_space("docker login --password s3cr3t-value reg")]
#[case::flag_token_space("kubectl --token s3cr3t-value get pods")]
#[case::flag_quoted("kubectl --token='s3cr3t value' get pods")]
#[case::header("X-Api-Key: s3cr3t-value\r\n")]
#[case::toml("token = \"s3cr3t-value\"\n")]
fn secret_keys_in_any_case_quoting_and_form(#[case] input: &str) {
    assert_redacted(input, &["s3cr3t"]);
}

#[test]
fn keys_that_only_look_like_secrets_are_kept() {
    let text = "serviceAccountName: default\n\
                tokenExpirationSeconds: 3600\n\
                automountServiceAccountToken: false\n\
                secretName: kyverno-svc.kyverno.svc.kyverno-tls-pair\n\
                secretRef:\n  name: x\n\
                - key: app\n  operator: In\n\
                expirationSeconds: 3600\n\
                tokenFile: /var/run/secrets/tokens/t\n\
                PWD=/work\n\
                passwordless sudo: ok\n\
                the token was refreshed; password rotation is due\n\
                imagePullSecrets:\n- name: regcred\n";
    assert_eq!(redact(text), text);
}

#[test]
fn a_secret_key_keeps_its_quoting_and_layout() {
    assert_eq!(redact("  Token: abc # comment\nnext: 1\n"), "  Token: REDACTED\nnext: 1\n");
    assert_eq!(redact(r#"{"apiKey":"abc","n":1}"#), r#"{"apiKey":"REDACTED","n":1}"#);
    assert_eq!(redact("export GITHUB_TOKEN=abc; echo ok"), "export GITHUB_TOKEN=REDACTED; echo ok");
    assert_eq!(redact("--token abc get pods"), "--token REDACTED get pods");
}

#[rstest]
#[case::cut_at_the_end("key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3\nxfn/ygWyF8PbnGy0AHB7")]
#[case::cut_then_prose(
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nAASCBKcwggSjAgEAAoIBAQ\n\nerror: unexpected EOF\n"
)]
#[case::encrypted_headers(
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEowIBAAKCAQEA0Z3VS5JJcds3"
)]
#[case::escaped_in_json(r#"{"key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yBy\nAwEHoUQDQgAE"#)]
#[case::indented_block_scalar(
    "  tls.key: |\n    -----BEGIN PRIVATE KEY-----\n    MIIEvQIBADANBgkqhkiG9w0B\n    AASCBKcwggSjAgEAAoIB"
)]
#[case::one_line("-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXktdjEAAAAABG5vbmU")]
fn pem_blocks_cut_before_their_end(#[case] input: &str) {
    let out = assert_redacted(input, &["MIIE", "MHcC", "AASC", "b3Bl", "DEK-Info", "AwEH", "xfn"]);
    assert!(out.contains("-----BEGIN"), "the marker stays, to say what was there: {out}");
}

#[test]
fn a_cut_pem_block_leaves_what_follows_it() {
    let out = redact("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n\nerror: unexpected EOF\n");
    assert!(out.ends_with("\nerror: unexpected EOF\n"), "{out}");
    let two = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\nmiddle\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----";
    let out = redact(two);
    assert!(out.contains("\nmiddle\n") && !out.contains("AAAA") && !out.contains("BBBB"), "{out}");
}

const SECRET_YAML: &str = "apiVersion: v1
kind: Secret
metadata:
  name: kyverno-svc.kyverno.svc.kyverno-tls-pair
  namespace: kyverno
type: kubernetes.io/tls
data:
  tls.crt: TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0
  tls.key: UzBWWkxVMUJWRVZTU1VGTUxXOW1MWFJvWlMxclpYaz0=
  ca.crt: Q0EtQ0VSVC1CT0RZ
  .dockerconfigjson: eyJhdXRocyI6eyJyZWciOnt9fX0=
stringData:
  config.yaml: |
    endpoint: https://vault
    role: app-role-material
  notes: plain-string-data
  multi: >-
    folded-secret-line-one
    folded-secret-line-two
";

#[test]
fn secret_manifest_in_yaml_redacts_every_value_under_data_and_string_data() {
    let out = assert_redacted(
        SECRET_YAML,
        &[
            "TFMwdExTMUNSVWRK",
            "UzBWWkxVMUJWRVZT",
            "Q0EtQ0VSVC1CT0RZ",
            "eyJhdXRocyI6",
            "https://vault",
            "app-role-material",
            "plain-string-data",
            "folded-secret-line",
        ],
    );
    for kept in
        ["name: kyverno-svc.kyverno.svc.kyverno-tls-pair", "type: kubernetes.io/tls", "  tls.key: ", "  ca.crt: "]
    {
        assert!(out.contains(kept), "{kept:?} lost in {out}");
    }
}

#[test]
fn secret_list_items_in_yaml() {
    let list = "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    password: aHVudGVyMg==\n    username: YWRtaW4=\n  kind: Secret\n  metadata:\n    name: db\nkind: List\n";
    let out = assert_redacted(list, &["aHVudGVyMg", "YWRtaW4"]);
    assert!(out.contains("    name: db\n"), "{out}");
}

#[rstest]
#[case::json_pretty(
    "{\n  \"apiVersion\": \"v1\",\n  \"data\": {\n    \"tls.key\": \"UzBWWkxVMUJWRVZT\",\n    \"ca.crt\": \"Q0EtQ0VSVC1CT0RZ\"\n  },\n  \"kind\": \"Secret\",\n  \"metadata\": {\"name\": \"x\"}\n}"
)]
#[case::json_compact(
    r#"{"kind":"Secret","stringData":{"config.yaml":"endpoint: https://vault\nrole: Q0EtQ0VSVC1CT0RZ","x":"UzBWWkxVMUJWRVZT"}}"#
)]
#[case::last_applied_escaped(
    r#"{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"tls.key\":\"UzBWWkxVMUJWRVZT\",\"ca.crt\":\"Q0EtQ0VSVC1CT0RZ\"},\"kind\":\"Secret\"}\n"}}"#
)]
#[case::last_applied_in_yaml(
    "metadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {\"apiVersion\":\"v1\",\"data\":{\"tls.key\":\"UzBWWkxVMUJWRVZT\",\"ca.crt\":\"Q0EtQ0VSVC1CT0RZ\"},\"kind\":\"Secret\"}\n"
)]
fn secret_manifest_in_json(#[case] input: &str) {
    let out = assert_redacted(input, &["UzBWWkxVMUJWRVZT", "Q0EtQ0VSVC1CT0RZ", "https://vault"]);
    assert!(out.contains("tls.key") || out.contains("config.yaml"), "keys stay: {out}");
}

#[test]
fn secret_data_as_a_flow_map_in_yaml() {
    let flow = "kind: Secret\ndata: {tls.key: UzBWWkxVMUJWRVZT, \"ca.crt\": 'Q0EtQ0VSVC1CT0RZ'}\n";
    assert_eq!(redact(flow), "kind: Secret\ndata: {tls.key: REDACTED, \"ca.crt\": REDACTED}\n");
    let cm = "kind: ConfigMap\ndata: {webhooks: '[]'}\n";
    assert_eq!(redact(cm), cm);
}

#[test]
fn url_passwords() {
    assert_eq!(redact("postgres://app:hunter2x@db:5432/app"), "postgres://app:REDACTED@db:5432/app");
    assert_eq!(redact("https://x-access:s3cr3t@github.com/o/r.git"), "https://x-access:REDACTED@github.com/o/r.git");
    for kept in ["https://127.0.0.1:6443/api", "ssh://git@github.com:o/r.git", "mailto:a@b.c"] {
        assert_eq!(redact(kept), kept);
    }
}

#[test]
fn config_map_data_is_kept() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kyverno\ndata:\n  resourceFilters: '[Event,*,*]'\n  webhooks: '[]'\n";
    assert_eq!(redact(cm), cm);
    let json = r#"{"kind":"ConfigMap","data":{"resourceFilters":"[Event,*,*]"}}"#;
    assert_eq!(redact(json), json);
}

#[rstest]
#[case::compact(r#"{"auths":{"registry.example.com":{"auth":"dXNlcjpodW50ZXIy","identitytoken":"idt-s3cr3t"}}}"#)]
#[case::pretty(
    "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"dXNlcjpodW50ZXIy\",\n\t\t\t\"email\": \"a@b.c\"\n\t\t},\n\t\t\"reg\": {\n\t\t\t\"identitytoken\": \"idt-s3cr3t\",\n\t\t\t\"registrytoken\": \"idt-s3cr3t-2\"\n\t\t}\n\t},\n\t\"credsStore\": \"desktop\"\n}"
)]
#[case::username_password(r#"{"auths":{"r":{"username":"u","password":"idt-s3cr3t","auth":"dXNlcjpodW50ZXIy"}}}"#)]
#[case::in_dockerconfigjson_yaml(".dockerconfigjson: '{\"auths\":{\"r\":{\"auth\":\"dXNlcjpodW50ZXIy\"}}}'\n")]
#[case::escaped(r#""{\"auths\":{\"r\":{\"auth\":\"dXNlcjpodW50ZXIy\",\"identitytoken\":\"idt-s3cr3t\"}}}""#)]
fn docker_config_auth_fields(#[case] input: &str) {
    let out = assert_redacted(input, &["dXNlcjpodW50ZXIy", "idt-s3cr3t"]);
    assert!(out.contains("auths"), "{out}");
}

#[test]
fn docker_config_keeps_registries_and_helpers() {
    let cfg = r#"{"auths":{"ghcr.io":{}},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}"#;
    assert_eq!(redact(cfg), cfg);
}

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0EtREFUQQ==
    server: https://127.0.0.1:6443
  name: kind-kyvtel
users:
- name: basic
  user:
    username: admin
    'password': \"pw-s3cr3t\"
- name: oidc
  user:
    auth-provider:
      config:
        client-id: kyvtel
        client-secret: cs-s3cr3t
        id-token: idt-s3cr3t
        refresh-token: rt-s3cr3t
        idp-issuer-url: https://issuer
      name: oidc
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      args: [\"eks\", \"get-token\", \"--cluster-name\", \"kyvtel\"]
      env:
      - name: AWS_SECRET_ACCESS_KEY
        value: env-s3cr3t
      - name: AWS_SESSION_TOKEN
        value: \"env-s3cr3t-2\"
      - name: AWS_REGION
        value: eu-west-1
- name: flow
  user: {client-key-data: S0VZLURBVEE=, token: tok-s3cr3t}
current-context: kind-kyvtel
";

#[test]
fn kubeconfig_credentials() {
    let out = assert_redacted(
        KUBECONFIG,
        &["pw-s3cr3t", "cs-s3cr3t", "idt-s3cr3t", "rt-s3cr3t", "env-s3cr3t", "S0VZLURBVEE", "tok-s3cr3t"],
    );
    for kept in [
        "server: https://127.0.0.1:6443",
        "username: admin",
        "client-id: kyvtel",
        "idp-issuer-url: https://issuer",
        "- name: AWS_SECRET_ACCESS_KEY\n",
        "value: eu-west-1",
        "\"get-token\"",
        "current-context: kind-kyvtel",
    ] {
        assert!(out.contains(kept), "{kept:?} lost in {out}");
    }
}

#[test]
fn kubeconfig_as_json() {
    let json = r#"{"users":[{"name":"u","user":{"client-key-data":"S0VZLURBVEE=","token":"tok-s3cr3t","password":"pw-s3cr3t","exec":{"env":[{"name":"GITHUB_TOKEN","value":"env-s3cr3t"}]},"auth-provider":{"config":{"id-token":"idt-s3cr3t","refresh-token":"rt-s3cr3t"}}}}]}"#;
    let out =
        assert_redacted(json, &["S0VZLURBVEE", "tok-s3cr3t", "pw-s3cr3t", "env-s3cr3t", "idt-s3cr3t", "rt-s3cr3t"]);
    assert!(out.contains(r#""name":"GITHUB_TOKEN""#), "{out}");
}

#[test]
fn pod_env_values_named_like_secrets() {
    let pod = "env:\n- name: DB_PASSWORD\n  value: env-s3cr3t\n- name: LOG_LEVEL\n  value: debug\n";
    let out = assert_redacted(pod, &["env-s3cr3t"]);
    assert!(out.contains("value: debug"), "{out}");
}

mod properties {
    use kyvtel::report::redact::redact;
    use proptest::prelude::*;

    /// Where a secret `{v}` is put, in every form the redactor covers.
    const FORMS: &[&str] = &[
        "\npassword: {v}\n",
        "\n  'Token': \"{v}\"\n",
        " Token={v} ",
        " {\"apiKey\":\"{v}\"} ",
        " --token {v} ",
        " --client-secret={v} ",
        "\nexport GITHUB_TOKEN={v}\n",
        "\nDB_PASSWORD='{v}'\n",
        "\nAuthorization: Basic {v}\n",
        "\nProxy-Authorization: Digest response=\"{v}\"\n",
        " Bearer {v} ",
        " ghp_{v} ",
        " github_pat_{v} ",
        " glpat-{v} ",
        " eyJhbGciOiJSUzI1NiJ9.{v}.{v} ",
        "\n-----BEGIN PRIVATE KEY-----\n{v}\n",
        "\n-----BEGIN CERTIFICATE-----\n{v}\n-----END CERTIFICATE-----\n",
        "\nkind: Secret\ndata:\n  tls.key: {v}\n",
        "\nkind: Secret\ndata: {tls.key: {v}}\n",
        " https://user:{v}@registry.example/v2/ ",
        "\nstringData:\n  ca.crt: |\n    {v}\n",
        " {\"kind\":\"Secret\",\"data\":{\"tls.key\":\"{v}\"}} ",
        " {\"auths\":{\"r\":{\"auth\":\"{v}\"}}} ",
        "\nusers:\n- user:\n    client-key-data: {v}\n",
        "\n- name: AWS_SECRET_ACCESS_KEY\n  value: {v}\n",
    ];

    /// Pieces of what the redactor looks for, to be put together at random.
    const SYNTAX: &[&str] = &[
        "\n",
        "\r\n",
        " ",
        "  ",
        "\t",
        ":",
        ": ",
        "=",
        "\"",
        "'",
        "\\\"",
        "\\n",
        "{",
        "}",
        "[",
        "]",
        ",",
        "-",
        "- ",
        "|",
        ">",
        "#",
        "token",
        "Token",
        "password",
        "apiKey",
        "auth",
        "data",
        "stringData",
        "kind: Secret",
        "\"kind\":\"Secret\"",
        "name",
        "value",
        "- name: DB_PASSWORD",
        "value: ",
        "Authorization",
        "Proxy-",
        "Basic ",
        "Bearer ",
        "Digest ",
        "--token",
        "export ",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "-----BEGIN",
        "-----",
        "Proc-Type: 4",
        "MIIEow",
        "abc",
        "x.y",
        "REDACTED",
        "ghp_",
        "eyJhbGciOiJSUzI1NiJ9",
        ".",
        "AKIA",
        "sk-",
        "false",
        "---",
        "\u{e9}",
        "\u{1f600}",
    ];

    /// A random-looking secret: letters and digits, never found in `REDACTED`.
    fn secret() -> impl Strategy<Value = String> {
        let chars: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
        prop::collection::vec(prop::sample::select(chars), 36..48)
            .prop_map(|cs| format!("S3c{}9", cs.into_iter().collect::<String>()))
    }

    /// Text around a secret: anything, or lines that look like logs and manifests.
    fn filler() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop::sample::select(vec![
                    "level=info msg=ok",
                    "metadata:",
                    "  name: app",
                    "tokenExpirationSeconds: 3600",
                    "data:",
                    "{\"kind\":\"Pod\"}",
                    "-----BEGIN",
                    "\"",
                    "'",
                    "\\n",
                    "---",
                    "",
                ]),
                0..6
            )
            .prop_map(|l| l.join("\n")),
        ]
    }

    fn config() -> ProptestConfig {
        ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_text_is_redacted_without_panic_and_idempotently(text in any::<String>()) {
            let once = redact(&text);
            prop_assert_eq!(redact(&once), once);
        }

        #[test]
        fn text_made_of_the_redactors_own_syntax_is_redacted_idempotently(
            parts in prop::collection::vec(prop::sample::select(SYNTAX), 0..40)
        ) {
            let text = parts.concat();
            let once = redact(&text);
            prop_assert_eq!(redact(&once), once, "{:?}", text);
        }

        #[test]
        fn an_inserted_secret_never_survives(
            before in filler(),
            form in prop::sample::select(FORMS),
            v in secret(),
            after in filler(),
        ) {
            let text = format!("{before}{}{after}", form.replace("{v}", &v));
            let once = redact(&text);
            prop_assert!(!once.contains(&v), "{:?} survived in {:?}", v, once);
            prop_assert_eq!(redact(&once), once);
        }
    }
}

/// A deflated zip of `files` (name, contents).
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in files {
        w.start_file(*name, opts).unwrap();
        w.write_all(contents).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn the_index_says_redacted_only_for_what_went_through_the_redactor() {
    let ghp = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";
    let mut bundle = fresh_bundle("index-truth");
    let zip = zip_of(&[
        (&format!("logs/{ghp}/connector.log"), b"token: abc\n"),
        (&format!("{JWT}.bin"), b"\xff\0"),
        ("../up.log", b"x"),
    ]);
    bundle.add_zip("telepresence-gather-logs", "gather-logs", &zip).unwrap();
    bundle.add(&format!("creds-{JWT}.txt"), "named after a token", b"ok").unwrap();
    bundle.skip(&format!("pod-{ghp}.yaml"), "not collected", 0, "the pod was gone");
    let dir = bundle.finish().unwrap();

    let index = index_of(&dir);
    let text = serde_json::to_string(&index).unwrap();
    assert!(!text.contains(ghp) && !text.contains("c2lnbmF0dXJl"), "a name in the index holds a token: {text}");
    let files = index["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{text}");
    for f in files {
        assert_eq!(f["redacted"], true, "{f}");
    }
    for s in index["skipped"].as_array().unwrap() {
        assert_ne!(s["redacted"], true, "nothing of a skipped entry was written: {s}");
    }
    // Every file in the bundle is listed, under the name it has on disk, and none is named after a token.
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "index.json")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = files.iter().map(|f| f["name"].as_str().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for name in &on_disk {
        assert!(!name.contains(ghp) && !name.contains("c2lnbmF0dXJl"), "{name}");
        assert_eq!(
            redact(&std::fs::read_to_string(dir.join(name)).unwrap()),
            std::fs::read_to_string(dir.join(name)).unwrap()
        );
    }
}

/// Inputs built to make a backtracking or quadratic redactor crawl: 100 kB of one piece each. A
/// quadratic pass takes minutes here; the linear one well under a second (in a release build).
#[test]
fn large_adversarial_inputs_take_linear_time() {
    for piece in [
        "a=",
        "token=",
        "\"a\":\"",
        "\"token\":\"",
        "--token ",
        "Authorization: ",
        "-----BEGIN A-----\n",
        "-----BEGIN A-----",
        "data:\n ",
        "\\\"data\\\":{",
        "- name: TOKEN\n",
        "a: |\n",
        "ghp_",
        "eyJaaaaaaa.",
        "LS0tLS1CRUdJTi",
        "\"kind\":\"Secret\",\"data\":{",
    ] {
        let text = piece.repeat(100_000 / piece.len());
        let started = std::time::Instant::now();
        let _ = redact(&text);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{piece:?}: {took:?}");
    }
}
