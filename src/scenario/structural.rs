//! Checks a document against a CRD's structural `openAPIV3Schema`, the way the API server would
//! read it, and reports what the server would **silently prune** as an error: an unknown field
//! such as `namespace:` for `namespaces:` would otherwise quietly widen enforcement.
//!
//! Supported keywords: `type`, `properties`, `required`, `items`, `additionalProperties`, `enum`,
//! `nullable`, `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`.
//! Validation-only keywords (`anyOf`, `oneOf`, CEL rules, formats) are not evaluated.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Diagnostic, Error, Result};
use crate::yaml::{self, Document};

/// The structural schema of one served version of a CRD.
#[derive(Debug, Clone)]
pub struct CrdSchema {
    /// `group/version`, e.g. `kyverno.io/v1`.
    pub api_version: String,
    /// The kind, e.g. `ClusterPolicy`.
    pub kind: String,
    schema: Value,
}

impl CrdSchema {
    /// Reads every served version of the CRD in `path`.
    pub fn load(path: &Path) -> Result<Vec<CrdSchema>> {
        Self::parse(path, &yaml::read(path)?)
    }

    /// The ClusterPolicy CRD of the pinned Kyverno, compiled in (`schema/kyverno/`).
    pub fn builtin() -> Result<Vec<CrdSchema>> {
        Self::parse(Path::new(BUILTIN_CRD_NAME), BUILTIN_CRD)
    }

    /// Reads the served versions' schemas from a CRD document in `src` (named `path`).
    pub fn parse(path: &Path, src: &str) -> Result<Vec<CrdSchema>> {
        let docs = yaml::documents(path, src)?;
        let crd = docs
            .iter()
            .find(|d| d.value["kind"] == "CustomResourceDefinition")
            .ok_or_else(|| Error::input(path, None, "no CustomResourceDefinition in file"))?;
        let group = crd.value["spec"]["group"].as_str().unwrap_or_default();
        let kind = crd.value["spec"]["names"]["kind"].as_str().unwrap_or_default();
        let versions = crd.value["spec"]["versions"].as_array().cloned().unwrap_or_default();
        Ok(versions
            .into_iter()
            .filter(|v| v["served"].as_bool().unwrap_or(false))
            .filter_map(|v| {
                Some(CrdSchema {
                    api_version: format!("{group}/{}", v["name"].as_str()?),
                    kind: kind.to_string(),
                    schema: v["schema"]["openAPIV3Schema"].clone(),
                })
            })
            .collect())
    }

    /// Reports every pruned (unknown) field, wrong type, missing required field and bad enum value
    /// in `doc`, located in `file`.
    pub fn check(&self, file: &Path, doc: &Document) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        walk(&doc.value, &self.schema, "", &mut |ptr: &str, key: bool, msg: String| {
            let loc = if key { doc.index.key(ptr) } else { doc.index.value(ptr) }.or_else(|| doc.index.nearest(ptr));
            out.push(Diagnostic::at(file, loc, msg));
        });
        out
    }
}

/// The name the built-in CRD goes by in messages.
pub const BUILTIN_CRD_NAME: &str = "schema/kyverno/kyverno.io_clusterpolicies-v1.19.1.yaml";

/// The ClusterPolicy CRD of Kyverno v1.19.1, upstream's file unchanged (see `schema/kyverno/README.md`).
const BUILTIN_CRD: &str = include_str!("../../schema/kyverno/kyverno.io_clusterpolicies-v1.19.1.yaml");

/// The CRD file named by `$KYVTEL_CLUSTERPOLICY_CRD`, if set (else the built-in one applies).
pub fn configured_crd_path() -> Option<PathBuf> {
    std::env::var_os("KYVTEL_CLUSTERPOLICY_CRD").filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(v: &Value, schema: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"] == true {
        return matches!(type_name(v), "integer" | "string");
    }
    match schema["type"].as_str() {
        None => true,
        Some("number") => matches!(type_name(v), "integer" | "number"),
        Some(t) => type_name(v) == t,
    }
}

