//! The version matrix, `scenarios/matrix.yaml`: the kind cells the nightly job runs and the local
//! cells `make test` (and the nightly local job) run. Every version must be pinned; pruning is
//! computed from the pins' `kubernetes:` ranges, never written by hand.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Loaded;
use super::pins::{NodeImage, Pins};
use super::resolve::Versions;
use super::version::{Version, VersionReq};
use crate::{Error, Result};

/// The matrix file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatrixFile {
    /// Cells on kind clusters (nightly on GitHub).
    pub kind: KindAxes,
    /// Cells on the local provider.
    pub local: LocalAxes,
}

/// The kind axes; every combination is a cell.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KindAxes {
    /// The kind release whose node images are used, e.g. `v0.33.0`.
    pub kind: String,
    /// Kubernetes minors, e.g. `"1.35"`: the kind release's pinned node image of that minor.
    pub kubernetes: Vec<String>,
    /// Kyverno chart versions.
    pub kyverno_charts: Vec<String>,
    /// Telepresence versions.
    pub telepresence: Vec<String>,
}

/// The local axes: the Kyverno the local provider builds, times the Telepresence versions it builds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalAxes {
    /// Kyverno versions run by `make test` (each must be the one the local provider builds).
    pub kyverno: Vec<String>,
    /// Kyverno versions for the nightly local job: listed as not buildable until the local provider
    /// builds them.
    #[serde(default)]
    pub nightly_kyverno: Vec<String>,
    /// Telepresence versions (each must be one the local provider builds).
    pub telepresence: Vec<String>,
}

/// Where a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CellProvider {
    /// A kind cluster.
    Kind,
    /// The local provider.
    Local,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatrixCell {
    /// Stable id, e.g. `kind-k1.35-kyverno3.9.1-tp2.32.1`; what `kyvtel run --cell` takes.
    pub id: String,
    /// Where it runs.
    pub provider: CellProvider,
    /// Kubernetes version of the node (kind) or of the local kube-apiserver.
    pub kubernetes: String,
    /// The node image by digest (kind only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_image: Option<String>,
    /// The Kyverno chart (kind) or the Kyverno built from its module (local).
    pub kyverno: String,
    /// The Telepresence version.
    pub telepresence: String,
    /// Why the cell does not run; `None` when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruned: Option<String>,
}

