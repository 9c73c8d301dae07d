//! `kyvtel check`: predict admission offline with the real Kyverno engine.
//!
//! For each scenario: render the objects it would create ([`render`]), as the API server would
//! serialise them, with Telepresence's injection modelled per version (both in [`crate::predict`]);
//! judge them with `kyverno apply` ([`kyverno`]); and compare each verdict with the scenario's
//! expectations ([`compare`]).

pub mod kyverno;
pub mod rejection;

use std::path::{Path, PathBuf};

use serde::Serialize;

use self::kyverno::{Judgement, ObjectRef};
use crate::outcome::expect::{DeniedBy, StepOutcome};
use crate::predict::render::{self, Role};
use crate::scenario::Loaded;
use crate::scenario::model::Step;
use crate::tools::Runner;
use crate::{Error, Result};

/// What a scenario expects of one rendered object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Expected {
    /// It must be admitted.
    Admitted,
    /// It must be denied, by every listed violation (none listed: by anything).
    Denied(Vec<DeniedBy>),
    /// It must be denied by the listed violations and by no other policy or rule.
    DeniedOnly(Vec<DeniedBy>),
}

impl Expected {
    /// `outcome` must already be resolved for the versions ([`StepOutcome::for_versions`]).
    fn from_step(outcome: StepOutcome) -> Expected {
        match outcome.denial() {
            None => Expected::Admitted,
            // Never reached: `expectation` drops these; PSA admits or denies before Kyverno sees it.
            Some(d) if d.pod_security.is_some() => Expected::Denied(Vec::new()),
            Some(d) if d.only => Expected::DeniedOnly(d.violations),
            Some(d) => Expected::Denied(d.violations),
        }
    }
}

/// The verdict on one object, and how it compares with the expectation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectCheck {
    /// What the object stands for.
    pub role: Role,
    /// Whether the object is a model (chart defaults, injection) rather than a file of the scenario.
    pub model: bool,
    /// Which object.
    pub object: ObjectRef,
    /// Whether the engine admits it.
    pub admitted: bool,
    /// What the engine decided.
    pub judgement: Judgement,
    /// What the scenario expects; `None` when it expects nothing of this object.
    pub expected: Option<Expected>,
    /// Why the verdict does not match the expectation; `None` when it matches.
    pub mismatch: Option<String>,
}

/// The check of one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioCheck {
    /// The scenario name.
    pub scenario: String,
    /// The scenario file.
    pub file: PathBuf,
    /// The Telepresence version the injection was rendered for.
    pub telepresence: String,
    /// The Kyverno version the scenario runs with.
    pub kyverno: String,
    /// One entry per rendered object.
    pub objects: Vec<ObjectCheck>,
    /// Remarks, e.g. a Kyverno CLI whose version differs from the scenario's.
    pub notes: Vec<String>,
}

impl ScenarioCheck {
    /// Whether every verdict matches its expectation.
    #[must_use]
    pub fn matches(&self) -> bool {
        self.objects.iter().all(|o| o.mismatch.is_none())
    }
}

/// The expected outcome of the first step of the given kind that runs for the scenario's versions.
fn step_outcome(loaded: &Loaded, pick: fn(&Step) -> bool) -> Option<StepOutcome> {
    loaded
        .scenario
        .spec
        .steps
        .iter()
        .filter(|s| pick(s))
        .find_map(|s| s.outcome_for(&loaded.versions))
        .filter(|o| !matches!(o, StepOutcome::PodSecurityDenied(_)))
}

/// What the scenario expects of an object in `role`. A Pod Security Admission outcome is the API
/// server's, which the Kyverno engine cannot judge: no expectation.
///
/// The step that creates an object sets its expectation: `deployWorkload` for the Deployment,
/// `intercept` for the injected pod, `installTelepresence` for the traffic-manager. A denied
/// Deployment or manager never gets as far as a pod, so their pods are then not judged. The canary
/// must always be denied.
#[must_use]
pub fn expectation(loaded: &Loaded, role: Role) -> Option<Expected> {
    let deploy = || step_outcome(loaded, |s| matches!(s, Step::DeployWorkload(_)));
    let install = || step_outcome(loaded, |s| matches!(s, Step::InstallTelepresence(_)));
    let pod_of = |o: Option<StepOutcome>| o.filter(|o| *o == StepOutcome::Ok).map(|_| Expected::Admitted);
    match role {
        Role::Workload => deploy().map(Expected::from_step),
        Role::WorkloadPod => pod_of(deploy()),
        Role::Intercepted => step_outcome(loaded, |s| matches!(s, Step::Intercept(_))).map(Expected::from_step),
        Role::Canary => Some(Expected::Denied(Vec::new())),
        Role::Manager => install().map(Expected::from_step),
        Role::ManagerPod => pod_of(install()),
        Role::Probe(i) => loaded
            .scenario
            .spec
            .steps
            .get(i)
            .and_then(|s| s.outcome_for(&loaded.versions))
            .filter(|o| !matches!(o, StepOutcome::PodSecurityDenied(_)))
            .map(Expected::from_step),
    }
}

