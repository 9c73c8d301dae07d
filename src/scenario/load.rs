//! Loading a scenario: decode (located errors), resolve versions, read every referenced file, and
//! check what the schema cannot (references, rules, versions, names). Nothing is executed.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::expect::{OutcomeCase, StepOutcome, When};
use super::meaning;
use super::model::{Scenario, Step};
use super::pins::Pins;
use super::policy;
use super::resolve::Versions;
use super::root::{Confinement, Root};
use super::version::VersionReq;
use crate::error::{Diagnostic, Error, Result};
use crate::yaml::{self, Document, Index};

/// Namespaces Kyverno never validates by default, so they cannot host a test (facts.md §3).
pub const KYVERNO_SKIPPED_NAMESPACES: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "kyverno"];

/// A file a scenario refers to, with its documents.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path, resolved against the scenario's directory.
    pub path: PathBuf,
    /// Its YAML documents.
    pub documents: Vec<Document>,
}

/// A ClusterPolicy with the scenario's exclusions merged in.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy file.
    pub path: PathBuf,
    /// The document as written (for locating problems).
    pub source: Document,
    /// The document with exclusions merged: what will be applied.
    pub merged: Value,
}

/// A scenario and everything it refers to, checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The scenario file.
    pub path: PathBuf,
    /// The decoded scenario.
    pub scenario: Scenario,
    /// Where its nodes sit.
    pub index: Index,
    /// The versions it runs with.
    pub versions: Versions,
    /// The kind config file.
    pub kind_config: PathBuf,
    /// The policies, exclusions merged, in order.
    pub policies: Vec<Policy>,
    /// The PolicyExceptions among the scenario's policy files, in order (applied after the policies).
    pub exceptions: Vec<Policy>,
    /// The Telepresence values file and its content.
    pub telepresence_values: Option<(PathBuf, Value)>,
    /// The workload manifests, in order.
    pub manifests: Vec<SourceFile>,
    /// The manifests of `admit` steps, by the path as the scenario writes it.
    pub admit_manifests: std::collections::BTreeMap<PathBuf, SourceFile>,
}

impl Loaded {
    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.scenario.metadata.name
    }

    /// The workload Deployment document.
    pub fn workload(&self) -> Option<&Value> {
        self.manifest_values().find(|d| is_workload(d, &self.scenario.spec.workload.name))
    }

    /// Every workload manifest document, in order.
    pub fn manifest_values(&self) -> impl Iterator<Item = &Value> {
        self.manifests.iter().flat_map(|f| f.documents.iter().map(|d| &d.value))
    }

    /// The Namespace object for `name`, with the labels the scenario gives it.
    pub fn namespace_object(&self, name: &str) -> Value {
        let mut ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if let Some(settings) = self.scenario.spec.namespaces.get(name).filter(|s| !s.labels.is_empty()) {
            ns["metadata"]["labels"] = serde_json::json!(settings.labels);
        }
        ns
    }

    /// The workload's pod selector (`spec.selector.matchLabels`).
    pub fn workload_selector(&self) -> serde_json::Map<String, Value> {
        self.workload().and_then(|d| d["spec"]["selector"]["matchLabels"].as_object().cloned()).unwrap_or_default()
    }
}

/// Collects located problems while loading.
struct Problems<'a> {
    file: &'a Path,
    index: &'a Index,
    list: Vec<Diagnostic>,
}

impl Problems<'_> {
    /// A problem with the key at `pointer` (a step, a field), located at the key.
    fn at_key(&mut self, pointer: &str, message: impl Into<String>) {
        let loc = self.index.key(pointer).or_else(|| self.index.nearest(pointer));
        self.list.push(Diagnostic::at(self.file, loc, message));
    }

    fn at(&mut self, pointer: &str, message: impl Into<String>) {
        let loc = self.index.value(pointer).or_else(|| self.index.nearest(pointer));
        self.list.push(Diagnostic::at(self.file, loc, message));
    }
}

/// Loads every scenario; all problems are reported together, and nothing runs if there is one.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Loaded>> {
    load_all_confined(paths, &Confinement::default())
}

/// [`load_all`] with the paths confined as `how` says.
pub fn load_all_confined(paths: &[PathBuf], how: &Confinement) -> Result<Vec<Loaded>> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        match load_with(p, &Pins::builtin(), how) {
            Ok(l) => loaded.push(l),
            Err(Error::Input(d)) => problems.extend(d),
            Err(e) => return Err(e),
        }
    }
    if problems.is_empty() { Ok(loaded) } else { Err(Error::Input(problems)) }
}