/// Reads, checks and expands the matrix file: every cell, pruned ones with their reason.
///
/// # Errors
/// [`Error::Input`] for an unreadable or malformed file, or a version the pins do not know, located
/// at its line and column.
pub fn load(path: &Path, pins: &Pins) -> Result<Vec<MatrixCell>> {
    let (file, src) = crate::input::read_arg(path)?;
    let (m, index): (MatrixFile, _) = crate::yaml::typed(&file, &src)?;
    let unknown = |pointer: &str, message: String| Error::input(&file, index.value(pointer), message);
    let mut cells = Vec::new();
    let release = pins.kind.release(&m.kind.kind).ok_or_else(|| {
        unknown("/kind/kind", format!("unknown kind release `{}`; known: {}", m.kind.kind, pins.kind.known()))
    })?;
    let images: Vec<NodeImage> = release.node_images.iter().filter_map(|r| NodeImage::parse(r).ok()).collect();
    for (i, minor) in m.kind.kubernetes.iter().enumerate() {
        let image = images.iter().find(|n| minor_of(&n.kubernetes) == *minor).ok_or_else(|| {
            let have: Vec<String> = images.iter().map(|n| minor_of(&n.kubernetes)).collect();
            unknown(
                &format!("/kind/kubernetes/{i}"),
                format!("kind {} pins no node image for Kubernetes {minor}; pinned: {}", m.kind.kind, have.join(", ")),
            )
        })?;
        for (j, chart) in m.kind.kyverno_charts.iter().enumerate() {
            let c = pins.kyverno_chart.release(chart).ok_or_else(|| {
                unknown(
                    &format!("/kind/kyvernoCharts/{j}"),
                    format!("unknown Kyverno chart `{chart}`; known: {}", pins.kyverno_chart.known()),
                )
            })?;
            for (k, tp) in m.kind.telepresence.iter().enumerate() {
                let t = pins.telepresence.release(tp).ok_or_else(|| {
                    unknown(
                        &format!("/kind/telepresence/{k}"),
                        format!("unknown Telepresence `{tp}`; known: {}", pins.telepresence.known()),
                    )
                })?;
                let pruned = outside(&image.kubernetes, c.kubernetes.as_deref(), &format!("Kyverno chart {chart}"))
                    .or_else(|| outside(&image.kubernetes, t.kubernetes.as_deref(), &format!("Telepresence {tp}")));
                cells.push(MatrixCell {
                    id: format!("kind-k{minor}-kyverno{chart}-tp{tp}"),
                    provider: CellProvider::Kind,
                    kubernetes: image.kubernetes.clone(),
                    node_image: Some(image.reference.clone()),
                    kyverno: chart.to_string(),
                    telepresence: tp.to_string(),
                    pruned,
                });
            }
        }
    }
    let built = pins.local.kyverno_versions();
    let kubernetes = pins
        .local
        .binaries
        .get("kube-apiserver")
        .map(|b| b.version.trim_start_matches('v').to_string())
        .unwrap_or_default();
    let nightly = m.local.nightly_kyverno.iter().map(|k| (k, true));
    for (i, (kyverno, is_nightly)) in m.local.kyverno.iter().map(|k| (k, false)).chain(nightly).enumerate() {
        let pointer = if is_nightly {
            format!("/local/nightlyKyverno/{}", i - m.local.kyverno.len())
        } else {
            format!("/local/kyverno/{i}")
        };
        let buildable = pins.local.kyverno(kyverno).is_some();
        if !buildable && !is_nightly {
            return Err(unknown(
                &pointer,
                format!("the local provider builds Kyverno {}, not {kyverno}", built.join(", ")),
            ));
        }
        for (k, tp) in m.local.telepresence.iter().enumerate() {
            if !pins.local.telepresence.contains_key(tp) {
                let known: Vec<&str> = pins.local.telepresence.keys().map(String::as_str).collect();
                return Err(unknown(
                    &format!("/local/telepresence/{k}"),
                    format!("the local provider does not build Telepresence {tp}; it builds {}", known.join(", ")),
                ));
            }
            cells.push(MatrixCell {
                id: format!("local-kyverno{kyverno}-tp{tp}"),
                provider: CellProvider::Local,
                kubernetes: kubernetes.clone(),
                node_image: None,
                kyverno: kyverno.clone(),
                telepresence: tp.clone(),
                pruned: (!buildable).then(|| {
                    format!(
                        "not buildable: the local provider builds Kyverno {} (a wrapper module each under tools/, \
                         pinned in pins.yaml `local`)",
                        built.join(", ")
                    )
                }),
            });
        }
    }
    Ok(cells)
}

/// Whether `l` runs in `cell`: a scenario that pins a version runs only in cells that have it.
#[must_use]
pub fn runs_in(l: &Loaded, cell: &MatrixCell) -> bool {
    let o = &l.scenario.spec.versions;
    let same = |pinned: &Option<String>, have: &str| pinned.as_deref().is_none_or(|p| p == have);
    match cell.provider {
        CellProvider::Kind => {
            same(&o.telepresence, &cell.telepresence)
                && same(&o.kyverno_chart, &cell.kyverno)
                && same(&o.node_image, cell.node_image.as_deref().unwrap_or_default())
        }
        CellProvider::Local => {
            same(&o.telepresence, &cell.telepresence)
                && o.node_image.is_none()
                && same(&o.kyverno_chart.as_ref().and_then(|c| app_version(c)), &cell.kyverno)
        }
    }
}

