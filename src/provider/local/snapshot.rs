//! Warm starts: a snapshot of a cell's clean "stack ready" state (control plane up, Kyverno installed
//! and serving, its secrets created, no scenario yet), reused only when its whole key matches
//! (facts.md §7, "Warm start from a snapshot").
//!
//! - **What**: etcd's data directory, the run's PKI (the stored ServiceAccount tokens and Kyverno's
//!   webhook CA need the same keys) and the admin kubeconfig, in `<store>/<key>/`, 0700, every
//!   credential 0600. Taken right after the cell's shared setup, before any scenario: a snapshot taken
//!   later would bring a scenario's objects back.
//! - **How**: etcd is frozen (SIGSTOP) while its directory is copied and thawed (SIGCONT) after. Every
//!   write etcd made is complete and in order, so the copy is what a power cut at that instant leaves,
//!   which etcd's WAL and bbolt recover from by design; the components keep running.
//! - **Key**: SHA-256 over the shared setup's actions (every argument, chart path, value and port, with
//!   the run directory normalised) and, per binary, its build stamp, size and modification time. A
//!   changed policy or Telepresence values file is no part of it: both are applied per scenario, after
//!   the restore, on every start.
//! - **Age**: at most [`MAX_AGE`]; Kyverno's own serving pair lasts 150 days and its CA 365 (facts.md
//!   §7), so a reused one has at least 120 days left. The run's PKI never expires (rcgen's default
//!   validity ends in 4096).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::pki::{create_private_dir, write_private};
use crate::plan::action::{Action, Phase};
use crate::plan::providers::local::LocalOp;
use crate::plan::providers::local::snapshot::{KEEP, MAX_AGE};

/// The manifest's name inside a snapshot.
const MANIFEST: &str = "snapshot.json";
/// The layout of a snapshot: what is copied from the stack directory.
const ETCD: &str = "etcd";
const PKI: &str = "pki";
const KUBECONFIG: &str = "admin.kubeconfig";

/// What a snapshot records about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// The key it was saved under.
    pub key: String,
    /// When, in seconds since the epoch.
    pub created: u64,
    /// The kyvtel that saved it.
    pub kyvtel: String,
}

/// Whether a snapshot can be restored, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// This snapshot matches.
    Hit {
        /// Its directory.
        dir: PathBuf,
        /// Its manifest.
        manifest: Manifest,
    },
    /// None matches: the start is cold. Why, for the run's output.
    Miss(String),
}

