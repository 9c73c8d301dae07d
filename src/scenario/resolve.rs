//! Resolving a scenario's versions against the pins: every version is checked to be known.

use serde::Serialize;

use super::expect::When;
use super::model::VersionOverrides;
use super::pins::{NodeImage, Pins, Release};
use super::version::{Version, VersionReq};

/// The versions a scenario runs with, every one known to the pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// kind release, e.g. `v0.33.0`.
    pub kind: String,
    /// Node image, by digest.
    pub node_image: NodeImage,
    /// Kyverno chart version.
    pub kyverno_chart: String,
    /// Kyverno app version of that chart, e.g. `v1.19.0`.
    pub kyverno: String,
    /// Telepresence version, e.g. `2.32.1`.
    pub telepresence: String,
    /// Helm release.
    pub helm: String,
    /// kubectl release.
    pub kubectl: String,
    /// The Kubernetes range the Kyverno chart supports, e.g. `>=1.33, <1.36`.
    pub kubernetes_support: Option<String>,
}

/// A version override that is not known; `field` is the override's key under `spec.versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVersion {
    /// The `spec.versions` key, e.g. `telepresence`.
    pub field: &'static str,
    /// Why it is rejected.
    pub message: String,
}

impl Versions {
    /// Resolves the overrides against the pins.
    pub fn resolve(pins: &Pins, o: &VersionOverrides) -> Result<Versions, Vec<UnknownVersion>> {
        let mut errors = Vec::new();
        let mut pick = |field: &'static str, tool: &super::pins::Tool, over: &Option<String>| -> String {
            let v = over.clone().unwrap_or_else(|| tool.default.clone());
            if tool.release(&v).is_none() {
                errors.push(UnknownVersion {
                    field,
                    message: format!("unknown {field} version `{v}`; known: {}", tool.known()),
                });
            }
            v
        };
        let kind = pick("kind", &pins.kind, &o.kind);
        let kyverno_chart = pick("kyvernoChart", &pins.kyverno_chart, &o.kyverno_chart);
        let telepresence = pick("telepresence", &pins.telepresence, &o.telepresence);
        let kind_release = pins.kind.release(&kind);
        let node_images: &[String] = kind_release.map(|r| r.node_images.as_slice()).unwrap_or_default();
        let node_ref = o.node_image.clone().or_else(|| node_images.first().cloned()).unwrap_or_default();
        let node_image = match NodeImage::parse(&node_ref) {
            Ok(img) if kind_release.is_none() || node_images.contains(&img.reference) => Some(img),
            Ok(img) => {
                errors.push(UnknownVersion {
                    field: "nodeImage",
                    message: format!(
                        "unknown node image `{}` for kind {kind}; known: {}",
                        img.reference,
                        node_images.join(", ")
                    ),
                });
                None
            }
            Err(m) => {
                errors.push(UnknownVersion { field: "nodeImage", message: m });
                None
            }
        };
        let chart: Option<&Release> = pins.kyverno_chart.release(&kyverno_chart);
        match (errors.is_empty(), node_image) {
            (true, Some(node_image)) => Ok(Versions {
                kind,
                node_image,
                kyverno: chart.and_then(|c| c.app_version.clone()).unwrap_or_default(),
                kyverno_chart,
                telepresence,
                helm: pins.helm.default.clone(),
                kubectl: pins.kubectl.default.clone(),
                kubernetes_support: chart.and_then(|c| c.kubernetes.clone()),
            }),
            _ => Err(errors),
        }
    }

    /// A warning when the node's Kubernetes is outside the range the Kyverno chart supports.
    /// Not an error: upstream CI also runs Kyverno 1.19 on 1.36 (facts.md §1).
    pub fn support_warning(&self) -> Option<String> {
        let range = self.kubernetes_support.as_deref()?;
        let req = VersionReq::parse(range).ok()?;
        let k8s = Version::parse(&self.node_image.kubernetes)?;
        (!req.matches(&k8s)).then(|| {
            format!(
                "Kubernetes {} is outside the range Kyverno chart {} supports ({range})",
                self.node_image.kubernetes, self.kyverno_chart
            )
        })
    }

    /// The Telepresence version, parsed.
    pub fn telepresence_version(&self) -> Version {
        Version::parse(&self.telepresence).unwrap_or_else(|| Version::parse("0").expect("0 parses"))
    }

    /// Whether a `when:` condition holds for these versions. Requirements are validated at load
    /// time; one that does not parse here counts as not holding.
    #[must_use]
    pub fn satisfies(&self, when: &When) -> bool {
        let check = |req: &Option<String>, have: &str| match req {
            None => true,
            Some(r) => match (VersionReq::parse(r), Version::parse(have)) {
                (Ok(r), Some(v)) => r.matches(&v),
                _ => false,
            },
        };
        check(&when.telepresence, &self.telepresence)
            && check(&when.kyverno, &self.kyverno)
            && check(&when.kubernetes, &self.node_image.kubernetes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let v = Versions::resolve(&Pins::builtin(), &VersionOverrides::default()).unwrap();
        assert_eq!(v.telepresence, "2.32.1");
        assert_eq!(v.kyverno, "v1.19.1");
        assert_eq!(v.node_image.kubernetes, "1.35.8");
    }

    #[test]
    fn unknown_versions_are_named() {
        let o = VersionOverrides { telepresence: Some("2.99.0".into()), ..Default::default() };
        let e = Versions::resolve(&Pins::builtin(), &o).unwrap_err();
        assert_eq!(e[0].field, "telepresence");
        assert!(e[0].message.contains("2.99.0"), "{}", e[0].message);
    }

    #[test]
    fn node_image_outside_kyverno_range_warns() {
        let o = VersionOverrides {
            node_image: Some(
                "kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed".into(),
            ),
            ..Default::default()
        };
        let v = Versions::resolve(&Pins::builtin(), &o).unwrap();
        assert!(v.support_warning().unwrap().contains("outside the range"));
    }

    #[test]
    fn when_conditions_follow_versions() {
        let v = Versions::resolve(&Pins::builtin(), &VersionOverrides::default()).unwrap();
        assert!(v.satisfies(&When { telepresence: Some(">=2.29".into()), ..Default::default() }));
        assert!(!v.satisfies(&When { telepresence: Some("<2.29".into()), ..Default::default() }));
    }
}