fn walk(v: &Value, schema: &Value, ptr: &str, report: &mut dyn FnMut(&str, bool, String)) {
    if v.is_null() {
        if schema["nullable"] != true && schema.get("type").is_some() {
            report(
                ptr,
                false,
                format!("`{}` must be {}, not null", field(ptr), schema["type"].as_str().unwrap_or("set")),
            );
        }
        return;
    }
    if !type_ok(v, schema) {
        let want = if schema["x-kubernetes-int-or-string"] == true {
            "integer or string"
        } else {
            schema["type"].as_str().unwrap_or("")
        };
        report(ptr, false, format!("`{}` must be {want}, found {}", field(ptr), type_name(v)));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        report(ptr, false, format!("`{}` must be one of {}, found {v}", field(ptr), list.join(", ")));
    }
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            if let Some(req) = schema["required"].as_array() {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        report(ptr, false, format!("missing required field `{r}` in `{}`", field(ptr)));
                    }
                }
            }
            for (k, child) in map {
                let cptr = format!("{ptr}/{}", yaml::escape(k));
                match (props.and_then(|p| p.get(k)), &schema["additionalProperties"]) {
                    (Some(s), _) => walk(child, s, &cptr, report),
                    (None, add) if add.is_object() => walk(child, add, &cptr, report),
                    (None, Value::Bool(true)) => {}
                    (None, _) if preserve || (props.is_none() && schema.get("type").is_none()) => {}
                    (None, _) if props.is_none() && schema["type"] == "object" && !preserve => {
                        // `type: object` with no properties and no preserve flag: the API server
                        // prunes every field (except metadata's own handling, which is not checked).
                        if ptr != "/metadata" {
                            report(&cptr, true, unknown(k, ptr, &[]));
                        }
                    }
                    (None, _) => {
                        let known: Vec<&str> =
                            props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                        report(&cptr, true, unknown(k, ptr, &known));
                    }
                }
            }
        }
        Value::Array(items) if schema.get("items").is_some() => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &schema["items"], &format!("{ptr}/{i}"), report);
            }
        }
        _ => {}
    }
}

fn field(ptr: &str) -> String {
    if ptr.is_empty() { "(document)".to_string() } else { ptr.trim_start_matches('/').replace('/', ".") }
}

fn unknown(key: &str, parent: &str, known: &[&str]) -> String {
    let mut m = format!("unknown field `{key}` in `{}` (the API server would silently drop it)", field(parent));
    if let Some(close) = known.iter().find(|k| similar(k, key)) {
        m.push_str(&format!("; did you mean `{close}`?"));
    }
    m
}

/// Whether two field names differ by a plural `s`, case, or one edit.
fn similar(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b || a.trim_end_matches('s') == b.trim_end_matches('s') {
        return true;
    }
    let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if x.len().abs_diff(y.len()) > 1 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=y.len()).collect();
    for (i, cx) in x.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cy) in y.iter().enumerate() {
            cur.push((prev[j] + usize::from(cx != cy)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[y.len()] <= 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> CrdSchema {
        CrdSchema {
            api_version: "x.io/v1".into(),
            kind: "X".into(),
            schema: json!({"type": "object", "required": ["spec"], "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "mode": {"type": "string", "enum": ["Audit", "Enforce"]},
                    "count": {"type": "integer"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "pattern": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "resources": {"type": "object", "properties": {"namespaces": {"type": "array", "items": {"type": "string"}}}}
                }}
            }}),
        }
    }

    fn check(src: &str) -> Vec<String> {
        let docs = yaml::documents(Path::new("p.yaml"), src).unwrap();
        schema().check(Path::new("p.yaml"), &docs[0]).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reports_pruned_field_at_its_key_with_a_suggestion() {
        let d = check("spec:\n  resources:\n    namespace: [a]\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("p.yaml:3:5: unknown field `namespace` in `spec.resources`"), "{d:?}");
        assert!(d[0].ends_with("did you mean `namespaces`?"), "{d:?}");
    }

    #[test]
    fn accepts_preserved_and_int_or_string() {
        assert!(check("spec:\n  pattern:\n    anything: {goes: 1}\n  port: http\n").is_empty());
        assert!(check("spec:\n  port: 80\n").is_empty());
    }

    #[test]
    fn reports_type_enum_and_required() {
        let d = check("spec:\n  mode: Warn\n  count: one\n");
        assert!(d.iter().any(|m| m.starts_with("p.yaml:2:9: `spec.mode` must be one of")), "{d:?}");
        assert!(d.iter().any(|m| m.starts_with("p.yaml:3:10: `spec.count` must be integer, found string")), "{d:?}");
        let d = check("metadata: {}\n");
        assert!(d[0].contains("missing required field `spec`"), "{d:?}");
    }
}