/// Compares a judgement with an expectation; `Some(reason)` on a mismatch.
#[must_use]
pub fn compare(judgement: &Judgement, expected: &Expected) -> Option<String> {
    match expected {
        Expected::Admitted if judgement.admitted() => None,
        Expected::Admitted => Some(format!("expected admitted, but denied by {}", describe(judgement))),
        Expected::Denied(_) | Expected::DeniedOnly(_) if judgement.admitted() => {
            Some("expected denied, but admitted".to_string())
        }
        Expected::DeniedOnly(list) => {
            let extra: Vec<String> = judgement
                .denied
                .iter()
                .filter(|v| !list.iter().any(|e| e.policy == v.policy && e.rule == v.rule))
                .map(|v| format!("{}/{}", v.policy, v.rule))
                .collect();
            compare(judgement, &Expected::Denied(list.clone())).or_else(|| {
                (!extra.is_empty())
                    .then(|| format!("expected a denial by the listed rules only, but also by {}", extra.join(", ")))
            })
        }
        Expected::Denied(list) => {
            let missing: Vec<String> = list
                .iter()
                .filter(|want| !judgement.denied.iter().any(|v| want.matches(v)))
                .map(|d| {
                    format!(
                        "{}/{}{}",
                        d.policy,
                        d.rule,
                        d.path.as_deref().map(|p| format!(" at {p}")).unwrap_or_default()
                    )
                })
                .collect();
            (!missing.is_empty())
                .then(|| format!("expected a denial by {}, but denied by {}", missing.join(", "), describe(judgement)))
        }
    }
}

