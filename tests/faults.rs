//! The fault matrix on the local provider (real processes): the cases of
//! `tests/fixtures/faults/local.yaml`, each a fault injected when a phase starts, and what must hold
//! after it (see the file's header). Prints the table and how many cases ran.
//!
//! `make test` runs the `makeTest: true` cases; `KYVTEL_FAULTS=all` (`make faults`) runs all, and
//! `KYVTEL_FAULTS=<text>` the cases whose `fault target @ phase` contains it.
//! Where the local provider cannot run, the test says why and returns (a failure under
//! `KYVTEL_REQUIRE_LIVE=1`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::local::{listeners_in, serial, skip_or_fail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    phase: String,
    fault: String,
    target: String,
    #[serde(default)]
    scenario: Option<String>,
    make_test: bool,
}

impl Case {
    fn id(&self) -> String {
        format!("{} {} @ {}", self.fault, self.target, self.phase)
    }

    fn scenario(&self) -> String {
        match &self.scenario {
            Some(name) => format!("tests/fixtures/faults/{name}.yaml"),
            None => SCENARIO.to_string(),
        }
    }
}

const SCENARIO: &str = "tests/fixtures/local/recipe-2.31.0.yaml";
const FAULTS: [&str; 7] = ["kill", "stop", "slow-webhook", "disk-full", "sigint", "sigterm", "sigkill"];
const PHASES: [&str; 9] = [
    "start-control-plane",
    "install-kyverno",
    "apply-policies",
    "install-telepresence",
    "deploy-workload",
    "intercept",
    "assert-still-enforced",
    "evidence",
    "teardown",
];

fn table() -> Vec<Case> {
    let text = std::fs::read_to_string(common::root().join("tests/fixtures/faults/local.yaml")).unwrap();
    serde_saphyr::from_str::<Table>(&text).unwrap().cases
}

/// Every process of the run: its command line or its environment names the run's directory.
fn processes_of(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let cmd =
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).replace('\0', " ");
        let env = String::from_utf8_lossy(&std::fs::read(e.path().join("environ")).unwrap_or_default()).into_owned();
        if cmd.contains(dir) || env.contains(dir) {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

/// The pid of the run's component `target` (`.tools/local/<binary>` in its command line).
fn component(dir: &str, target: &str) -> Option<i32> {
    let binary = match target {
        "traffic-manager" => "/.tools/local/traffic-".to_string(),
        t => format!("/.tools/local/{t} "),
    };
    processes_of(dir)
        .into_iter()
        .find(|p| p.contains(&binary))
        .and_then(|p| p.split(':').next().and_then(|pid| pid.parse().ok()))
}

fn listening() -> BTreeSet<(String, u16)> {
    listeners_in("/proc/net").into_iter().collect()
}

/// The entries of /tmp, $HOME and the working directory.
fn outside_entries() -> BTreeSet<PathBuf> {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    [PathBuf::from("/tmp"), home, common::root()]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path()))
        .collect()
}

/// The plans of `scenario`'s run on the local provider: its cell's shared setup and its member.
fn plans(scenario: &str) -> Vec<kyvtel::plan::Plan> {
    let loaded = kyvtel::scenario::load(&common::root().join(scenario)).unwrap();
    let runs = kyvtel::run::session::local::variants_of(&[loaded], &kyvtel::scenario::pins::Pins::builtin()).unwrap();
    let opts = kyvtel::plan::Options { provider: kyvtel::plan::Provider::Local, ..Default::default() };
    kyvtel::plan::group(&runs, &opts).into_iter().flat_map(|c| std::iter::once(c.setup).chain(c.scenarios)).collect()
}

/// The plans' budget for the run of `scenario`, every phase.
fn budget(plans: &[kyvtel::plan::Plan]) -> Duration {
    plans.iter().map(|p| kyvtel::plan::budget::Budget::of(p).total()).sum()
}

/// What a plan registers for its teardown: (label, registering phase), in registration order.
type Registered = Vec<(String, &'static str)>;

/// The teardown each plan registers, by the name its `result.json` gives.
fn planned_teardown(plans: &[kyvtel::plan::Plan]) -> BTreeMap<String, Registered> {
    plans
        .iter()
        .map(|p| (p.scenario.clone(), p.teardown.iter().map(|t| (t.label.clone(), t.registered_by.name())).collect()))
        .collect()
}

/// The teardown of a scenario's `result.json` ran in reverse registration order, and touched nothing
/// that a phase which never started would have set up.
fn teardown_in_order(result: &serde_json::Value, planned: &[(String, &str)]) -> Result<(), String> {
    let ran: Vec<(&str, &str)> = result["teardown"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["label"].as_str().unwrap_or_default(), t["status"]["status"].as_str().unwrap_or_default()))
        .collect();
    let want: Vec<&str> = planned.iter().rev().map(|(l, _)| l.as_str()).collect();
    let labels: Vec<&str> = ran.iter().map(|(l, _)| *l).collect();
    if labels != want {
        return Err(format!("the teardown ran {labels:?}, not the reverse of what the plan registers {want:?}"));
    }
    let started: BTreeSet<&str> = result["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["status"] != "skipped")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for ((label, status), (_, by)) in ran.iter().zip(planned.iter().rev()) {
        if !started.contains(by) && *status != "skipped" {
            return Err(format!("the teardown touched `{label}` ({status}), set up by {by}, which never started"));
        }
    }
    Ok(())
}

