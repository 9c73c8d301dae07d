//! Redaction of credentials in everything kyvtel writes (reports, bundles) and prints (errors with
//! tool output, warnings, progress).
//!
//! Replaced, in this order:
//! - PEM blocks, `-----BEGIN X-----` … `-----END X-----` (certificates, keys), and a block cut off
//!   before its END line: its header lines (`Proc-Type`, `DEK-Info`) and every base64 line after
//!   the BEGIN line (also JSON-escaped, `\n`-separated), up to the first line that is not base64;
//! - every value under the `data:` and `stringData:` maps of a Kubernetes Secret, whatever the keys
//!   (`tls.key`, `ca.crt`, `.dockerconfigjson`): in YAML (`data:` only in a document with
//!   `kind: Secret`, `stringData:` always; block scalars `|` / `>` collapse to one line; flow maps
//!   `data: {tls.key: ...}` too) and in JSON,
//!   also escaped inside another JSON string (`last-applied-configuration`), when the text has a
//!   `"kind": "Secret"`;
//! - the value of an environment variable named like a secret (see below): `- name: DB_PASSWORD`
//!   then `value: ...` in YAML, `{"name": "GITHUB_TOKEN", "value": "..."}` in JSON (pod specs,
//!   kubeconfig `exec` env);
//! - HTTP `Authorization` and `Proxy-Authorization` header values of every scheme (`Basic`,
//!   `Bearer`, `token`, `Digest`, `Negotiate`, none): the scheme is kept, the rest replaced; as a
//!   header line, in JSON, in Go's `map[Authorization:[...]]`;
//! - the value of every key named like a secret, in YAML (`key: value`, the rest of the line, or a
//!   block scalar), JSON (`"key": "value"`, also `'key': 'value'` and escaped `\"key\"`), env files
//!   and shells (`export GITHUB_TOKEN=...`, `DB_PASSWORD='...'`), `key=value` / `key: value` in logs,
//!   URL queries (`&access_token=...`) and flags (`--password=...`, `--token ...`). A key is named
//!   like a secret when, lower-cased and without `-`, `_` and `.`, it is `auth` or ends in `token`,
//!   `password`, `passwd`, `passphrase`, `secret`, `apikey`, `accesskey`, `secretkey`, `privatekey`,
//!   `clientkey`, `credential(s)`, `clientkeydata`, `clientcertificatedata` or
//!   `certificateauthoritydata` (so `TOKEN`, `apiKey`, `x-api-key`, `ClientSecret`, `client_secret`,
//!   `id-token`, `refresh-token`, `identitytoken`, docker's `auth`, kubeconfig `client-key-data`, but
//!   not `tokenExpirationSeconds`, `secretName` or `serviceAccountName`). Values `true`, `false`,
//!   `null` and empty ones are kept (`automountServiceAccountToken: false`);
//! - `Bearer <token>` anywhere, and the password of a URL (`https://user:password@host`);
//! - well-known token formats anywhere: GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`,
//!   `github_pat_`), GitLab (`glpat-`), Slack (`xoxb-`, `xoxp-`, …), AWS access key ids (`AKIA…`,
//!   `ASIA…`), `sk-…` API keys (mixed case and digits), Google API keys (`AIza…`), npm (`npm_`),
//!   Docker Hub (`dckr_pat_`), Stripe (`sk_live_`, `rk_test_`, …), Hugging Face (`hf_`), PyPI
//!   (`pypi-AgE…`), and base64-encoded PEM (`LS0tLS1CRUdJTi…`);
//! - JWT-looking strings: `eyJ` followed by base64url (service-account tokens, id tokens).
//!
//! Redaction runs in time linear in the text (the regex crate, and single forward scans; the passes
//! are repeated over their own output until nothing changes, at most a few times), never panics,
//! and is idempotent: redacting redacted text changes nothing.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid regex")
}

