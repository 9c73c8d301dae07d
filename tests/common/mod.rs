//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod corpus;
pub mod fake_api;
pub mod fake_tools;
pub mod local;
pub mod mock_api;

use std::path::PathBuf;

/// The repository root (tests run the binary from here).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared reference directory: `$KYVTEL_SHARED_DIR`, default `<repo>/../shared`.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("KYVTEL_SHARED_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("../shared"))
}

/// The Kyverno ClusterPolicy CRD kyvtel builds in (`schema/kyverno/`, on every clone).
pub fn clusterpolicy_crd() -> PathBuf {
    root().join("schema/kyverno/kyverno.io_clusterpolicies-v1.19.1.yaml")
}

/// The `kyvtel` binary, run from the repository root.
pub fn kyvtel() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("kyvtel").expect("binary built");
    c.current_dir(root());
    c
}

/// The catalog's scenario files (top level and `reports/`), relative to the repository root.
pub fn catalog_files() -> Vec<PathBuf> {
    kyvtel::scenario::catalog::files(&root().join("scenarios"))
        .expect("scenarios/")
        .into_iter()
        .map(|p| p.strip_prefix(root()).expect("under the root").to_path_buf())
        .collect()
}
