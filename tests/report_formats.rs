//! Report formats: JUnit XML (parsed back), JSON summary, Markdown, closing line, progress lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kyvtel::report::progress::Progress;
use kyvtel::report::{Phase, RunReport, ScenarioReport, Verdict};
use quick_xml::events::Event;

fn report() -> RunReport {
    let mut passed = ScenarioReport::new("documented-recipe", Verdict::Passed, Duration::from_secs(125));
    passed.phases = vec![
        Phase { name: "create-cluster".into(), duration: Duration::from_millis(61_500), ok: true },
        Phase { name: "install-kyverno".into(), duration: Duration::from_secs(40), ok: true },
    ];
    let mut failed = ScenarioReport::new(
        "agent-denied",
        Verdict::Failed {
            message: "expected a denial by require-ro-rootfs\nbut the pod was admitted; token: abc.def".into(),
        },
        Duration::from_secs(30),
    );
    failed.evidence = Some(PathBuf::from("target/kyvtel/r1/agent-denied"));
    failed.phases = vec![Phase { name: "intercept".into(), duration: Duration::from_secs(30), ok: false }];
    let ignored =
        ScenarioReport::new("k3s-only", Verdict::Ignored { reason: "no Docker daemon".into() }, Duration::ZERO);
    let mut flaky = ScenarioReport::new("flaky-one", Verdict::Passed, Duration::from_secs(5));
    flaky.failed_attempts = vec!["connection reset".into()];
    RunReport {
        run_id: "r1".into(),
        started_at: "2026-10-01T12:00:00Z".into(),
        versions: BTreeMap::from([("kind".into(), "v0.33.0".into()), ("telepresence".into(), "2.32.1".into())]),
        digests: BTreeMap::from([("telepresence".into(), "ab".repeat(32))]),
        server_version: Some("v1.35.8".into()),
        scenarios: vec![passed, failed, ignored, flaky],
    }
}

/// Element name → attributes of every element, in document order.
fn elements(xml: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            String::from_utf8_lossy(&a.value).into_owned(),
                        )
                    })
                    .collect();
                out.push((name, attrs));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

#[test]
fn closing_line_counts_verdicts() {
    assert_eq!(report().closing_line(), "2 passed, 1 failed, 1 ignored");
}

#[test]
fn junit_has_one_suite_and_one_case_per_scenario() {
    let xml = report().junit_xml().unwrap();
    let els = elements(&xml);
    let suites: Vec<_> = els.iter().filter(|(n, _)| n == "testsuite").collect();
    assert_eq!(suites.len(), 1);
    let suite = &suites[0].1;
    assert_eq!(suite["tests"], "4");
    assert_eq!(suite["failures"], "1");
    assert_eq!(suite["skipped"], "1");
    let cases: Vec<_> = els.iter().filter(|(n, _)| n == "testcase").map(|(_, a)| a["name"].clone()).collect();
    assert_eq!(cases, ["documented-recipe", "agent-denied", "k3s-only", "flaky-one"]);
    let failure = els.iter().find(|(n, _)| n == "failure").expect("a failure element");
    assert_eq!(failure.1["message"], "expected a denial by require-ro-rootfs");
    assert!(els.iter().any(|(n, _)| n == "flakyFailure"), "the retried pass is flaky: {xml}");
    assert!(!xml.contains("abc.def"), "the token in the message must be redacted: {xml}");
    assert!(xml.contains("token: REDACTED"), "redacted text is escaped as XML: {xml}");
}