/// Loads and checks one scenario file with the built-in pins, its paths inside its root.
pub fn load(path: &Path) -> Result<Loaded> {
    load_with(path, &Pins::builtin(), &Confinement::default())
}

/// [`load`] with the paths confined as `how` says.
pub fn load_confined(path: &Path, how: &Confinement) -> Result<Loaded> {
    load_with(path, &Pins::builtin(), how)
}

/// Loads and checks one scenario file against `pins`.
pub fn load_with(path: &Path, pins: &Pins, how: &Confinement) -> Result<Loaded> {
    let src = yaml::read(path)?;
    let (scenario, index): (Scenario, Index) = yaml::typed(path, &src)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = Root::of(path, how).map_err(Error::Usage)?;
    let mut p = Problems { file: path, index: &index, list: Vec::new() };
    let mut other_files: Vec<Diagnostic> = Vec::new();
    let spec = &scenario.spec;

    check_name(&mut p, &scenario.metadata.name);
    let versions = match Versions::resolve(pins, &spec.versions) {
        Ok(v) => Some(v),
        Err(errs) => {
            for e in errs {
                p.at(&format!("/spec/versions/{}", e.field), e.message);
            }
            None
        }
    };

    // Every referenced path, resolved inside the root; `None` (and a problem) when it leaves it.
    let resolve = |p: &mut Problems<'_>, at: &str, written: &Path| match root.resolve(written) {
        Ok(file) => Some(file),
        Err(m) => {
            p.at(at, m);
            None
        }
    };

    let kind_config = dir.join(&spec.cluster.kind_config);
    if resolve(&mut p, "/spec/cluster/kindConfig", &spec.cluster.kind_config).is_some()
        && let Err(m) = meaning::kind_config(&kind_config)
    {
        p.at("/spec/cluster/kindConfig", format!("{}: {m}", spec.cluster.kind_config.display()));
    }

    let mut policies = Vec::new();
    let mut exceptions = Vec::new();
    for (i, rel) in spec.kyverno.policies.iter().enumerate() {
        let Some(file) = resolve(&mut p, &format!("/spec/kyverno/policies/{i}"), rel) else { continue };
        match read_docs(&file) {
            Err(Error::Input(d)) if d.iter().all(|x| x.location.is_none()) => {
                p.at(&format!("/spec/kyverno/policies/{i}"), format!("{}: {}", rel.display(), d[0].message))
            }
            Err(Error::Input(d)) => other_files.extend(d),
            Err(e) => return Err(e),
            Ok(docs) => {
                for doc in docs {
                    if policy::is_cluster_policy(&doc.value) {
                        policies.push(Policy { path: file.clone(), merged: doc.value.clone(), source: doc });
                    } else if policy::is_policy_exception(&doc.value) {
                        exceptions.push(Policy { path: file.clone(), merged: doc.value.clone(), source: doc });
                    } else {
                        let loc = doc.index.value("");
                        other_files.push(Diagnostic::at(&file, loc, policy::not_supported(&doc.value)));
                    }
                }
            }
        }
    }
    for (i, ex) in spec.kyverno.exclusions.iter().enumerate() {
        let Some(pol) = policies.iter_mut().find(|x| policy::name(&x.merged) == Some(&ex.policy)) else {
            p.at(
                &format!("/spec/kyverno/exclusions/{i}/policy"),
                format!("no policy named `{}` in spec.kyverno.policies", ex.policy),
            );
            continue;
        };
        if ex.namespaces.is_empty() {
            p.at(&format!("/spec/kyverno/exclusions/{i}/namespaces"), "list at least one namespace");
        }
        if ex.rules.is_empty() {
            p.at(
                &format!("/spec/kyverno/exclusions/{i}/rules"),
                "list at least one rule: an exclusion without rules excludes nothing",
            );
        }
        for (j, rule) in ex.rules.iter().enumerate() {
            if !policy::exclude_namespaces(&mut pol.merged, rule, &ex.namespaces) {
                let known = policy::rule_names(&pol.merged).join(", ");
                p.at(
                    &format!("/spec/kyverno/exclusions/{i}/rules/{j}"),
                    format!("policy `{}` has no rule `{rule}`; its rules: {known}", ex.policy),
                );
            }
        }
    }

    let telepresence_values = match &spec.telepresence.values {
        None => None,
        Some(rel) => match resolve(&mut p, "/spec/telepresence/values", rel) {
            None => None,
            Some(file) => match read_docs(&file) {
                Ok(docs) if docs.len() == 1 && docs[0].value.is_object() => Some((file, docs[0].value.clone())),
                Ok(_) => {
                    p.at(
                        "/spec/telepresence/values",
                        format!("{}: expected one YAML mapping of Helm values", rel.display()),
                    );
                    None
                }
                Err(Error::Input(d)) if d.iter().all(|x| x.location.is_none()) => {
                    p.at("/spec/telepresence/values", format!("{}: {}", rel.display(), d[0].message));
                    None
                }
                Err(Error::Input(d)) => {
                    other_files.extend(d);
                    None
                }
                Err(e) => return Err(e),
            },
        },
    };

    let mut manifests = Vec::new();
    for (i, rel) in spec.workload.manifests.iter().enumerate() {
        let at = format!("/spec/workload/manifests/{i}");
        let Some(file) = resolve(&mut p, &at, rel) else { continue };
        match read_docs(&file) {
            Ok(documents) => {
                for m in documents.iter().filter_map(|d| meaning::replicas(&d.value).err()) {
                    p.at(&at, format!("{}: {m}", rel.display()));
                }
                manifests.push(SourceFile { path: file, documents })
            }
            Err(Error::Input(d)) if d.iter().all(|x| x.location.is_none()) => {
                p.at(&format!("/spec/workload/manifests/{i}"), format!("{}: {}", rel.display(), d[0].message))
            }
            Err(Error::Input(d)) => other_files.extend(d),
            Err(e) => return Err(e),
        }
    }
    let mut admit_manifests = std::collections::BTreeMap::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let Step::Admit(a) = step else { continue };
        for (j, rel) in a.manifests.iter().enumerate() {
            let at = format!("/spec/steps/{i}/admit/manifests/{j}");
            let Some(file) = resolve(&mut p, &at, rel) else { continue };
            match read_docs(&file) {
                Ok(documents) if documents.is_empty() => p.at(&at, format!("{}: no YAML document", rel.display())),
                Ok(documents) => {
                    admit_manifests.insert(rel.clone(), SourceFile { path: file, documents });
                }
                Err(Error::Input(d)) if d.iter().all(|x| x.location.is_none()) => {
                    p.at(&at, format!("{}: {}", rel.display(), d[0].message))
                }
                Err(Error::Input(d)) => other_files.extend(d),
                Err(e) => return Err(e),
            }
        }
    }
    for (name, settings) in &spec.namespaces {
        let at = format!("/spec/namespaces/{}", name.replace('~', "~0").replace('/', "~1"));
        if *name != spec.workload.namespace && *name != spec.telepresence.manager_namespace {
            p.at(
                &at,
                format!(
                    "`{name}` is not one of the scenario's namespaces (`{}`, `{}`)",
                    spec.workload.namespace, spec.telepresence.manager_namespace
                ),
            );
        }
        for (key, value) in &settings.labels {
            if let Err(m) = meaning::label(key, value) {
                p.at(&format!("{at}/labels"), format!("label `{key}`: {m}"));
            }
        }
    }
    let ns = &spec.workload.namespace;
    if KYVERNO_SKIPPED_NAMESPACES.contains(&ns.as_str()) {
        p.at("/spec/workload/namespace", format!("Kyverno does not validate namespace `{ns}`; use another"));
    }
    if ns == &spec.telepresence.manager_namespace {
        p.at("/spec/workload/namespace", "the workload namespace must differ from the manager namespace");
    }
    let has_workload = manifests.iter().flat_map(|f| &f.documents).any(|d| is_workload(&d.value, &spec.workload.name));
    if !has_workload && p.list.iter().all(|d| !d.message.contains("manifests")) {
        p.at("/spec/workload/name", format!("no Deployment named `{}` in spec.workload.manifests", spec.workload.name));
    }

    check_steps(&mut p, &scenario, pins);
    for (i, group) in spec.expect.pod.iter().enumerate() {
        let at = format!("/spec/expect/pod/{i}");
        if let Some(w) = &group.when {
            check_when(&mut p, &format!("{at}/when"), w, pins);
        }
        for (field, m) in meaning::pod_expectation(group) {
            p.at(&format!("{at}{field}"), m);
        }
    }

    p.list.extend(other_files);
    match versions {
        Some(versions) if p.list.is_empty() => Ok(Loaded {
            path: path.to_path_buf(),
            scenario,
            index,
            versions,
            kind_config,
            policies,
            exceptions,
            telepresence_values,
            manifests,
            admit_manifests,
        }),
        _ => Err(Error::Input(p.list)),
    }
}

