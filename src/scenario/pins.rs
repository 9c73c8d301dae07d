//! Pinned default versions, loaded from the one data file `pins.yaml` (compiled in).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::version::Version;

/// The pins data file, embedded at build time.
pub const PINS_YAML: &str = include_str!("pins.yaml");

/// One downloadable release of a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Release {
    /// Download URL.
    pub url: String,
    /// Upstream checksum file next to the download, when published.
    #[serde(default)]
    pub checksum_url: Option<String>,
    /// Pinned sha256 of the download, when known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The member to extract from an archive.
    #[serde(default)]
    pub member: Option<String>,
    /// kind only: node images this release supports, first is the default.
    #[serde(default)]
    pub node_images: Vec<String>,
    /// Kyverno chart only: the Kyverno app version it ships.
    #[serde(default)]
    pub app_version: Option<String>,
    /// Kyverno chart only: the supported Kubernetes range.
    #[serde(default)]
    pub kubernetes: Option<String>,
}

/// The releases of one tool and its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tool {
    /// The default version.
    pub default: String,
    /// Every known version.
    pub releases: BTreeMap<String, Release>,
}

impl Tool {
    /// The release for `version`, or `None` if it is not pinned.
    pub fn release(&self, version: &str) -> Option<&Release> {
        self.releases.get(version)
    }

    /// The known versions, comma separated, for error messages.
    pub fn known(&self) -> String {
        self.releases.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Every pinned tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pins {
    /// kind releases and their node images.
    pub kind: Tool,
    /// Helm releases.
    pub helm: Tool,
    /// kubectl releases.
    pub kubectl: Tool,
    /// Kyverno Helm chart versions.
    pub kyverno_chart: Tool,
    /// Kyverno CLI releases.
    pub kyverno_cli: Tool,
    /// Telepresence releases.
    pub telepresence: Tool,
    /// Images kyvtel itself uses.
    pub images: Images,
    /// What the local provider builds from Go modules.
    pub local: Local,
}

/// The local provider's components, each built from a wrapper Go module under `tools/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Local {
    /// Control plane, Helm and Kyverno binaries, by the name they get in `.tools/local/`.
    pub binaries: BTreeMap<String, GoBinary>,
    /// The module whose `charts/kyverno-api` completes Kyverno's chart.
    pub kyverno_api: GoModule,
    /// The traffic-manager (`traffic`) per Telepresence version.
    pub telepresence: BTreeMap<String, GoBinary>,
    /// Further Kyverno admission controllers (the nightly local job's), by the name they get in
    /// `.tools/local/` (`kyverno-1.18.2`): built only for a run that needs one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nightly_kyverno: BTreeMap<String, NightlyKyverno>,
}

/// A second Kyverno admission controller, with the module that completes its chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NightlyKyverno {
    /// The admission controller.
    pub binary: GoBinary,
    /// The module whose `charts/kyverno-api` completes its chart.
    pub kyverno_api: GoModule,
}

/// One Kyverno the local provider can run: its binary's name in `.tools/local/`, what it is built
/// from, and the module that completes its chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalKyverno<'a> {
    /// The binary's name: `kyverno` for the default, `kyverno-<version>` for a nightly one.
    pub name: &'a str,
    /// What the binary is built from.
    pub binary: &'a GoBinary,
    /// The module whose `charts/kyverno-api` completes the chart.
    pub kyverno_api: &'a GoModule,
}