/// A complete PEM block. Its body never holds `--`, so a block cut short does not swallow the text
/// up to the END line of a later one.
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    re(r"-----BEGIN ([A-Z0-9](?:[A-Z0-9 ]{0,78}[A-Z0-9])?)-----(?:[^-]|-[^-])*-----END [A-Z0-9 ]{1,80}-----")
});
/// The BEGIN line of a PEM block (what is left after [`PEM`]: a block without its END line).
static PEM_BEGIN: LazyLock<Regex> = LazyLock::new(|| re(r"-----BEGIN [A-Z0-9](?:[A-Z0-9 ]{0,78}[A-Z0-9])?-----"));

/// A YAML `data:` or `stringData:` key with nothing after it (a block map follows).
static YAML_DATA: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^([ ]*(?:-[ ]+)?)["']?(data|stringData)["']?[ \t]*:[ \t]*(?:#.*)?\r?$"#));
/// A YAML `data:` or `stringData:` key holding a flow map: `data: {tls.key: ..., ca.crt: ...}`.
static YAML_DATA_FLOW: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^([ ]*(?:-[ ]+)?["']?(data|stringData)["']?[ \t]*:[ \t]*\{)(.*)(\}[ \t]*\r?)$"#));
/// One `key: value` entry of a YAML flow map.
static FLOW_ENTRY: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"((?:^|,)[ \t]*(?:"[^"]*"|'[^']*'|[^,:{}\s]+)[ \t]*:[ \t]*)("(?:[^"\\]|\\.)*"|'[^']*'|[^,{}]*[^,{}\s])"#)
});
/// `kind: Secret` on its own line.
static YAML_SECRET_KIND: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?m)^[ ]*(?:-[ ]+)?kind[ \t]*:[ \t]*["']?Secret["']?[ \t]*\r?$"#));
/// One YAML `key: value` line: indentation and `- `, the key (maybe quoted), the colon, the value.
static YAML_LINE: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"^([ ]*(?:-[ ]+)?)(?:"([^"]*)"|'([^']*)'|([^\s"'#:][^\s:#]*))[ \t]*(:)(?:[ \t]+(.*?))?[ \t]*\r?$"#)
});
/// `- name: X` in a YAML list (an env variable, a kubeconfig exec env entry).
static YAML_ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^([ ]*-[ ]+)name[ \t]*:[ \t]*["']?([A-Za-z0-9_.\-]+)["']?[ \t]*\r?$"#));

/// `"data": {` or `"stringData": {` in JSON, also escaped (`\"data\": {`).
static JSON_DATA: LazyLock<Regex> = LazyLock::new(|| re(r#"(\\?)"(data|stringData)\\?"\s*:\s*\{"#));
/// `"kind": "Secret"` in JSON, also escaped.
static JSON_SECRET_KIND: LazyLock<Regex> = LazyLock::new(|| re(r#"\\?"kind\\?"\s*:\s*\\?"Secret\\?""#));
/// `{"name": "X", "value": "` in JSON, also escaped.
static JSON_ENV: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\\?"name\\?"\s*:\s*\\?"([A-Za-z0-9_.\-]+)\\?"\s*,\s*\\?"value\\?"\s*:\s*(\\?["'])"#));
/// `"key": "` (or single-quoted, or escaped): a string-valued JSON member.
static JSON_FIELD: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:\\?["'])([A-Za-z0-9_.\-]+)\\?["'][ \t]*:[ \t]*(\\?["'])"#));

/// The name and separator of an HTTP `Authorization` header, in any notation.
static AUTHORIZATION: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\b(?:proxy-)?authorization\\?["']?[ \t]*[:=][ \t]*"#));
/// `key=value` / `key: value` inline (logs, env files, shells, URL queries, `--flag=value`).
static INLINE_FIELD: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[^A-Za-z0-9_.\-/])(-{0,2}[A-Za-z][A-Za-z0-9_.\-]*)[ \t]*[:=][ \t]*"));
/// `--flag value`.
static FLAG: LazyLock<Regex> = LazyLock::new(|| re(r#"(?:^|[\s'"\[,(])(--?[A-Za-z][A-Za-z0-9_\-]*)[ \t]+"#));
static BEARER: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/][A-Za-z0-9\-._~+/=]*"));
static TOKEN_FORMATS: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        // Distinctive prefixes, found also after `_` (`logs__ghp_…`, a flattened path).
        r"gh[pousr]_[A-Za-z0-9]{36,255}\b",
        r"|github_pat_[A-Za-z0-9_]{22,255}",
        r"|glpat-[A-Za-z0-9_\-]{20,}",
        r"|xox[abeoprs]-[A-Za-z0-9\-]{10,}",
        r"|\b(?:AKIA|ASIA|AIDA|AROA|ANPA|AGPA|AIPA)[A-Z0-9]{16}\b",
        r"|\b(?P<sk>sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,})",
        r"|\bAIza[0-9A-Za-z_\-]{35}",
        r"|\bnpm_[A-Za-z0-9]{36}\b",
        r"|dckr_pat_[A-Za-z0-9_\-]{20,}",
        r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{20,}",
        r"|\bhf_[A-Za-z0-9]{30,}\b",
        r"|\bpypi-AgE[A-Za-z0-9_\-]{50,}",
        r"|LS0tLS1CRUdJTi[A-Za-z0-9+/=]*",
    ))
});
static REPEATED: LazyLock<Regex> = LazyLock::new(|| re(&format!("(?:{REDACTED}){{2,}}")));
/// The password of a URL's user information: `scheme://user:password@host`.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| re(r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]+:)[^\s/@]+@"));
static JWT: LazyLock<Regex> = LazyLock::new(|| re(r"eyJ[A-Za-z0-9_\-]{6,}(?:\.[A-Za-z0-9_\-]+){0,2}"));

/// `text` with every credential replaced by [`REDACTED`].
#[must_use]
pub fn redact(text: &str) -> String {
    // One rule's replacement can complete what another looks for (a bearer token swallowing the
    // dashes before a PEM END line): the passes run again until nothing changes, so that redacting
    // redacted text changes nothing. Text without secrets is read once.
    let mut s = redact_once(text);
    if s == text {
        return s;
    }
    for _ in 0..ROUNDS {
        let next = redact_once(&s);
        if next == s {
            break;
        }
        s = next;
    }
    s
}

/// How many times [`redact`] re-reads its own output at most.
const ROUNDS: usize = 4;

fn redact_once(text: &str) -> String {
    let s =
        PEM.replace_all(text, |c: &Captures<'_>| format!("-----BEGIN {0}----- {REDACTED} -----END {0}-----", &c[1]));
    let s = rewrite(&s, &PEM_BEGIN, cut_pem);
    let s = yaml_blocks(&s);
    let s = json_secret_data(&s);
    let s = rewrite(&s, &JSON_ENV, |t, c| {
        let q = c.get(2)?;
        is_secret_key(&c[1]).then(|| quoted_value(t, q.as_str(), q.end()))?
    });
    let s = rewrite(&s, &AUTHORIZATION, authorization);
    let s = rewrite(&s, &JSON_FIELD, |t, c| {
        let q = c.get(2)?;
        is_secret_key(&c[1]).then(|| quoted_value(t, q.as_str(), q.end()))?
    });
    let s = yaml_fields(&s);
    let s = rewrite(&s, &INLINE_FIELD, |t, c| {
        let end = c.get(0)?.end();
        is_secret_key(&c[1]).then(|| inline_value(t, end))?
    });
    let s = rewrite(&s, &FLAG, |t, c| {
        let end = c.get(0)?.end();
        if !is_secret_key(&c[1]) || t[end..].starts_with('-') {
            return None;
        }
        inline_value(t, end)
    });
    let s = BEARER.replace_all(&s, format!("${{1}}{REDACTED}"));
    let s = URL_PASSWORD.replace_all(&s, format!("${{1}}{REDACTED}@"));
    let s = TOKEN_FORMATS.replace_all(&s, |c: &Captures<'_>| match c.name("sk") {
        Some(sk) if !looks_random(sk.as_str()) => sk.as_str().to_string(),
        _ => REDACTED.to_string(),
    });
    let s = JWT.replace_all(&s, REDACTED);
    // A secret redacted by one rule and its neighbour by another (`Bearer token=x`) read as one.
    REPEATED.replace_all(&s, REDACTED).into_owned()
}

/// Whether `key` names a secret (see the module documentation).
fn is_secret_key(key: &str) -> bool {
    let k: String = key.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    const ENDINGS: &[&str] = &[
        "token",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "apikey",
        "accesskey",
        "secretkey",
        "privatekey",
        "clientkey",
        "credential",
        "credentials",
        "clientkeydata",
        "clientcertificatedata",
        "certificateauthoritydata",
    ];
    k == "auth" || ENDINGS.iter().any(|e| k.ends_with(e))
}

/// Whether a value is no secret, or is redacted already.
fn harmless(value: &str) -> bool {
    let v = value.trim().trim_matches(['"', '\'']);
    v.is_empty() || v == REDACTED || ["true", "false", "null", "~"].iter().any(|w| v.eq_ignore_ascii_case(w))
}

/// Whether an `sk-` candidate looks like a generated key (upper case, lower case and digits) rather
/// than a name (`sk-kyverno-admission-controller`).
fn looks_random(s: &str) -> bool {
    let body = s.trim_start_matches("sk-");
    body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().any(|b| b.is_ascii_uppercase())
        && body.bytes().any(|b| b.is_ascii_lowercase())
}

/// What replaces part of a text: `text[start..end]` becomes the string.
type Edit = (usize, usize, String);

/// Replaces, left to right, each match of `re` for which `f(text, captures)` gives an [`Edit`]
/// that starts at or after the match's start and ends at or after its end. A match `f` declines is left as it
/// is, and the search goes on from its second character.
fn rewrite(text: &str, re: &Regex, mut f: impl FnMut(&str, &Captures<'_>) -> Option<Edit>) -> String {
    let mut out = String::new();
    let mut changed = false;
    let mut copied = 0;
    let mut pos = 0;
    while pos <= text.len() {
        let Some(c) = re.captures_at(text, pos) else { break };
        let Some(m) = c.get(0) else { break };
        let next = match f(text, &c) {
            Some((start, end, replacement))
                if start >= m.start()
                    && start <= end
                    && (m.end()..=text.len()).contains(&end)
                    && text.is_char_boundary(start)
                    && text.is_char_boundary(end) =>
            {
                out.push_str(&text[copied..start]);
                out.push_str(&replacement);
                copied = end;
                changed = true;
                end
            }
            // The text the match took (a separator, a value) may hold the start of another.
            _ => next_boundary(text, m.start()),
        };
        pos = next.max(next_boundary(text, m.start()));
    }
    if !changed {
        return text.to_string();
    }
    out.push_str(&text[copied..]);
    out
}

/// The char boundary after `i`.
fn next_boundary(text: &str, i: usize) -> usize {
    text[i..].chars().next().map_or(text.len() + 1, |c| i + c.len_utf8())
}

/// The contents of the quoted string that starts at `from`, after its opening `quote` (`"`, `'`,
/// `\"` or `\'`), replaced; the closing quote stays. An unterminated string runs to the end of
/// the line.
fn quoted_value(text: &str, quote: &str, from: usize) -> Option<Edit> {
    let end = string_end(text, from, quote);
    (!harmless(&text[from..end])).then(|| (from, end, REDACTED.to_string()))
}

/// Where the string whose contents start at `from` ends (its closing quote, not included).
fn string_end(text: &str, from: usize, quote: &str) -> usize {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        match (quote, b[i]) {
            (_, b'\n' | b'\r') => return i,
            ("\"", b'\\') => i += 1,
            ("\"" | "'", q) if q == quote.as_bytes()[0] => return i,
            ("\\\"" | "\\'", b'\\') if b.get(i + 1) == Some(&quote.as_bytes()[1]) => return i,
            ("\\\"" | "\\'", b'\\') if b.get(i + 1) == Some(&b'\\') => i += 1,
            _ => {}
        }
        i += 1;
    }
    b.len().min(text.len())
}

/// A value after `key=` / `key: ` at `start`: a quoted string, or a run up to a separator.
fn inline_value(text: &str, start: usize) -> Option<Edit> {
    let rest = &text[start..];
    if let Some(q) = ["\\\"", "\\'", "\"", "'"].into_iter().find(|q| rest.starts_with(q)) {
        return quoted_value(text, q, start + q.len());
    }
    let len = rest.find(|c: char| c.is_whitespace() || ",;&{}[]()\"'<>\\`".contains(c)).unwrap_or(rest.len());
    (len > 0 && !harmless(&rest[..len])).then(|| (start, start + len, REDACTED.to_string()))
}

/// The value of an `Authorization` header after its name and separator (`text[..start]`): keeps the
/// scheme and replaces the rest, up to the end of the line or of the string or list holding it.
fn authorization(text: &str, c: &Captures<'_>) -> Option<Edit> {
    let start = c.get(0)?.end();
    let rest = &text[start..];
    let b = rest.as_bytes();
    let mut i = 0;
    let bracket = rest.starts_with('[');
    if bracket {
        i += 1;
    }
    let quote = ["\\\"", "\\'", "\"", "'"].into_iter().find(|q| rest[i..].starts_with(q));
    let from = i + quote.map_or(0, str::len);
    let end = match quote {
        Some(q) => string_end(text, start + from, q) - start,
        None => {
            let mut j = from;
            while j < b.len() {
                match b[j] {
                    b'\r' | b'\n' | b'\\' => break,
                    b']' if bracket => break,
                    q @ (b'"' | b'\'') if j > 0 && b[j - 1] == b'=' => {
                        // A quoted parameter (`Digest response="..."`): to its closing quote.
                        j += 1;
                        while j < b.len() && b[j] != q && b[j] != b'\n' {
                            j += 1;
                        }
                        if j < b.len() && b[j] == q {
                            j += 1;
                        }
                        continue;
                    }
                    b'"' | b'\'' => break,
                    _ => j += 1,
                }
            }
            while j > from && matches!(b[j - 1], b' ' | b'\t') {
                j -= 1;
            }
            j
        }
    };
    let value = &rest[from..end];
    if value.trim().is_empty() || value.trim() == REDACTED {
        return None;
    }
    let scheme = value
        .split_once([' ', '\t'])
        .filter(|(s, cred)| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !cred.trim().is_empty()
        })
        .map(|(s, cred)| &value[..s.len() + (value.len() - s.len() - cred.len())]);
    Some((start + from, start + end, format!("{}{REDACTED}", scheme.unwrap_or(""))))
}

/// A PEM block without its END line (see the module documentation): the BEGIN line stays, followed
/// by ` REDACTED`, and what follows the last base64 line is kept.
fn cut_pem(text: &str, c: &Captures<'_>) -> Option<Edit> {
    let m = c.get(0)?;
    if text[m.end()..].starts_with(&format!(" {REDACTED}")) {
        return None;
    }
    let b = text.as_bytes();
    let sep = |i: usize| -> usize {
        match (b.get(i), b.get(i + 1)) {
            (Some(b'\r'), Some(b'\n')) => 2,
            (Some(b'\r' | b'\n'), _) => 1,
            (Some(b'\\'), Some(b'n' | b'r')) => 2,
            _ => 0,
        }
    };
    let mut i = m.end();
    let mut kept = m.end();
    // Header lines of an encrypted key.
    loop {
        let mut j = i;
        while sep(j) > 0 {
            j += sep(j);
        }
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if j == i || !["Proc-Type:", "DEK-Info:", "Comment:"].iter().any(|h| text[j..].starts_with(h)) {
            break;
        }
        while j < b.len() && sep(j) == 0 {
            j += 1;
        }
        i = j;
        kept = j;
    }
    // Base64 lines.
    loop {
        let mut j = i;
        let mut separated = j == m.end();
        while sep(j) > 0 {
            j += sep(j);
            separated = true;
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
        }
        let run = j;
        while matches!(b.get(j), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')) {
            j += 1;
        }
        let line_ends =
            j == b.len() || sep(j) > 0 || matches!(b[j], b'"' | b'\'' | b'\\' | b'-' | b'`' | b',' | b'}' | b']');
        if j == run || !separated || !line_ends {
            break;
        }
        i = j;
        kept = j;
    }
    (kept > m.end()).then(|| (m.end(), kept, format!(" {REDACTED}")))
}

/// The YAML line pass: values under a Secret's `data:` / `stringData:`, block scalars of secret
/// keys, and `value:` of env entries named like a secret.
fn yaml_blocks(text: &str) -> String {
    if !text.contains(':') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut doc_start = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let last = n + 1 == lines.len();
        let separator = line.trim_end() == "---" || line.starts_with("--- ");
        if separator || last {
            let end = if separator { n } else { n + 1 };
            yaml_document(&lines[doc_start..end], &mut out);
            if separator {
                out.push_str(line);
                doc_start = n + 1;
            }
        }
    }
    out
}

/// The indentation of `line`, in spaces.
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where `- key: ...` starts its key (the indentation of the key, after `- `).
fn key_indent(prefix: &str) -> usize {
    prefix.len()
}

fn yaml_document(lines: &[&str], out: &mut String) {
    let secret = lines.iter().any(|l| YAML_SECRET_KIND.is_match(l));
    // A data map: the indentation of its key, and of its entries once seen.
    let mut map: Option<(usize, Option<usize>)> = None;
    // A block being collapsed: the indentation of its key, and whether REDACTED was written.
    let mut block: Option<(usize, bool)> = None;
    // An env entry named like a secret: the indentation of its keys.
    let mut env: Option<usize> = None;
    for line in lines {
        let (body, eol) = split_eol(line);
        let blank = body.trim().is_empty();
        let ind = indent(body);
        if let Some((parent, written)) = block {
            if blank {
                out.push_str(line);
                continue;
            }
            if ind > parent {
                if !written {
                    out.push_str(&body[..ind]);
                    out.push_str(REDACTED);
                    out.push_str(eol);
                    block = Some((parent, true));
                }
                continue;
            }
            block = None;
        }
        if let Some((parent, child)) = map {
            if blank {
                out.push_str(line);
                continue;
            }
            if ind > parent {
                let child = child.unwrap_or(ind);
                map = Some((parent, Some(child)));
                if ind > child {
                    // A continuation of a multi-line value.
                    out.push_str(&body[..ind]);
                    out.push_str(REDACTED);
                    out.push_str(eol);
                    block = Some((child, true));
                    continue;
                }
                match YAML_LINE.captures(body) {
                    Some(c) => {
                        let value = c.get(6).map_or("", |v| v.as_str());
                        let before_value = c.get(5).map_or(body.len(), |m| m.end());
                        if value.is_empty() || value.starts_with(['|', '>']) {
                            out.push_str(line);
                            block = Some((ind, false));
                        } else {
                            out.push_str(&body[..before_value]);
                            out.push(' ');
                            out.push_str(REDACTED);
                            out.push_str(eol);
                        }
                    }
                    None => {
                        out.push_str(&body[..ind]);
                        out.push_str(REDACTED);
                        out.push_str(eol);
                    }
                }
                continue;
            }
            map = None;
        }
        if let Some(keys) = env {
            if (!blank && ind < keys) || (body.trim_start().starts_with('-') && ind <= keys) {
                env = None;
            } else if ind == keys
                && let Some(c) = YAML_LINE.captures(body)
                && c.get(4).is_some_and(|k| k.as_str() == "value")
            {
                env = None;
                let value = c.get(6).map_or("", |v| v.as_str());
                let before_value = c.get(5).map_or(body.len(), |m| m.end());
                if value.starts_with(['|', '>']) {
                    out.push_str(line);
                    block = Some((ind, false));
                    continue;
                }
                if !harmless(value) {
                    out.push_str(&body[..before_value]);
                    out.push(' ');
                    out.push_str(REDACTED);
                    out.push_str(eol);
                    continue;
                }
            }
        }
        if let Some(c) = YAML_DATA_FLOW.captures(body)
            && (secret || &c[2] == "stringData")
        {
            let entries = FLOW_ENTRY.replace_all(&c[3], format!("${{1}}{REDACTED}"));
            out.push_str(&format!("{}{entries}{}{eol}", &c[1], &c[4]));
            continue;
        }
        if let Some(c) = YAML_DATA.captures(body) {
            if secret || &c[2] == "stringData" {
                map = Some((key_indent(&c[1]), None));
            }
        } else if let Some(c) = YAML_ENV_NAME.captures(body) {
            if is_secret_key(&c[2]) {
                env = Some(key_indent(&c[1]));
            }
        } else if let Some(c) = YAML_LINE.captures(body) {
            let key = c.get(2).or(c.get(3)).or(c.get(4)).map_or("", |k| k.as_str());
            let value = c.get(6).map_or("", |v| v.as_str());
            if value.starts_with(['|', '>']) && is_secret_key(key) {
                block = Some((key_indent(&c[1]), false));
            }
        }
        out.push_str(line);
    }
}

/// `line` split before its line ending.
fn split_eol(line: &str) -> (&str, &str) {
    let body = line.trim_end_matches(['\n', '\r']);
    (body, &line[body.len()..])
}

/// Secret keys on YAML lines (`key: value`): an unquoted value is replaced to the end of the line
/// (a comment too), a quoted one inside its quotes.
fn yaml_fields(text: &str) -> String {
    if !text.contains(':') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, eol) = split_eol(line);
        let redacted = YAML_LINE.captures(body).and_then(|c| {
            let key = c.get(2).or(c.get(3)).or(c.get(4))?.as_str();
            let value = c.get(6)?;
            let v = value.as_str();
            if !is_secret_key(key) || harmless(v) || v.starts_with(['{', '[', '|', '>', '&', '*']) {
                return None;
            }
            let (start, end, replacement) = match ["\"", "'"].into_iter().find(|q| v.starts_with(q)) {
                Some(q) => quoted_value(body, q, value.start() + 1)?,
                None => (value.start(), value.end(), REDACTED.to_string()),
            };
            Some(format!("{}{replacement}{}{eol}", &body[..start], &body[end..]))
        });
        out.push_str(redacted.as_deref().unwrap_or(line));
    }
    out
}