fn read_docs(file: &Path) -> Result<Vec<Document>> {
    let src = yaml::read(file)?;
    let docs = yaml::documents(file, &src)?;
    if docs.is_empty() {
        return Err(Error::input(file, None, "the file is empty"));
    }
    Ok(docs)
}

fn check_name(p: &mut Problems<'_>, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        p.at(
            "/metadata/name",
            format!("`{name}` is not a DNS label of at most 40 characters (lower-case letters, digits, `-`)"),
        );
    }
}

fn check_when(p: &mut Problems<'_>, at: &str, w: &When, pins: &Pins) {
    for (field, req) in [("telepresence", &w.telepresence), ("kyverno", &w.kyverno), ("kubernetes", &w.kubernetes)] {
        let Some(r) = req else { continue };
        match VersionReq::parse(r) {
            Err(m) => p.at(&format!("{at}/{field}"), m),
            Ok(req) => {
                if let Err(m) = meaning::satisfiable(pins, field, r, &req) {
                    p.at(&format!("{at}/{field}"), m);
                }
            }
        }
    }
}

/// Whether `name` is an RFC 1123 DNS label (what Kubernetes requires of a namespace name).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn check_namespaces(p: &mut Problems<'_>, s: &Scenario) {
    let spec = &s.spec;
    let mut names = vec![
        ("/spec/workload/namespace".to_string(), spec.workload.namespace.as_str()),
        ("/spec/telepresence/managerNamespace".to_string(), spec.telepresence.manager_namespace.as_str()),
    ];
    for (i, ex) in spec.kyverno.exclusions.iter().enumerate() {
        for (j, ns) in ex.namespaces.iter().enumerate() {
            names.push((format!("/spec/kyverno/exclusions/{i}/namespaces/{j}"), ns.as_str()));
        }
    }
    for (at, ns) in names {
        if !is_dns_label(ns) {
            p.at(&at, format!("`{ns}` is not a valid namespace name (a DNS label: lower-case letters, digits, `-`)"));
        }
    }
}