/// `policy/rule at path` for every denying violation.
#[must_use]
pub fn describe(judgement: &Judgement) -> String {
    judgement
        .denied
        .iter()
        .map(|v| {
            let at = if v.paths.is_empty() { String::new() } else { format!(" at {}", v.paths.join(", ")) };
            format!("{}/{}{at}", v.policy, v.rule)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A policy problem as a diagnostic at the policy's file and, when known, the field.
fn locate(loaded: &Loaded, p: &rejection::PolicyProblem) -> crate::error::Diagnostic {
    let message = if p.message.starts_with("rule `") {
        p.message.clone()
    } else {
        format!("the Kyverno engine rejects policy `{}`: {}", p.policy, p.message)
    };
    match loaded.policies.iter().find(|x| crate::scenario::policy::name(&x.merged) == Some(p.policy.as_str())) {
        Some(x) => {
            let index = &x.source.index;
            let at = p.pointer.as_deref().and_then(|ptr| index.key(ptr).or_else(|| index.nearest(ptr)));
            crate::error::Diagnostic::at(&x.path, at.or_else(|| index.value("")), message)
        }
        None => crate::error::Diagnostic::file(&loaded.path, message),
    }
}

/// What `check` says of the injection model at `version`: each field it does not predict
/// (`not modelled: ...`), and whether a real injector of that version was compared with it.
#[must_use]
pub fn model_notes(version: &crate::scenario::version::Version) -> Vec<String> {
    let mut notes: Vec<String> = crate::predict::coverage::not_modelled_for(version)
        .into_iter()
        .map(|e| format!("not modelled: {} ({})", e.path, e.reason))
        .collect();
    if !crate::predict::coverage::verified(version) {
        match crate::predict::coverage::confirmed_by(
            std::path::Path::new(crate::predict::coverage::OBSERVED_DIR),
            version,
        ) {
            Some(file) => {
                notes.push(format!("model confirmed for {version} by a kind run's drift record ({})", file.display()))
            }
            None => notes.push(format!("{} ({version})", crate::predict::coverage::NOT_VERIFIED)),
        }
    }
    notes
}

/// Checks one loaded scenario with the engine behind `runner`, using `workdir` for its files.
pub fn check(loaded: &Loaded, runner: &dyn Runner, workdir: &Path) -> Result<ScenarioCheck> {
    let rendered = render::render(loaded)?;
    let objects: Vec<_> = rendered.iter().map(|r| r.object.clone()).collect();
    let namespaces: Vec<_> = loaded.manifest_values().filter(|d| d["kind"] == "Namespace").cloned().collect();
    let (exceptions, exception_notes) = honoured_exceptions(loaded);
    let evaluation =
        kyverno::evaluate_in(runner, workdir, &render::policies(loaded), &objects, &namespaces, &exceptions)?;
    if !evaluation.problems.is_empty() {
        return Err(Error::Input(evaluation.problems.iter().map(|p| locate(loaded, p)).collect()));
    }
    let judgements = evaluation.judgements;
    let mut checks = Vec::new();
    for r in &rendered {
        let object = ObjectRef::of(&r.object);
        let judgement = judgements.get(&object).cloned().ok_or_else(|| Error::Tool {
            tool: "kyverno".into(),
            phase: "check".into(),
            message: format!("no judgement for {object}"),
        })?;
        let expected = expectation(loaded, r.role);
        let mismatch = expected.as_ref().and_then(|e| compare(&judgement, e));
        checks.push(ObjectCheck {
            role: r.role,
            model: r.model,
            object,
            admitted: judgement.admitted(),
            judgement,
            expected,
            mismatch,
        });
    }
    Ok(ScenarioCheck {
        scenario: loaded.name().to_string(),
        file: loaded.path.clone(),
        telepresence: loaded.versions.telepresence.clone(),
        kyverno: loaded.versions.kyverno.clone(),
        objects: checks,
        notes: model_notes(&loaded.versions.telepresence_version())
            .into_iter()
            .chain(pod_security_notes(loaded))
            .chain(exception_notes)
            .collect(),
    })
}

/// The scenario's PolicyExceptions that the admission controller will honour, with a note for each
/// it ignores. The Kyverno chart's values decide: `features.policyExceptions.enabled` (off by default),
/// and `features.policyExceptions.namespace`, rendered as `--exceptionNamespace` only when set; the
/// controller then accepts exceptions in that namespace (`*`: all). With the feature on and no namespace
/// it logs "the flag --exceptionNamespace cannot be empty" and honours none, while the Kyverno CLI
/// would apply them all.
// upstream: kyverno/kyverno charts/kyverno/templates/_helpers.tpl@v1.19.1 (flags), cmd/internal/engine.go
// @v1.19.1 (NewExceptionSelector: `if exceptionNamespace == "" { ... return nil, nil }`),
// charts/kyverno/values.yaml@v1.19.1 (`features.policyExceptions: {enabled: false, namespace: ''}`).
fn honoured_exceptions(loaded: &Loaded) -> (Vec<serde_json::Value>, Vec<String>) {
    let values = loaded.scenario.spec.kyverno.values.clone().unwrap_or_default();
    let feature = &serde_json::Value::Object(values)["features"]["policyExceptions"];
    let enabled = feature["enabled"] == true;
    let namespace = feature["namespace"].as_str().unwrap_or_default();
    let mut kept = Vec::new();
    let mut notes = Vec::new();
    for e in &loaded.exceptions {
        let name = format!(
            "{}/{}",
            e.merged["metadata"]["namespace"].as_str().unwrap_or_default(),
            e.merged["metadata"]["name"].as_str().unwrap_or_default()
        );
        let why = if !enabled {
            Some("Kyverno's `features.policyExceptions.enabled` is not true".to_string())
        } else if namespace.is_empty() {
            Some("`features.policyExceptions.namespace` is empty: Kyverno 1.19 then honours no exception".to_string())
        } else if namespace != "*" && e.merged["metadata"]["namespace"] != namespace {
            Some(format!("Kyverno accepts exceptions only in namespace `{namespace}`"))
        } else {
            None
        };
        match why {
            Some(w) => notes.push(format!("PolicyException {name} is ignored, as the admission controller will: {w}")),
            None => kept.push(e.merged.clone()),
        }
    }
    (kept, notes)
}

/// The steps whose expected outcome is Pod Security Admission's: the API server judges those, not
/// the Kyverno engine, so `check` says it does not predict them.
fn pod_security_notes(loaded: &Loaded) -> Vec<String> {
    let v = &loaded.versions;
    loaded
        .scenario
        .spec
        .steps
        .iter()
        .filter(|s| matches!(s.outcome_for(v), Some(StepOutcome::PodSecurityDenied(_))))
        .map(|s| format!("not judged offline: step `{}` expects a Pod Security Admission denial", s.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::expect::Violation;

    fn denied(policy: &str, rule: &str, path: &str) -> Judgement {
        Judgement {
            denied: vec![Violation {
                policy: policy.into(),
                rule: rule.into(),
                paths: vec![path.into()],
                message: String::new(),
            }],
            ..Judgement::default()
        }
    }

    #[test]
    fn check_says_when_the_model_is_not_verified_for_a_version() {
        let v = |s: &str| crate::scenario::version::Version::parse(s).unwrap();
        assert!(model_notes(&v("2.31.0")).is_empty(), "{:?}", model_notes(&v("2.31.0")));
        let notes = model_notes(&v("2.32.1"));
        assert!(notes.iter().any(|n| n.starts_with(crate::predict::coverage::NOT_VERIFIED)), "{notes:?}");
    }

    #[test]
    fn comparisons() {
        let ok = Judgement::default();
        let d = denied("p", "r", "/spec/containers/1/securityContext/allowPrivilegeEscalation/");
        assert_eq!(compare(&ok, &Expected::Admitted), None);
        assert!(compare(&d, &Expected::Admitted).is_some_and(|m| m.contains("p/r at /spec/containers/1/")));
        assert!(compare(&ok, &Expected::Denied(vec![])).is_some());
        assert_eq!(compare(&d, &Expected::Denied(vec![])), None);
        let want = |path: &str| DeniedBy { policy: "p".into(), rule: "r".into(), path: Some(path.into()), when: None };
        assert_eq!(compare(&d, &Expected::Denied(vec![want("/spec/containers/1/securityContext/")])), None);
        let m = compare(&d, &Expected::Denied(vec![want("/spec/containers/0/")]));
        assert!(m.is_some_and(|m| m.contains("p/r at /spec/containers/0/")));
    }
}
