//! Which versions a scenario runs with on the local provider. A scenario that does not pin
//! Telepresence runs once per version the local provider builds, its `when:` groups evaluated for the
//! version that actually ran; one that pins a version the local provider cannot build is refused
//! (exit 3), naming the buildable versions. Kyverno is the default one built from its module, or
//! the nightly one whose chart the scenario (or a nightly cell) pins.

use crate::scenario::Loaded;
use crate::scenario::pins::Pins;

/// The scenario once per Telepresence version to run, with the Kyverno version it runs.
///
/// # Errors
/// The scenario pins a Telepresence or Kyverno chart version the local provider does not build.
pub fn variants(l: &Loaded, pins: &Pins) -> Result<Vec<Loaded>, String> {
    let buildable: Vec<&String> = pins.local.telepresence.keys().collect();
    let o = &l.scenario.spec.versions;
    // The `when: {kubernetes: ...}` groups are judged for the Kubernetes that runs.
    let kubernetes = pins.local.binaries["kube-apiserver"].version.trim_start_matches('v').to_string();
    if l.versions.node_image.kubernetes != kubernetes {
        return Err(format!(
            "scenario {} runs on Kubernetes {} (node image {}); the local provider runs Kubernetes {kubernetes}: run \
             it with --provider kind",
            l.name(),
            l.versions.node_image.kubernetes,
            l.versions.node_image.reference
        ));
    }
    // The default Kyverno, or the one a pinned chart (a nightly cell's) ships, if it is built here.
    let app = |chart: &str| pins.kyverno_chart.releases.get(chart).and_then(|r| r.app_version.clone());
    let chart_of = |kyverno: &str| {
        pins.kyverno_chart
            .releases
            .iter()
            .find(|(_, r)| r.app_version.as_deref().map(|a| a.trim_start_matches('v')) == Some(kyverno))
            .map(|(v, _)| v.clone())
            .unwrap_or_default()
    };
    let default = pins.local.binaries["kyverno"].version.clone();
    let (kyverno, chart) = match &o.kyverno_chart {
        None => (default.clone(), chart_of(default.trim_start_matches('v'))),
        Some(c) => match app(c).filter(|a| pins.local.kyverno(a).is_some()) {
            Some(a) => (a, c.clone()),
            None => {
                return Err(format!(
                    "scenario {} pins Kyverno chart {c}; the local provider builds Kyverno {} from Go modules \
                     (charts {}): run it with --provider kind",
                    l.name(),
                    pins.local.kyverno_versions().join(", "),
                    pins.local.kyverno_versions().iter().map(|k| chart_of(k)).collect::<Vec<_>>().join(", ")
                ));
            }
        },
    };
    let versions: Vec<String> = match &o.telepresence {
        Some(v) if pins.local.telepresence.contains_key(v) => vec![v.clone()],
        Some(v) => {
            return Err(format!(
                "scenario {} pins Telepresence {v}, which the local provider cannot build: its module graph is not \
                 served by the Go module proxy (GOPROXY={}); buildable: {}",
                l.name(),
                std::env::var("GOPROXY").unwrap_or_else(|_| "https://proxy.golang.org,direct".into()),
                buildable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        None => buildable.iter().map(|s| (*s).clone()).collect(),
    };
    Ok(versions
        .into_iter()
        .map(|v| {
            let mut c = l.clone();
            c.versions.telepresence = v;
            c.versions.kyverno_chart = chart.clone();
            c.versions.kyverno = kyverno.clone();
            c
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Loaded {
        crate::scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/documented-recipe.yaml"
        )))
        .unwrap()
    }

    #[test]
    fn an_unpinned_scenario_runs_once_per_buildable_version() {
        let v = variants(&recipe(), &Pins::builtin()).unwrap();
        let tp: Vec<&str> = v.iter().map(|l| l.versions.telepresence.as_str()).collect();
        assert_eq!(tp, ["2.20.2", "2.31.0"]);
        assert!(v.iter().all(|l| l.versions.kyverno == "v1.19.1" && l.versions.kyverno_chart == "3.9.1"));
    }

    #[test]
    fn a_pinned_chart_runs_the_nightly_kyverno_it_ships_and_an_unbuilt_one_is_refused() {
        let mut l = recipe();
        l.scenario.spec.versions.kyverno_chart = Some("3.8.2".into());
        let v = variants(&l, &Pins::builtin()).unwrap();
        assert!(v.iter().all(|l| l.versions.kyverno == "v1.18.2" && l.versions.kyverno_chart == "3.8.2"));
        let k = Pins::builtin();
        let nightly = k.local.kyverno("1.18.2").expect("built");
        assert_eq!((nightly.name, nightly.binary.wrapper.as_str()), ("kyverno-1.18.2", "tools/kyverno-1.18.2"));
        assert_eq!(k.local.kyverno("v1.19.1").map(|k| k.name), Some("kyverno"));
        l.scenario.spec.versions.kyverno_chart = Some("3.7.2".into());
        let e = variants(&l, &Pins::builtin()).unwrap_err();
        assert!(
            e.contains("chart 3.7.2")
                && e.contains("builds Kyverno 1.19.1, 1.18.2")
                && e.contains("(charts 3.9.1, 3.8.2)"),
            "{e}"
        );
    }

    #[test]
    fn a_scenario_for_another_kubernetes_is_refused() {
        let mut l = recipe();
        l.versions.node_image.kubernetes = "1.34.11".into();
        let e = variants(&l, &Pins::builtin()).unwrap_err();
        assert!(e.contains("Kubernetes 1.34.11") && e.contains("runs Kubernetes 1.35.8"), "{e}");
    }

    #[test]
    fn a_pinned_unbuildable_version_is_refused_naming_the_buildable_ones() {
        let mut l = recipe();
        l.scenario.spec.versions.telepresence = Some("2.32.1".into());
        let e = variants(&l, &Pins::builtin()).unwrap_err();
        assert!(
            e.contains("Telepresence 2.32.1") && e.contains("buildable: 2.20.2, 2.31.0") && e.contains("GOPROXY="),
            "{e}"
        );
        l.scenario.spec.versions.telepresence = Some("2.31.0".into());
        assert_eq!(variants(&l, &Pins::builtin()).unwrap().len(), 1);
    }
}