/// The key of the stack in `stack` set up by `phases` with `binaries`. Paths under the stack's parent
/// (the cell's run directory, which names the run) are normalised, so any run's stack matches.
///
/// # Errors
/// A binary cannot be read.
pub fn key(phases: &[Phase], stack: &Path, binaries: &[PathBuf]) -> Result<String, String> {
    let actions: Vec<&Action> = phases.iter().flat_map(|p| &p.actions).filter(|a| !is_snapshot_op(a)).collect();
    let text = serde_json::to_string(&actions).map_err(|e| e.to_string())?;
    let base = stack.parent().unwrap_or(stack).display().to_string();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // kyvtel's own version: how it prepares charts and credentials is part of what a snapshot holds.
    ctx.update(format!("kyvtel stack snapshot v1 {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
    ctx.update(if base.is_empty() { text } else { text.replace(&base, "<stack>") }.as_bytes());
    for b in binaries {
        let m = std::fs::metadata(b).map_err(|e| format!("{}: {e}", b.display()))?;
        let stamp = std::fs::read_to_string(super::build::stamp_path(b)).unwrap_or_default();
        let name = b.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        ctx.update(format!("\n{name} {} {}.{} {}", m.len(), m.mtime(), m.mtime_nsec(), stamp.trim()).as_bytes());
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn is_snapshot_op(a: &Action) -> bool {
    match a {
        Action::Local(LocalOp::RestoreSnapshot { .. } | LocalOp::SaveSnapshot { .. }) => true,
        Action::Only { action, .. } => is_snapshot_op(action),
        _ => false,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Looks for the snapshot `key` in `store`: reused only when it is a 0700 directory of this user,
/// its manifest names the same key, it is younger than [`MAX_AGE`] and every file in it is 0600.
#[must_use]
pub fn lookup(store: &Path, key: &str) -> Lookup {
    let dir = store.join(key);
    let short = &key[..key.len().min(12)];
    let Ok(meta) = std::fs::symlink_metadata(&dir) else {
        return Lookup::Miss(format!("no snapshot {short} in {}", store.display()));
    };
    match check(&dir, &meta, key) {
        Ok(manifest) => Lookup::Hit { dir, manifest },
        Err(why) => Lookup::Miss(format!("snapshot {short} not reused: {why}")),
    }
}

/// What every snapshot holds; one without these is broken, never restored.
const REQUIRED: [&str; 4] = ["etcd/member/snap/db", "pki/ca.crt", "pki/sa.key", KUBECONFIG];

fn check(dir: &Path, meta: &std::fs::Metadata, key: &str) -> Result<Manifest, String> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let private = |m: &std::fs::Metadata| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0;
    let store = dir.parent().unwrap_or(dir);
    if !std::fs::symlink_metadata(store).is_ok_and(|m| private(&m)) {
        return Err(format!("the store {} is not a private directory of this user", store.display()));
    }
    if !private(meta) || meta.mode() & 0o777 != 0o700 {
        return Err(format!("{} is not a 0700 directory of this user", dir.display()));
    }
    if let Some(missing) = REQUIRED.iter().find(|f| !std::fs::symlink_metadata(dir.join(f)).is_ok_and(|m| m.is_file()))
    {
        return Err(format!("it has no {missing} (broken)"));
    }
    let text = std::fs::read_to_string(dir.join(MANIFEST)).map_err(|e| format!("{MANIFEST}: {e}"))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| format!("{MANIFEST}: {e}"))?;
    if m.key != key {
        return Err(format!("its manifest names another key ({})", m.key));
    }
    let age = now().saturating_sub(m.created);
    if age > MAX_AGE.as_secs() {
        return Err(format!("it is {} days old (at most {} are reused)", age / 86400, MAX_AGE.as_secs() / 86400));
    }
    for sub in [PKI, ETCD, KUBECONFIG] {
        if let Some(bad) = first_not_private(&dir.join(sub))? {
            return Err(format!("{} is readable by others", bad.display()));
        }
    }
    Ok(m)
}

/// The first file under `dir` whose mode lets group or others in, or that is not a plain file or directory.
fn first_not_private(dir: &Path) -> Result<Option<PathBuf>, String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.mode() & 0o077 != 0 || !(meta.is_dir() || meta.is_file()) {
        return Ok(Some(dir.to_path_buf()));
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let e = e.map_err(|e| e.to_string())?;
            if let Some(bad) = first_not_private(&e.path())? {
                return Ok(Some(bad));
            }
        }
    }
    Ok(None)
}

/// Copies the snapshot at `dir` (key `key`) into the stack directory `stack` (etcd's data, PKI,
/// admin kubeconfig), then checks that the snapshot is still there, whole, under the same key (a
/// concurrent run may have replaced or pruned it mid-copy). On failure nothing it copied is left.
///
/// # Errors
/// The stack directory already has etcd data (left as it is), or a copy or the re-check failed.
pub fn restore(dir: &Path, key: &str, stack: &Path) -> Result<(), String> {
    if [ETCD, PKI, KUBECONFIG].iter().any(|f| stack.join(f).exists()) {
        return Err(format!("{} already holds a stack", stack.display()));
    }
    let copied = (|| {
        create_private_dir(stack)?;
        copy_tree(&dir.join(ETCD), &stack.join(ETCD))?;
        copy_tree(&dir.join(PKI), &stack.join(PKI))?;
        copy_file(&dir.join(KUBECONFIG), &stack.join(KUBECONFIG))?;
        match lookup(dir.parent().unwrap_or(dir), key) {
            Lookup::Hit { dir: again, .. } if again == dir => Ok(()),
            Lookup::Hit { .. } => Err("the snapshot moved while it was copied".to_string()),
            Lookup::Miss(why) => Err(format!("the snapshot changed while it was copied: {why}")),
        }
    })();
    if copied.is_err() {
        let _ = std::fs::remove_dir_all(stack.join(ETCD));
        let _ = std::fs::remove_dir_all(stack.join(PKI));
        let _ = std::fs::remove_file(stack.join(KUBECONFIG));
    }
    copied
}

/// Moves a snapshot that could not be restored out of the way (pruned within the hour), so that the
/// next cold start saves a good one instead of finding it again.
pub fn set_aside(dir: &Path) {
    if let (Some(store), Some(name)) = (dir.parent(), dir.file_name()) {
        let token = super::pki::random_token().unwrap_or_else(|_| std::process::id().to_string());
        let _ = std::fs::rename(dir, store.join(format!(".broken-{}-{token}", name.to_string_lossy())));
    }
}

/// Saves the stack at `stack` as snapshot `key` in `store`, with etcd (process `etcd_pid`) frozen
/// while its directory is copied; replaces a snapshot of that key that is not reusable (one that is,
/// saved meanwhile by a concurrent run, stays: another run may be restoring it) and keeps [`KEEP`].
///
/// # Errors
/// A copy or write failed; nothing partial is left in the store.
pub fn save(store: &Path, stack: &Path, key: &str, etcd_pid: u32) -> Result<PathBuf, String> {
    create_private_dir(store)?;
    // Unique: every confined run is PID 1 of its own namespace, so a process id would collide.
    let partial = store.join(format!(".partial-{key}-{}", super::pki::random_token()?));
    let result = (|| {
        create_private_dir(&partial)?;
        {
            let frozen = Frozen::new(etcd_pid)?;
            copy_tree(&stack.join(ETCD), &partial.join(ETCD))?;
            // Anyone who resumed or stopped etcd meanwhile (a teardown) makes the copy suspect.
            frozen.still()?;
        }
        copy_tree(&stack.join(PKI), &partial.join(PKI))?;
        copy_file(&stack.join(KUBECONFIG), &partial.join(KUBECONFIG))?;
        let m = Manifest { key: key.into(), created: now(), kyvtel: env!("CARGO_PKG_VERSION").into() };
        write_private(&partial.join(MANIFEST), &serde_json::to_string_pretty(&m).map_err(|e| e.to_string())?)?;
        let dir = store.join(key);
        if matches!(lookup(store, key), Lookup::Hit { .. }) {
            let _ = std::fs::remove_dir_all(&partial);
            return Ok(dir);
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::rename(&partial, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    prune(store, KEEP);
    result
}

/// Removes all but the `keep` newest snapshots, and partial copies and set-aside snapshots older
/// than an hour.
pub fn prune(store: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(store) else { return };
    let mut snaps = Vec::new();
    for e in entries.flatten() {
        let (path, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH);
        if name.starts_with(".partial-") || name.starts_with(".broken-") {
            if modified.elapsed().is_ok_and(|d| d > Duration::from_secs(3600)) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if path.join(MANIFEST).is_file() {
            snaps.push((modified, path));
        }
    }
    snaps.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (_, old) in snaps.into_iter().skip(keep) {
        let _ = std::fs::remove_dir_all(old);
    }
}

/// A process stopped with SIGSTOP until dropped (SIGCONT), so that it is thawed on every path.
struct Frozen(libc::pid_t);

impl Frozen {
    /// Stops `pid` and waits until every one of its threads is stopped (a thread in a write finishes
    /// it first).
    fn new(pid: u32) -> Result<Frozen, String> {
        let pid = pid as libc::pid_t;
        // SAFETY: signalling our own child; stopping is undone on drop.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let frozen = Frozen(pid);
        for _ in 0..400 {
            if frozen.stopped()? {
                return Ok(frozen);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(format!("process {pid} did not stop within 2 s of SIGSTOP"))
    }

    /// Whether every thread of the process is stopped.
    fn stopped(&self) -> Result<bool, String> {
        let tasks = format!("/proc/{}/task", self.0);
        let entries = std::fs::read_dir(&tasks).map_err(|e| format!("{tasks}: {e} (the process is gone)"))?;
        let mut any = false;
        for e in entries.flatten() {
            any = true;
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if !stat.rsplit(')').next().is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('T' | 't')))
            {
                return Ok(false);
            }
        }
        Ok(any)
    }

    /// An error unless the process is still stopped (nobody resumed, stopped or killed it meanwhile).
    fn still(&self) -> Result<(), String> {
        match self.stopped() {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("process {} was resumed while it was copied", self.0)),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Copies a directory tree of plain files, keeping each mode.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", from.display()));
    }
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o700))
        .map_err(|e| format!("{}: {e}", to.display()))?;
    for e in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let t = e.file_type().map_err(|err| format!("{}: {err}", e.path().display()))?;
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest)?;
        } else if t.is_file() {
            copy_file(&e.path(), &dest)?;
        } else {
            return Err(format!("{} is neither a file nor a directory", e.path().display()));
        }
    }
    Ok(())
}

/// Copies one file; the copy is 0600 (owner read/write, whatever the source allowed others).
fn copy_file(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{}: {e}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::action::Phase;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(name: &str) -> Tmp {
            let d = std::env::temp_dir().join(format!("kyvtel-snap-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Tmp(d)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A process to freeze and thaw, killed and reaped on drop.
    struct Sleeper(std::process::Child);
    impl Sleeper {
        fn new() -> Sleeper {
            Sleeper(std::process::Command::new("sleep").arg("30").spawn().unwrap())
        }
        fn id(&self) -> u32 {
            self.0.id()
        }
    }
    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn phases(base: &Path, values: &str) -> Vec<Phase> {
        vec![Phase {
            kind: crate::plan::PhaseKind::InstallKyverno,
            expects_denial: false,
            actions: vec![Action::WriteFile { path: base.join("kyverno-values.yaml"), contents: values.into() }],
        }]
    }

    /// A stack directory as the cell's setup leaves it.
    fn stack(dir: &Path) -> PathBuf {
        let s = dir.join("cell/local");
        create_private_dir(&s.join("etcd/member/snap")).unwrap();
        write_private(&s.join("etcd/member/snap/db"), "bbolt").unwrap();
        create_private_dir(&s.join("pki")).unwrap();
        write_private(&s.join("pki/ca.key"), "KEY").unwrap();
        write_private(&s.join("pki/ca.crt"), "CRT").unwrap();
        write_private(&s.join("pki/sa.key"), "SA").unwrap();
        write_private(&s.join("admin.kubeconfig"), "kubeconfig").unwrap();
        s
    }

    #[test]
    fn the_key_changes_with_the_setup_and_with_every_binary_but_not_with_the_run_directory() {
        let t = Tmp::new("key");
        let bin = t.0.join("kyverno");
        std::fs::write(&bin, "binary v1").unwrap();
        std::fs::write(t.0.join("kyverno.stamp"), "stamp-1").unwrap();
        let bins = [bin.clone()];
        let (a, b) = (t.0.join("run-1/cell"), t.0.join("run-2/cell"));
        let (sa, sb) = (a.join("local"), b.join("local"));
        let base = key(&phases(&a, "x: 1"), &sa, &bins).unwrap();
        assert_eq!(base, key(&phases(&b, "x: 1"), &sb, &bins).unwrap(), "another run directory, same key");
        assert_ne!(base, key(&phases(&a, "x: 2"), &sa, &bins).unwrap(), "changed Kyverno values");
        std::fs::write(t.0.join("kyverno.stamp"), "stamp-2").unwrap();
        let restamped = key(&phases(&a, "x: 1"), &sa, &bins).unwrap();
        assert_ne!(base, restamped, "a rebuilt binary");
        std::fs::write(&bin, "binary v2, replaced by hand").unwrap();
        assert_ne!(restamped, key(&phases(&a, "x: 1"), &sa, &bins).unwrap(), "a replaced binary");
        assert!(key(&phases(&a, "x: 1"), &sa, &[t.0.join("missing")]).is_err());
    }

    #[test]
    fn a_saved_snapshot_is_found_under_its_key_only_and_restores_what_it_saved() {
        let t = Tmp::new("save");
        let s = stack(&t.0);
        let store = t.0.join("store");
        let sleeper = Sleeper::new();
        let dir = save(&store, &s, "k1", sleeper.id()).unwrap();
        // The frozen process was thawed.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleeper.id())).unwrap();
        assert!(!stat.rsplit(')').next().unwrap().trim_start().starts_with('T'), "{stat}");
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert!(matches!(lookup(&store, "k2"), Lookup::Miss(_)));
        let Lookup::Hit { dir: found, manifest } = lookup(&store, "k1") else { panic!("not found") };
        assert_eq!((found.clone(), manifest.key.as_str()), (dir, "k1"));
        let into = t.0.join("run2/local");
        restore(&found, "k1", &into).unwrap();
        assert_eq!(std::fs::read_to_string(into.join("etcd/member/snap/db")).unwrap(), "bbolt");
        assert_eq!(std::fs::metadata(into.join("pki/ca.key")).unwrap().mode() & 0o777, 0o600);
        assert!(restore(&found, "k1", &into).is_err(), "never over an existing stack");
        assert!(into.join("etcd/member/snap/db").is_file(), "and the existing stack is left as it was");
    }

    #[test]
    fn saving_keeps_a_reusable_snapshot_of_the_key_and_replaces_an_unusable_one() {
        let t = Tmp::new("resave");
        let s = stack(&t.0);
        let store = t.0.join("store");
        let pid = Sleeper::new();
        let dir = save(&store, &s, "k1", pid.id()).unwrap();
        let old = Manifest { key: "k1".into(), created: now() - 100, kyvtel: "first".into() };
        write_private(&dir.join(MANIFEST), &serde_json::to_string(&old).unwrap()).unwrap();
        save(&store, &s, "k1", pid.id()).unwrap();
        let Lookup::Hit { manifest, .. } = lookup(&store, "k1") else { panic!("lost") };
        assert_eq!(manifest.kyvtel, "first", "a concurrent run may be restoring it: kept");
        std::fs::set_permissions(dir.join("pki/ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        save(&store, &s, "k1", pid.id()).unwrap();
        let Lookup::Hit { manifest, .. } = lookup(&store, "k1") else { panic!("not replaced") };
        assert_eq!(manifest.kyvtel, env!("CARGO_PKG_VERSION"));
        let names: Vec<String> =
            std::fs::read_dir(&store).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        assert_eq!(names, ["k1"], "no partial copy left");
    }

    #[test]
    fn a_snapshot_readable_by_others_old_or_of_another_key_is_not_reused() {
        let t = Tmp::new("refuse");
        let s = stack(&t.0);
        let store = t.0.join("store");
        let pid = Sleeper::new();
        let dir = save(&store, &s, "k1", pid.id()).unwrap();
        let hit = |why: &str| match lookup(&store, "k1") {
            Lookup::Hit { .. } => panic!("reused although {why}"),
            Lookup::Miss(m) => m,
        };
        std::fs::set_permissions(dir.join("pki/ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(hit("a key is world-readable").contains("readable by others"));
        std::fs::set_permissions(dir.join("pki/ca.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(hit("the directory is 0755").contains("0700"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let m = Manifest { key: "k1".into(), created: now() - MAX_AGE.as_secs() - 10, kyvtel: "x".into() };
        write_private(&dir.join(MANIFEST), &serde_json::to_string(&m).unwrap()).unwrap();
        assert!(hit("it is too old").contains("days old"));
        let m = Manifest { key: "other".into(), created: now(), kyvtel: "x".into() };
        write_private(&dir.join(MANIFEST), &serde_json::to_string(&m).unwrap()).unwrap();
        assert!(hit("its manifest names another key").contains("another key"));
        let m = Manifest { key: "k1".into(), created: now(), kyvtel: "x".into() };
        write_private(&dir.join(MANIFEST), &serde_json::to_string(&m).unwrap()).unwrap();
        std::fs::remove_file(dir.join("etcd/member/snap/db")).unwrap();
        assert!(hit("etcd's database is missing").contains("broken"));
        set_aside(&dir);
        assert!(!dir.exists(), "a broken snapshot is moved out of the way");
    }

    #[test]
    fn the_store_keeps_the_newest_snapshots() {
        let t = Tmp::new("prune");
        let s = stack(&t.0);
        let store = t.0.join("store");
        let pid = Sleeper::new();
        for k in 0..KEEP + 2 {
            save(&store, &s, &format!("k{k}"), pid.id()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut left: Vec<String> =
            std::fs::read_dir(&store).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
        left.sort();
        assert_eq!(left.len(), KEEP, "{left:?}");
        assert!(!left.contains(&"k0".to_string()) && left.contains(&format!("k{}", KEEP + 1)), "{left:?}");
    }
}