struct Outcome {
    code: Option<i32>,
    text: String,
    took: Duration,
    injected: bool,
}

/// Runs the scenario and injects `case`'s fault when its phase starts (or its target appears).
fn run(case: &Case, dir: &Path) -> Outcome {
    let work = dir.join("work").display().to_string();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kyvtel"))
        .current_dir(common::root())
        .args(["run", "--provider", "local", &case.scenario(), "--report-dir"])
        .arg(dir.join("reports"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let mut text = String::new();
    let mut started = false;
    let mut injected = false;
    let marker = format!("] {} ...", case.phase);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                started |= line.ends_with(&marker);
                text.push_str(&line);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started && !injected {
            if case.fault == "disk-full" {
                let filled = fill(&dir.join("work"));
                injected = true;
                text.push_str(&format!("== injected disk-full: {filled}\n"));
            } else {
                let pid = match case.target.as_str() {
                    "kyvtel" => Some(child.id() as i32),
                    t => component(&work, t),
                };
                if let Some(pid) = pid {
                    let sig = match case.fault.as_str() {
                        "sigint" => libc::SIGINT,
                        "sigterm" => libc::SIGTERM,
                        "stop" | "slow-webhook" => libc::SIGSTOP,
                        _ => libc::SIGKILL,
                    };
                    // SAFETY: a process of the run this test started.
                    unsafe { libc::kill(pid, sig) };
                    injected = true;
                    text.push_str(&format!("== injected {} into {} (pid {pid})\n", case.fault, case.target));
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(600) {
            let _ = child.kill();
            break;
        }
    }
    let status = child.wait().unwrap();
    for r in readers {
        let _ = r.join();
    }
    Outcome { code: status.code(), text, took: t0.elapsed(), injected }
}

/// Fills the file system of `dir` (a tmpfs the test mounted) until the write fails; says how much.
fn fill(dir: &Path) -> String {
    use std::io::Write as _;
    let Ok(mut f) = std::fs::File::create(dir.join(".fault-fill")) else { return "could not create the filler".into() };
    let chunk = vec![0u8; 1 << 20];
    let mut mib = 0;
    loop {
        match f.write_all(&chunk) {
            Ok(()) => mib += 1,
            Err(e) => return format!("{mib} MiB written, then: {e}"),
        }
    }
}

/// Mounts a 400 MiB tmpfs on `dir` (the run's work directory), so that the disk-full fault fills only
/// it; `Err` says why the platform does not allow it.
fn mount_small_disk(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=400m,mode=0700", "kyvtel-fault-disk"])
        .arg(dir)
        .output()
        .map_err(|e| format!("mount: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).status();
}

/// What must hold after `case`; `Err` says what did not.
fn check(
    case: &Case,
    dir: &Path,
    planned: &BTreeMap<String, Registered>,
    o: &Outcome,
    before: &BTreeSet<PathBuf>,
    ports: &BTreeSet<(String, u16)>,
    budget: Duration,
) -> Result<(), String> {
    let work = dir.join("work").display().to_string();
    if !o.injected {
        return Err(format!("the fault was never injected (phase {} not seen or no {})", case.phase, case.target));
    }
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        processes_of(&work).is_empty()
    });
    if !gone {
        return Err(format!("processes of the run are left: {:?}", processes_of(&work)));
    }
    let new_ports: Vec<_> = listening().difference(ports).cloned().collect();
    if !new_ports.is_empty() {
        return Err(format!("new listening sockets: {new_ports:?}"));
    }
    let new_files: Vec<_> = outside_entries().difference(before).cloned().collect();
    if !new_files.is_empty() {
        return Err(format!("files written outside the work and report directories: {new_files:?}"));
    }
    if o.took > budget {
        return Err(format!("took {:?}, more than the plan's budget {budget:?}", o.took));
    }
    let summary = || -> Option<serde_json::Value> {
        let run = std::fs::read_dir(dir.join("reports")).ok()?.flatten().next()?.path();
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).ok()?).ok()
    };
    let failed = || -> Result<Vec<serde_json::Value>, String> {
        let s = summary().ok_or("no summary.json")?;
        let failed: Vec<serde_json::Value> =
            s["scenarios"].as_array().into_iter().flatten().filter(|x| x["verdict"] == "failed").cloned().collect();
        if failed.is_empty() { Err("no failed scenario in the report".into()) } else { Ok(failed) }
    };
    // The bundle holds the failing phase (result.json) and the last observed state; the teardown
    // it records ran in reverse order over what was set up.
    let bundle = |failed: &[serde_json::Value]| -> Result<serde_json::Value, String> {
        let found = failed.iter().filter_map(|f| f["evidence"].as_str()).map(Path::new).find(|e| e.is_dir());
        let Some(b) = found else { return Err("no evidence bundle".into()) };
        let result = std::fs::read_to_string(b.join("result.json")).unwrap_or_default();
        if !PHASES.iter().any(|p| result.contains(&format!("\"{p}\""))) {
            return Err(format!("the bundle's result.json names no phase: {}", b.display()));
        }
        let result: serde_json::Value =
            serde_json::from_str(&result).map_err(|e| format!("{}: {e}", b.join("result.json").display()))?;
        let name = result["scenario"].as_str().unwrap_or_default();
        let registered = planned.get(name).ok_or_else(|| format!("no plan named {name}: {:?}", planned.keys()))?;
        teardown_in_order(&result, registered)?;
        Ok(result)
    };
    // The kind of the failure the bundle's result records (`failure` of its failed phase).
    let failure_kind = |result: &serde_json::Value| -> String {
        result["phases"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|p| p["failure"].as_str())
            .unwrap_or("none")
            .to_string()
    };
    match (case.target.as_str(), case.fault.as_str(), case.phase.as_str()) {
        ("kyvtel", "sigkill", _) => {
            if o.code.is_some() {
                return Err(format!("exit {:?}: kyvtel was not killed", o.code));
            }
        }
        // Ctrl-C after the verdict: evidence and teardown go on, the verdict stands.
        ("kyvtel", _, "evidence") => {
            if o.code != Some(1) {
                return Err(format!("exit {:?}, not 1 (the verdict)", o.code));
            }
            if !o.text.contains("interrupted") {
                return Err("the run does not say it was interrupted".into());
            }
            let failed = failed()?;
            if !failed.iter().any(|f| f["message"].as_str().is_some_and(|m| m.contains("fsGroup"))) {
                return Err(format!("the verdict did not stand: {failed:?}"));
            }
            bundle(&failed)?;
        }
        ("kyvtel", _, _) => {
            if o.code != Some(1) {
                return Err(format!("exit {:?}, not 1 (cancelled)", o.code));
            }
            if !o.text.contains("cancelled") {
                return Err("the run does not say it was cancelled".into());
            }
            // Cancelled in the member's phases: its bundle's teardown is checked like any other.
            if let Ok(failed) = failed()
                && failed.iter().any(|f| f["evidence"].as_str().is_some_and(|e| Path::new(e).is_dir()))
            {
                bundle(&failed)?;
            }
        }
        // The scenario passed before the fault; the broken stack is stopped and removed whole.
        (_, "kill", "teardown") => {
            if o.code != Some(0) {
                return Err(format!("exit {:?}, not 0 (the verdict came before the fault)", o.code));
            }
        }
        // The verdict (a wrong expectation) came before the fault and stands.
        (_, "kill", "evidence") => {
            if o.code != Some(1) {
                return Err(format!("exit {:?}, not 1 (the verdict)", o.code));
            }
            let failed = failed()?;
            if failed.iter().any(|f| f["message"].as_str().unwrap_or_default().contains("infrastructure")) {
                return Err(format!("the verdict became an infrastructure failure: {failed:?}"));
            }
            let kind = failure_kind(&bundle(&failed)?);
            if kind != "mismatch" {
                return Err(format!("the verdict's failure is typed `{kind}`, not `mismatch`"));
            }
        }
        (_, fault, _) => {
            if o.code != Some(3) {
                return Err(format!("exit {:?}, not 3 (infrastructure)", o.code));
            }
            let failed = failed()?;
            for f in &failed {
                let m = f["message"].as_str().unwrap_or_default();
                if !m.contains("infrastructure failure") {
                    return Err(format!("reported as a verdict, not an infrastructure failure: {m}"));
                }
                if !PHASES.iter().any(|p| m.contains(p)) {
                    return Err(format!("the failure names no phase: {m}"));
                }
                let cause = match fault {
                    "stop" => "stopped by a signal",
                    "slow-webhook" => "failed calling webhook",
                    "disk-full" => "no space left on device",
                    _ => "",
                };
                if !m.to_ascii_lowercase().contains(cause) {
                    return Err(format!("the failure does not say `{cause}`: {m}"));
                }
            }
            let kind = failure_kind(&bundle(&failed)?);
            if kind != "infrastructure" {
                return Err(format!("the failure is typed `{kind}`, not `infrastructure`"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_fault_matrix_leaves_a_clean_machine_and_evidence() {
    let _one = serial();
    let cases = table();
    // The table's coverage: every fault in a phase, every phase entered by a fault.
    let faults: BTreeSet<&str> = cases.iter().map(|c| c.fault.as_str()).collect();
    assert!(faults.iter().all(|f| FAULTS.contains(f)), "unknown fault in {faults:?}");
    assert!(FAULTS.iter().all(|f| faults.contains(f)), "a fault in no phase: {faults:?}");
    let phases: BTreeSet<&str> = cases.iter().map(|c| c.phase.as_str()).collect();
    assert!(phases.iter().all(|p| PHASES.contains(p)), "unknown phase in {phases:?}");
    assert!(PHASES.iter().all(|p| phases.contains(p)), "a phase with no fault: {phases:?}");
    // KYVTEL_FAULTS: `all`, or text that picks the cases whose `fault target @ phase` contains it.
    let pick = std::env::var("KYVTEL_FAULTS").unwrap_or_default();
    let all = pick == "all";
    let chosen: Vec<&Case> =
        cases.iter().filter(|c| if pick.is_empty() { c.make_test } else { all || c.id().contains(&pick) }).collect();
    assert!(chosen.len() <= 20 || all, "at most 20 cases in make test");
    eprintln!(
        "fault matrix: {} case(s), {} to run here ({})",
        cases.len(),
        chosen.len(),
        if pick.is_empty() { "makeTest" } else { &pick }
    );
    if skip_or_fail("faults") {
        return;
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        if !chosen.iter().any(|c| c.id() == case.id()) {
            rows.push(format!("| {} | {} | {} | not run here (make faults) | |", case.phase, case.fault, case.target));
            continue;
        }
        let dir = common::root().join("target/tmp").join(format!("fault-{}", case.id().replace([' ', '@'], "-")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let plans = plans(&case.scenario());
        let budget = budget(&plans);
        if case.fault == "disk-full"
            && let Err(why) = mount_small_disk(&dir.join("work"))
        {
            // No size-limited directory here: the write's failure is covered by unit tests only.
            rows.push(format!(
                "| {} | {} | {} | not run: cannot mount a tmpfs: {why} | |",
                case.phase, case.fault, case.target
            ));
            continue;
        }
        let before = outside_entries();
        let ports = listening();
        let o = run(case, &dir);
        let verdict = check(case, &dir, &planned_teardown(&plans), &o, &before, &ports, budget);
        if case.fault == "disk-full" {
            unmount(&dir.join("work"));
        }
        let secs = format!("{:.1}s", o.took.as_secs_f64());
        match &verdict {
            Ok(()) => rows.push(format!(
                "| {} | {} | {} | survived (exit {:?}) | {secs} |",
                case.phase, case.fault, case.target, o.code
            )),
            Err(e) => {
                rows.push(format!("| {} | {} | {} | FAILED: {e} | {secs} |", case.phase, case.fault, case.target));
                failures.push(format!("{}: {e}\n{}", case.id(), o.text));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Straight to stderr, past the test harness's capture: `make test` shows the table too.
    let table = format!(
        "| phase | fault | target | result | time |\n|---|---|---|---|---|\n{}\nfault matrix: {} of {} case(s) run, {} survived\n",
        rows.join("\n"),
        chosen.len(),
        cases.len(),
        chosen.len() - failures.len()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), table.as_bytes());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_teardown_check_catches_a_wrong_order_and_a_touched_entry() {
    let planned = [("stop a".to_string(), "start-control-plane"), ("delete b".to_string(), "deploy-workload")];
    let result = |order: [(&str, &str); 2], deploy: &str| {
        serde_json::json!({
            "phases": [{"name": "start-control-plane", "status": {"status": "failed"}},
                       {"name": "deploy-workload", "status": {"status": deploy}}],
            "teardown": order.iter().map(|(l, st)| serde_json::json!({"label": l, "status": {"status": st}})).collect::<Vec<_>>(),
        })
    };
    let good = result([("delete b", "skipped"), ("stop a", "passed")], "skipped");
    assert_eq!(teardown_in_order(&good, &planned), Ok(()));
    let reversed = result([("stop a", "passed"), ("delete b", "skipped")], "skipped");
    assert!(teardown_in_order(&reversed, &planned).unwrap_err().contains("not the reverse"));
    let touched = result([("delete b", "passed"), ("stop a", "passed")], "skipped");
    assert!(teardown_in_order(&touched, &planned).unwrap_err().contains("never started"));
    let started = result([("delete b", "passed"), ("stop a", "passed")], "passed");
    assert_eq!(teardown_in_order(&started, &planned), Ok(()));
}