/// Checks that each step can run where it stands: one-time steps appear once, an intercept needs
/// the workload deployed and a connection, traffic and `leave` need an active intercept.
fn check_step_order(p: &mut Problems<'_>, s: &Scenario) {
    let mut seen: Vec<&'static str> = Vec::new();
    let mut intercepting = false;
    for (i, step) in s.spec.steps.iter().enumerate() {
        let key = step_key(step);
        let at = format!("/spec/steps/{i}/{key}");
        let once = !matches!(step, Step::Intercept(_) | Step::SendTraffic(_) | Step::Leave(_));
        if once && seen.contains(&key) {
            p.at_key(&at, format!("`{key}` appears twice; each setup step runs once"));
        }
        let missing = |need: &str, seen: &[&str]| !seen.contains(&need);
        match step {
            Step::Intercept(_) if intercepting => p.at_key(&at, "an intercept is already active; `leave` first"),
            Step::Intercept(_) if missing("connect", &seen) => p.at_key(&at, "`intercept` needs an earlier `connect`"),
            Step::Intercept(_) if missing("deployWorkload", &seen) => {
                p.at_key(&at, "`intercept` needs an earlier `deployWorkload`")
            }
            Step::SendTraffic(_) | Step::Leave(_) if !intercepting => {
                p.at_key(&at, format!("`{key}` needs an active intercept (an earlier `intercept`, not yet left)"))
            }
            Step::Connect(_) if missing("installTelepresence", &seen) => {
                p.at_key(&at, "`connect` needs an earlier `installTelepresence`")
            }
            Step::CompareModel(_) if missing("deployWorkload", &seen) => {
                p.at_key(&at, "`compareModel` needs an earlier `deployWorkload`")
            }
            Step::UninstallTelepresence(_) if missing("installTelepresence", &seen) => {
                p.at_key(&at, "`uninstallTelepresence` needs an earlier `installTelepresence`")
            }
            Step::UninstallTelepresence(_) if intercepting => {
                p.at_key(&at, "an intercept is still active; `leave` before `uninstallTelepresence`")
            }
            Step::Connect(_) | Step::Intercept(_) if seen.contains(&"uninstallTelepresence") => p.at_key(
                &at,
                format!("`{key}` needs the traffic-manager, removed by an earlier `uninstallTelepresence`"),
            ),
            _ => {}
        }
        match step {
            // An intercept that may succeed (for some versions) makes the later steps meaningful.
            Step::Intercept(x)
                if x.expect.as_ref().is_none_or(|e| matches!(e, StepOutcome::Ok | StepOutcome::Cases(_))) =>
            {
                intercepting = true
            }
            Step::Leave(_) => intercepting = false,
            _ => {}
        }
        seen.push(key);
    }
}

