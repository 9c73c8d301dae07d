//! Every shipped policy fits the Kyverno ClusterPolicy CRD schema (v1.19.1, the copy kyvtel builds
//! in: `schema/kyverno/`), with no field the API server would prune.

mod common;

use std::path::PathBuf;

use kyvtel::scenario::structural::CrdSchema;
use kyvtel::yaml;
use rstest::rstest;

fn crds() -> Vec<CrdSchema> {
    let from_file = CrdSchema::load(&common::clusterpolicy_crd()).expect("the CRD parses");
    let builtin = CrdSchema::builtin().expect("the built-in CRD parses");
    assert_eq!(from_file.len(), builtin.len());
    builtin
}

#[rstest]
fn shipped_policy_fits_the_crd(
    // PolicyExceptions (`exception-*.yaml`) are not ClusterPolicies; this CRD is the ClusterPolicy one.
    #[files("scenarios/policies/*.yaml")]
    #[exclude("exception-")]
    path: PathBuf,
) {
    let crds = crds();
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
    let crds = crds();
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
    let crds = crds();
    assert!(crds.iter().any(|c| c.api_version == "kyverno.io/v1" && c.kind == "ClusterPolicy"));
}