#[test]
fn json_summary_has_versions_phases_and_verdicts() {
    let v: serde_json::Value = serde_json::from_str(&report().json()).unwrap();
    assert_eq!(v["runId"], "r1");
    assert_eq!(v["serverVersion"], "v1.35.8");
    assert_eq!(v["versions"]["telepresence"], "2.32.1");
    assert_eq!(v["digests"]["telepresence"], "ab".repeat(32));
    assert_eq!(v["counts"], serde_json::json!({"passed": 2, "failed": 1, "ignored": 1}));
    assert_eq!(v["closingLine"], "2 passed, 1 failed, 1 ignored");
    let s0 = &v["scenarios"][0];
    assert_eq!(s0["verdict"], "passed");
    assert_eq!(s0["phases"][0]["name"], "create-cluster");
    assert_eq!(s0["phases"][0]["durationSecs"], 61.5);
    assert_eq!(v["scenarios"][1]["verdict"], "failed");
    assert_eq!(v["scenarios"][1]["evidence"], "target/kyvtel/r1/agent-denied");
    assert_eq!(v["scenarios"][2]["reason"], "no Docker daemon");
}

#[test]
fn markdown_has_the_table_and_closing_line() {
    let md = report().markdown();
    assert!(md.contains("**2 passed, 1 failed, 1 ignored**"), "{md}");
    assert!(md.contains("| documented-recipe | ✅ passed | 2m 05s |"), "{md}");
    assert!(md.contains("| agent-denied | ❌ failed | 30.0s | expected a denial by require-ro-rootfs (evidence: `target/kyvtel/r1/agent-denied`) |"), "{md}");
    assert!(md.contains("| k3s-only | ⏭️ ignored |"), "{md}");
    assert!(md.contains("passed (flaky)"), "{md}");
    assert!(md.contains("| Kubernetes server | v1.35.8 |"), "{md}");
    assert!(md.contains("- intercept: 30.0s ❌"), "{md}");
}

#[test]
fn write_puts_three_files_in_the_report_dir() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-write-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let custom = dir.join("elsewhere/results.xml");
    let written = report().write(&dir, Some(&custom)).unwrap();
    assert_eq!(written.junit, custom);
    assert!(std::fs::read_to_string(&written.junit).unwrap().contains("<testsuite"));
    assert!(std::fs::read_to_string(&written.json).unwrap().contains("\"closingLine\""));
    assert!(std::fs::read_to_string(&written.markdown).unwrap().starts_with("## kyvtel run `r1`"));
}

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);
impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plain_progress_prints_start_and_end_lines() {
    let buf = Buf::default();
    let progress = Progress::plain(Box::new(buf.clone()));
    let took = progress.phase("documented-recipe", "install-kyverno").finish(true);
    drop(progress.phase("documented-recipe", "intercept"));
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "[documented-recipe] install-kyverno ...");
    assert!(lines[1].starts_with("[documented-recipe] install-kyverno ok in "), "{text}");
    assert_eq!(lines[2], "[documented-recipe] intercept ...");
    assert!(lines[3].starts_with("[documented-recipe] intercept interrupted in "), "{text}");
    assert!(took < Duration::from_secs(5));
}

#[test]
fn a_quarantined_failure_is_counted_apart_and_reported_skipped_with_its_entry() {
    let mut r = report();
    r.scenarios[1].quarantined = Some("quarantined until 2026-12-20 (kind flake; #42)".into());
    assert_eq!(r.closing_line(), "2 passed, 0 failed, 1 ignored, 1 quarantined");
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(json["counts"]["quarantined"], 1);
    assert_eq!(json["counts"]["failed"], 0);
    assert_eq!(json["scenarios"][1]["quarantined"], "quarantined until 2026-12-20 (kind flake; #42)");
    let xml = r.junit_xml().unwrap();
    let els = elements(&xml);
    let case = els.iter().position(|(n, a)| n == "testcase" && a["name"] == "agent-denied").unwrap();
    let next = els[case + 1..].iter().position(|(n, _)| n == "testcase").map_or(els.len(), |i| case + 1 + i);
    let (_, attrs) = els[case..next].iter().find(|(n, _)| n == "skipped").expect("a skipped element in its case");
    assert!(attrs["message"].starts_with("quarantined until 2026-12-20 (kind flake; #42): expected a denial"), "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
    assert!(r.markdown().contains("🟡 failed (quarantined)"));
}