/// The scenarios of `loaded` that run in `cell`, with the cell's versions; and a line for each left out.
///
/// # Errors
/// A cell version the pins cannot resolve for a scenario (not for a valid matrix).
pub fn apply_cell(loaded: Vec<Loaded>, cell: &MatrixCell, pins: &Pins) -> Result<(Vec<Loaded>, Vec<String>)> {
    let mut kept = Vec::new();
    let mut left_out = Vec::new();
    for mut l in loaded {
        if !runs_in(&l, cell) {
            left_out.push(format!("{}: pins versions cell {} does not have", l.name(), cell.id));
            continue;
        }
        let o = &mut l.scenario.spec.versions;
        o.telepresence = Some(cell.telepresence.clone());
        if cell.provider == CellProvider::Local {
            // A nightly Kyverno runs through the chart it ships (the local provider's variants).
            o.kyverno_chart = chart_of(pins, &cell.kyverno);
        }
        if cell.provider == CellProvider::Kind {
            o.kyverno_chart = Some(cell.kyverno.clone());
            o.node_image = cell.node_image.clone();
            l.versions = Versions::resolve(pins, o).map_err(|e| {
                Error::Usage(format!(
                    "cell {}: {}",
                    cell.id,
                    e.iter().map(|u| u.message.clone()).collect::<Vec<_>>().join("; ")
                ))
            })?;
        }
        kept.push(l);
    }
    Ok((kept, left_out))
}

/// The Kyverno app version (`1.18.2`) of chart `chart`.
fn app_version(chart: &str) -> Option<String> {
    let pins = Pins::builtin();
    pins.kyverno_chart.release(chart)?.app_version.as_deref().map(|a| a.trim_start_matches('v').to_string())
}

/// The chart that ships Kyverno `kyverno` (`1.18.2`).
fn chart_of(pins: &Pins, kyverno: &str) -> Option<String> {
    pins.kyverno_chart
        .releases
        .iter()
        .find(|(_, r)| r.app_version.as_deref().map(|a| a.trim_start_matches('v')) == Some(kyverno))
        .map(|(v, _)| v.clone())
}

/// `1.35` of `1.35.8`.
fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Why Kubernetes `k8s` is outside `range` (of `what`), if it is.
fn outside(k8s: &str, range: Option<&str>, what: &str) -> Option<String> {
    let req = VersionReq::parse(range?).ok()?;
    let v = Version::parse(k8s)?;
    (!req.matches(&v)).then(|| format!("{what} supports Kubernetes {}, not {k8s}", range.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_follows_the_chart_ranges_and_minors_resolve_to_pinned_images() {
        let dir = std::env::temp_dir().join(format!("kyvtel-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("matrix.yaml");
        std::fs::write(
            &path,
            "kind:\n  kind: v0.33.0\n  kubernetes: [\"1.35\", \"1.36\"]\n  kyvernoCharts: [\"3.9.1\"]\n  telepresence: \
             [\"2.32.1\"]\nlocal:\n  kyverno: [\"1.19.1\"]\n  telepresence: [\"2.31.0\"]\n",
        )
        .unwrap();
        let cells = load(&path, &Pins::builtin()).unwrap();
        let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["kind-k1.35-kyverno3.9.1-tp2.32.1", "kind-k1.36-kyverno3.9.1-tp2.32.1", "local-kyverno1.19.1-tp2.31.0"]
        );
        assert_eq!(cells[0].pruned, None);
        assert_eq!(
            cells[1].pruned.as_deref(),
            Some("Kyverno chart 3.9.1 supports Kubernetes >=1.33, <1.36, not 1.36.4")
        );
        std::fs::write(&path, "kind:\n  kind: v0.33.0\n  kubernetes: [\"1.30\"]\n  kyvernoCharts: []\n  telepresence: []\nlocal:\n  kyverno: []\n  telepresence: []\n").unwrap();
        let err = load(&path, &Pins::builtin()).unwrap_err().to_string();
        assert!(err.contains(":3:16") && err.contains("no node image for Kubernetes 1.30"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