/// Every string value inside the JSON `data` / `stringData` objects of a Secret (`stringData`
/// always; `data` when the text has a `"kind": "Secret"`).
fn json_secret_data(text: &str) -> String {
    if !text.contains("ata") {
        return text.to_string();
    }
    let secret = JSON_SECRET_KIND.is_match(text);
    rewrite(text, &JSON_DATA, |t, c| {
        if !secret && &c[2] == "data" {
            return None;
        }
        let m = c.get(0)?;
        Some(redact_object(t, m.end(), !c[1].is_empty()))
    })
}

/// The JSON object whose contents start at `from` (after its `{`), with every string value
/// replaced, up to its `}` (or the end of the text).
fn redact_object(text: &str, from: usize, escaped: bool) -> Edit {
    let b = text.as_bytes();
    let quote = if escaped { "\\\"" } else { "\"" };
    let mut out = String::new();
    let mut copied = from;
    let mut depth = 1usize;
    let mut value_next = false;
    let mut i = from;
    while i < b.len() {
        if text[i..].starts_with(quote) {
            let start = i + quote.len();
            let end = string_end(text, start, quote);
            if value_next && !harmless(&text[start..end]) {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
            }
            value_next = false;
            i = (end + quote.len()).min(b.len());
            continue;
        }
        match b[i] {
            // Escaped JSON sits inside one string, on one line.
            b'\n' if escaped => break,
            b':' => value_next = true,
            b',' | b'[' => value_next = false,
            b'{' => {
                depth += 1;
                value_next = false;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    i += 1;
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let i = i.min(b.len());
    out.push_str(&text[copied..i]);
    (from, i, out)
}
