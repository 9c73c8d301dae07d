//! Redaction of credentials in everything kyvtel writes (reports, bundles).
//!
//! Replaced, in this order:
//! - PEM blocks, `-----BEGIN X-----` … `-----END X-----` (certificates, keys);
//! - kubeconfig and Secret credential fields, in YAML (`key: value`, the rest of the line), JSON
//!   (`"key": "value"`) and inline in prose or logs (`key: value` / `key=value`, up to a separator):
//!   `client-certificate-data`, `client-key-data`, `certificate-authority-data`, `token`,
//!   `id-token`, `refresh-token`, `access-token`, `password`;
//! - `Bearer <token>` (HTTP headers, logs);
//! - JWT-looking strings: `eyJ` followed by base64url (service-account tokens, id tokens).

use std::sync::LazyLock;

use regex::Regex;

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

const FIELDS: &str = "client-certificate-data|client-key-data|certificate-authority-data|token|id-token|refresh-token|access-token|password";

static PEM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)-----BEGIN ([A-Z0-9 ]+)-----.*?-----END [A-Z0-9 ]+-----").expect("valid regex"));
static YAML_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?m)^(\s*-?\s*(?:{FIELDS})\s*:[ \t]*)[^\s#].*$")).expect("valid regex"));
static INLINE_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"(^|[\s{{,;(])((?:{FIELDS})[ \t]*[:=][ \t]*)[^\s,;}})"'<]+"#)).expect("valid regex")
});
static JSON_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r#"("(?:{FIELDS})"\s*:\s*)"(?:[^"\\]|\\.)*""#)).expect("valid regex"));
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*").expect("valid regex"));
static JWT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"eyJ[A-Za-z0-9_\-]{6,}(?:\.[A-Za-z0-9_\-]+){0,2}").expect("valid regex"));

/// `text` with every credential replaced by [`REDACTED`].
#[must_use]
pub fn redact(text: &str) -> String {
    let s = PEM.replace_all(text, |c: &regex::Captures<'_>| {
        format!("-----BEGIN {0}----- {REDACTED} -----END {0}-----", &c[1])
    });
    let s = YAML_FIELD.replace_all(&s, format!("${{1}}{REDACTED}"));
    let s = JSON_FIELD.replace_all(&s, format!("${{1}}\"{REDACTED}\""));
    let s = INLINE_FIELD.replace_all(&s, format!("${{1}}${{2}}{REDACTED}"));
    let s = BEARER.replace_all(&s, format!("${{1}}{REDACTED}"));
    JWT.replace_all(&s, REDACTED).into_owned()
}