fn check_steps(p: &mut Problems<'_>, s: &Scenario, pins: &Pins) {
    if s.spec.steps.is_empty() {
        p.at("/spec/steps", "list at least one step");
    }
    check_step_order(p, s);
    check_namespaces(p, s);
    for (i, step) in s.spec.steps.iter().enumerate() {
        let at = format!("/spec/steps/{i}/{}", step_key(step));
        let expect = step.expect();
        for (key, d) in expect.violations() {
            if let Some(w) = &d.when {
                check_when(p, &format!("{at}/expect/{key}/when"), w, pins);
            }
        }
        if let StepOutcome::Cases(cases) = &expect {
            check_cases(p, &format!("{at}/expect/cases"), cases, pins);
        }
        let after = match &expect {
            StepOutcome::FailsAfterAdmission(_) => true,
            StepOutcome::Cases(c) => c.iter().any(|c| c.fails_after_admission.is_some()),
            _ => false,
        };
        if after && !matches!(step, Step::Intercept(_)) {
            p.at(
                &format!("{at}/expect"),
                "`failsAfterAdmission` is an outcome of `intercept` only (the injected pod's containers)",
            );
        }
        if let Some(w) = step.when() {
            check_when(p, &format!("{at}/when"), w, pins);
        }
        if let Step::UninstallTelepresence(_) = step
            && !matches!(expect, StepOutcome::Ok)
        {
            p.at(
                &format!("{at}/expect"),
                "`uninstallTelepresence` expects success only (what is left is its assertion)",
            );
        }
        if let Step::Admit(a) = step
            && a.manifests.is_empty()
        {
            p.at(&format!("{at}/manifests"), "list at least one manifest file");
        }
        if let Some(t) = step.timeout()
            && let Err(m) = crate::duration::parse(t)
        {
            p.at(&format!("{at}/timeout"), m);
        }
        if let Step::Intercept(x) = step
            && x.workload != s.spec.workload.name
        {
            p.at(
                &format!("{at}/workload"),
                format!("intercept names `{}`, but the workload is `{}`", x.workload, s.spec.workload.name),
            );
        }
    }
}

/// Whether `doc` is the scenario's workload: the Deployment named `name`.
#[must_use]
pub fn is_workload(doc: &Value, name: &str) -> bool {
    doc["kind"] == crate::names::kind::DEPLOYMENT && policy::name(doc) == Some(name)
}

/// The YAML key of a step (`installKyverno`, `intercept`, ...).
pub fn step_key(step: &Step) -> &'static str {
    match step {
        Step::InstallKyverno(_) => "installKyverno",
        Step::ApplyPolicies(_) => "applyPolicies",
        Step::InstallTelepresence(_) => "installTelepresence",
        Step::DeployWorkload(_) => "deployWorkload",
        Step::Connect(_) => "connect",
        Step::Intercept(_) => "intercept",
        Step::SendTraffic(_) => "sendTraffic",
        Step::Leave(_) => "leave",
        Step::CompareModel(_) => "compareModel",
        Step::Admit(_) => "admit",
        Step::UninstallTelepresence(_) => "uninstallTelepresence",
    }
}

/// Version-dependent outcomes: each case states one outcome, and only the last has no `when`.
fn check_cases(p: &mut Problems<'_>, at: &str, cases: &[OutcomeCase], pins: &Pins) {
    if cases.is_empty() {
        p.at(at, "list at least one case");
    }
    for (i, c) in cases.iter().enumerate() {
        let last = i + 1 == cases.len();
        if c.outcome().is_none() {
            p.at(
                &format!("{at}/{i}"),
                "set exactly one of `ok: {}`, `denied`, `deniedOnly`, `podSecurityDenied` and `failsAfterAdmission`",
            );
        }
        match (&c.when, last) {
            (Some(w), false) => check_when(p, &format!("{at}/{i}/when"), w, pins),
            (Some(_), true) => p.at(
                &format!("{at}/{i}/when"),
                "the last case applies when no other does: remove its `when` (or add a case without one)",
            ),
            (None, false) => {
                p.at(&format!("{at}/{i}"), "only the last case may omit `when`: later cases would never apply")
            }
            (None, true) => {}
        }
    }
}
