//! Every shipped policy fits the Kyverno ClusterPolicy CRD schema (v1.19.0), with no field the API
//! server would prune. The CRD comes from the shared fixtures (`KYVTEL_SHARED_DIR`); without it
//! the tests print why and skip.

mod common;

use std::path::PathBuf;

use kyvtel::scenario::structural::CrdSchema;
use kyvtel::yaml;
use rstest::rstest;

fn crds() -> Option<Vec<CrdSchema>> {
    let path = common::clusterpolicy_crd()?;
    Some(CrdSchema::load(&path).expect("the CRD fixture parses"))
}

#[rstest]
fn shipped_policy_fits_the_crd(#[files("scenarios/policies/*.yaml")] path: PathBuf) {
    let Some(crds) = crds() else { return };
    let src = std::fs::read_to_string(&path).unwrap();
    let docs = yaml::documents(&path, &src).unwrap();
    assert!(!docs.is_empty(), "{} has no documents", path.display());
    for doc in docs {
        let api = doc.value["apiVersion"].as_str().unwrap_or_default();
        assert_eq!(doc.value["kind"], "ClusterPolicy", "{}", path.display());
        let crd = crds.iter().find(|c| c.api_version == api).unwrap_or_else(|| panic!("{api} not served"));
        let problems = crd.check(&path, &doc);
        assert!(problems.is_empty(), "{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
    }
}

#[test]
fn the_crd_check_flags_a_pruned_exclusion_field() {
    let Some(crds) = crds() else { return };
    let path = common::root().join("tests/fixtures/bad/policies/typo-policy.yaml");
    let src = std::fs::read_to_string(&path).unwrap();
    let doc = &yaml::documents(&path, &src).unwrap()[0];
    let crd = crds.iter().find(|c| c.api_version == "kyverno.io/v1").unwrap();
    let problems: Vec<String> = crd.check(&path, doc).iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains(":20:15: unknown field `namespace`"), "{problems:?}");
}

#[test]
fn the_crd_serves_clusterpolicy_v1() {
    let Some(crds) = crds() else { return };
    assert!(crds.iter().any(|c| c.api_version == "kyverno.io/v1" && c.kind == "ClusterPolicy"));
}