impl Local {
    /// The Kyverno of `version` (`1.18.2` or `v1.18.2`) the local provider builds, if it does.
    #[must_use]
    pub fn kyverno(&self, version: &str) -> Option<LocalKyverno<'_>> {
        let version = version.trim_start_matches('v');
        let default = self.binaries.get("kyverno")?;
        if default.version.trim_start_matches('v') == version {
            return Some(LocalKyverno { name: "kyverno", binary: default, kyverno_api: &self.kyverno_api });
        }
        self.nightly_kyverno
            .iter()
            .find(|(_, k)| k.binary.version.trim_start_matches('v') == version)
            .map(|(n, k)| LocalKyverno { name: n.as_str(), binary: &k.binary, kyverno_api: &k.kyverno_api })
    }

    /// The default Kyverno: the one `make test` runs and `kyvtel check` is built with.
    #[must_use]
    pub fn default_kyverno(&self) -> Option<LocalKyverno<'_>> {
        self.kyverno(&self.binaries.get("kyverno")?.version)
    }

    /// Every Kyverno version the local provider builds (`1.19.1`), the default first.
    #[must_use]
    pub fn kyverno_versions(&self) -> Vec<String> {
        let v = |b: &GoBinary| b.version.trim_start_matches('v').to_string();
        self.binaries
            .get("kyverno")
            .map(v)
            .into_iter()
            .chain(self.nightly_kyverno.values().map(|k| v(&k.binary)))
            .collect()
    }
}

/// A module at a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoModule {
    /// The module path.
    pub module: String,
    /// Its version.
    pub version: String,
}

/// One binary built from a Go package of a pinned module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoBinary {
    /// The wrapper module's directory, relative to the repository root.
    pub wrapper: String,
    /// The package built (`./x` is inside the wrapper).
    pub package: String,
    /// The upstream module that carries the version.
    pub module: String,
    /// The upstream module version, as in the wrapper's `go.mod`.
    pub version: String,
    /// `GOEXPERIMENT` the build needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goexperiment: Option<String>,
    /// Modules that come from the file:// mirror where the proxy refuses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror_modules: Vec<String>,
}

/// Images kyvtel itself uses (not the scenarios' workloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Images {
    /// The canary pod's image.
    pub canary: String,
    /// The in-cluster traffic client's image, pinned by digest.
    pub client: String,
}

impl Pins {
    /// The compiled-in pins, parsed once per process. The data file is checked by a unit test, so
    /// this cannot fail at run time.
    pub fn builtin() -> Pins {
        static PARSED: std::sync::OnceLock<Pins> = std::sync::OnceLock::new();
        PARSED.get_or_init(|| serde_saphyr::from_str(PINS_YAML).expect("pins.yaml is valid (checked by tests)")).clone()
    }
}

/// A kind node image reference, `kindest/node:vX.Y.Z@sha256:...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeImage {
    /// The full reference, with digest.
    pub reference: String,
    /// The Kubernetes version in its tag.
    pub kubernetes: String,
}

impl NodeImage {
    /// Parses a reference; it must carry a tag and a sha256 digest.
    pub fn parse(reference: &str) -> Result<NodeImage, String> {
        let (name_tag, digest) = reference
            .split_once("@sha256:")
            .ok_or_else(|| format!("node image `{reference}` must be pinned by digest (`...@sha256:<hex>`)"))?;
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("node image `{reference}` has a malformed sha256 digest"));
        }
        let tag = name_tag.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        if Version::parse(tag).is_none() {
            return Err(format!("node image `{reference}` has no Kubernetes version tag"));
        }
        Ok(NodeImage { reference: reference.to_string(), kubernetes: tag.trim_start_matches('v').to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pins_parse_and_defaults_exist() {
        let p = Pins::builtin();
        for t in [&p.kind, &p.helm, &p.kubectl, &p.kyverno_chart, &p.kyverno_cli, &p.telepresence] {
            assert!(t.release(&t.default).is_some(), "default {} is not a listed release", t.default);
        }
        let kind = p.kind.release(&p.kind.default).unwrap();
        assert!(kind.node_images.iter().all(|i| NodeImage::parse(i).is_ok()));
        for r in p.kyverno_chart.releases.values() {
            assert!(r.app_version.is_some() && r.kubernetes.is_some());
        }
    }

    #[test]
    fn node_image_requires_digest() {
        assert!(NodeImage::parse("kindest/node:v1.35.8").unwrap_err().contains("by digest"));
        let img = NodeImage::parse(
            "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
        )
        .unwrap();
        assert_eq!(img.kubernetes, "1.35.8");
    }
}
