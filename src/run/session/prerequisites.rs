//! Prerequisites a kind run checks before anything runs.

use super::*;

/// What the scenarios need that is not installed in `tools` (one line each, with its fix): the
/// plan would be built for one version while another one (or none) runs.
///
/// A non-default Telepresence must be `<tools>/telepresence-<version>/telepresence` (PATH never stands in for
/// it); the pinned default is checked with the other tools by `kyvtel doctor`'s findings (tools
/// directory, or PATH when its version matches).
pub(super) fn provisioned_version_problems(loaded: &[Loaded], tools: &ToolsDir, pins: &Pins) -> Vec<String> {
    let mut problems = Vec::new();
    for l in loaded {
        let v = &l.versions;
        if v.telepresence != pins.telepresence.default {
            let binary = tools.telepresence(pins, &v.telepresence);
            if !is_executable(&binary) {
                problems.push(format!(
                    "{}: needs Telepresence {}, but {} is missing (fix: run `kyvtel tools install --telepresence {}`)",
                    l.name(),
                    v.telepresence,
                    binary.display(),
                    v.telepresence
                ));
            }
        }
        let chart = tools.charts().join(format!("kyverno-{}.tgz", v.kyverno_chart));
        if !chart.is_file() {
            problems.push(format!(
                "{}: the Kyverno chart {} is not downloaded ({} missing; fix: run `kyvtel tools install --for-scenarios {}`)",
                l.name(),
                v.kyverno_chart,
                chart.display(),
                l.path.display()
            ));
        }
    }
    problems
}
