//! `tools::install` against a loopback HTTP server started in each test (bounded: it stops when the
//! test drops it, and after 60 s at the latest).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kyvtel::scenario::pins::{Pins, Release};
use kyvtel::tools::install::archive::build_tar_gz;
use kyvtel::tools::install::source::DefaultSource;
use kyvtel::tools::install::verify::sha256_hex;
use kyvtel::tools::install::{InstallError, Installer, Item, Outcome, Request, ToolsDir, read_manifest};
use kyvtel::tools::runner::{RecordingRunner, Scripted};
use kyvtel::tools::{Runner, Tool};

/// Status and body by request path.
type Routes = Arc<Mutex<HashMap<String, (u16, Vec<u8>)>>>;

/// Serves fixed bodies by path; `302` entries redirect to another path.
struct Server {
    base: String,
    routes: Routes,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Routes = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, h, s) = (routes.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                        break;
                    }
                }
                h.fetch_add(1, Ordering::Relaxed);
                let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let answer = r.lock().unwrap().get(&path).cloned();
                let (status, body) = answer.unwrap_or((404, b"not found".to_vec()));
                let head = if status == 302 {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        String::from_utf8_lossy(&body)
                    )
                } else {
                    format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                };
                let _ = stream.write_all(head.as_bytes());
                if status != 302 {
                    let _ = stream.write_all(&body);
                }
            }
        });
        Server { base, routes, hits, stop }
    }

    fn serve(&self, path: &str, body: impl Into<Vec<u8>>) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), (200, body.into()));
        format!("{}{path}", self.base)
    }

    fn redirect(&self, path: &str, to: &str) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), (302, to.as_bytes().to_vec()));
        format!("{}{path}", self.base)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tools-install-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn release(url: String, checksum_url: Option<String>, sha256: Option<String>, member: Option<&str>) -> Release {
    Release {
        url,
        checksum_url,
        sha256,
        member: member.map(String::from),
        node_images: vec![],
        app_version: None,
        kubernetes: None,
    }
}

/// Pins whose only releases of `item` are `version` → `rel`.
fn pins_with(item: Item, version: &str, rel: Release) -> Pins {
    let mut pins = Pins::builtin();
    let tool = match item {
        Item::Kind => &mut pins.kind,
        Item::Helm => &mut pins.helm,
        Item::Kubectl => &mut pins.kubectl,
        Item::Telepresence => &mut pins.telepresence,
        Item::KyvernoCli => &mut pins.kyverno_cli,
        Item::KyvernoChart => &mut pins.kyverno_chart,
    };
    tool.default = version.to_string();
    tool.releases = [(version.to_string(), rel)].into_iter().collect();
    pins
}

/// Pins whose releases of `item` are exactly `releases`, the first being the default.
fn pins_with_releases(item: Item, releases: Vec<(&str, Release)>) -> Pins {
    let (default, first) = releases[0].clone();
    let mut pins = pins_with(item, default, first);
    let tool = match item {
        Item::Telepresence => &mut pins.telepresence,
        Item::KyvernoChart => &mut pins.kyverno_chart,
        other => panic!("not needed for {other:?}"),
    };
    tool.releases = releases.into_iter().map(|(v, r)| (v.to_string(), r)).collect();
    pins
}

fn req(item: Item, version: &str) -> Vec<Request> {
    vec![Request { item, version: version.to_string() }]
}

#[test]
fn good_checksum_file_installs_then_is_idempotent() {
    let server = Server::start();
    let binary = b"#!/bin/sh\necho kind\n".to_vec();
    let url = server.serve("/kind/v0.33.0/kind-linux-amd64", binary.clone());
    let sums = server
        .serve("/kind/v0.33.0/kind-linux-amd64.sha256sum", format!("{}  kind-linux-amd64\n", sha256_hex(&binary)));
    let pins = pins_with(Item::Kind, "v0.33.0", release(url, Some(sums), None, None));
    let dir = scratch("good");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let installer = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("tools.lock"), &source);

    let first = installer.install(&req(Item::Kind, "v0.33.0")).unwrap();
    let Outcome::Installed { path, verified_by, .. } = &first[0].outcome else { panic!("{first:?}") };
    assert_eq!(path, &dir.join("bin/kind"));
    assert_eq!(std::fs::read(path).unwrap(), binary);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(verified_by.iter().any(|v| v.contains("checksum file")), "{verified_by:?}");
    assert_eq!(read_manifest(&ToolsDir::at(dir.join("bin")))["kind"].version, "v0.33.0");

    let hits = server.hits();
    let second = installer.install(&req(Item::Kind, "v0.33.0")).unwrap();
    assert!(matches!(second[0].outcome, Outcome::UpToDate { .. }), "{second:?}");
    assert_eq!(server.hits(), hits, "an up-to-date tool must not be downloaded again");

    // A file changed behind kyvtel's back is re-downloaded.
    std::fs::write(dir.join("bin/kind"), b"tampered").unwrap();
    let third = installer.install(&req(Item::Kind, "v0.33.0")).unwrap();
    assert!(matches!(third[0].outcome, Outcome::Installed { .. }), "{third:?}");
    assert_eq!(std::fs::read(dir.join("bin/kind")).unwrap(), binary);
}

#[test]
fn archive_member_is_extracted_and_both_checks_apply() {
    let server = Server::start();
    let tgz = build_tar_gz(&[("linux-amd64/LICENSE", b"apache"), ("linux-amd64/helm", b"HELM-BINARY")]).unwrap();
    let digest = sha256_hex(&tgz);
    let url = server.serve("/helm-v3.21.4-linux-amd64.tar.gz", tgz);
    let sums = server
        .serve("/helm-v3.21.4-linux-amd64.tar.gz.sha256sum", format!("{digest}  helm-v3.21.4-linux-amd64.tar.gz"));
    let pins =
        pins_with(Item::Helm, "v3.21.4", release(url, Some(sums), Some(digest.clone()), Some("linux-amd64/helm")));
    let dir = scratch("helm");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let out = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::Helm, "v3.21.4"))
        .unwrap();
    let Outcome::Installed { sha256, verified_by, .. } = &out[0].outcome else { panic!("{out:?}") };
    assert_eq!(sha256, &digest);
    assert_eq!(verified_by.len(), 2, "{verified_by:?}");
    assert_eq!(std::fs::read(dir.join("bin/helm")).unwrap(), b"HELM-BINARY");
}

#[test]
fn bad_pin_fails_with_both_digests_and_writes_nothing() {
    let server = Server::start();
    let url = server.serve("/kyverno-3.9.0.tgz", b"chart-bytes".to_vec());
    let pin = "9663e8d3d15b070e5925b4f26b3f9a8824872a42ac7bf27ca105c897cb5aba51".to_string();
    let pins = pins_with(Item::KyvernoChart, "3.9.0", release(url, None, Some(pin.clone()), None));
    let dir = scratch("badpin");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::KyvernoChart, "3.9.0"))
        .unwrap_err();
    assert!(matches!(err, InstallError::PinMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&pin) && msg.contains(&sha256_hex(b"chart-bytes")), "{msg}");
    assert!(!dir.join("bin/charts/kyverno-3.9.0.tgz").exists());
    assert_eq!(kyvtel::Error::from(err).exit(), kyvtel::Exit::Infra);
}

#[test]
fn chart_is_kept_as_a_file_under_charts() {
    let server = Server::start();
    let url = server.serve("/kyverno-3.9.0.tgz", b"chart-bytes".to_vec());
    let pins = pins_with(Item::KyvernoChart, "3.9.0", release(url, None, Some(sha256_hex(b"chart-bytes")), None));
    let dir = scratch("chart");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::KyvernoChart, "3.9.0"))
        .unwrap();
    assert_eq!(std::fs::read(dir.join("bin/charts/kyverno-3.9.0.tgz")).unwrap(), b"chart-bytes");
}

#[test]
fn bad_checksum_file_fails() {
    let server = Server::start();
    let url = server.serve("/kubectl", b"kubectl-binary".to_vec());
    let wrong = server.serve("/kubectl.sha256", "0".repeat(64));
    let pins = pins_with(Item::Kubectl, "v1.35.8", release(url.clone(), Some(wrong), None, None));
    let dir = scratch("badsum");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let installer = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source);
    let err = installer.install(&req(Item::Kubectl, "v1.35.8")).unwrap_err();
    assert!(matches!(err, InstallError::ChecksumMismatch { .. }), "{err}");
    assert!(!dir.join("bin/kubectl").exists());

    let no_entry = server.serve("/other.sha256sum", format!("{}  something-else\n", "1".repeat(64)));
    let pins = pins_with(Item::Kubectl, "v1.35.8", release(url, Some(no_entry), None, None));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::Kubectl, "v1.35.8"))
        .unwrap_err();
    assert!(err.to_string().contains("no entry for kubectl"), "{err}");
}

#[test]
fn unverifiable_release_is_refused() {
    let server = Server::start();
    let url = server.serve("/kyverno-3.7.2.tgz", b"x".to_vec());
    let pins = pins_with(Item::KyvernoChart, "3.7.2", release(url, None, None, None));
    let dir = scratch("unverifiable");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::KyvernoChart, "3.7.2"))
        .unwrap_err();
    assert!(matches!(err, InstallError::Unverifiable { .. }), "{err}");
}

#[test]
fn telepresence_is_trusted_on_first_use_then_enforced() {
    let server = Server::start();
    let first = b"telepresence-v1".to_vec();
    // Through a redirect, like GitHub release assets.
    server.serve("/assets/telepresence-linux-amd64", first.clone());
    let url = server.redirect("/v2.32.1/telepresence-linux-amd64", "/assets/telepresence-linux-amd64");
    let pins = pins_with(Item::Telepresence, "2.32.1", release(url, None, None, None));
    let dir = scratch("tofu");
    let lock_path = dir.join("tools.lock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let installer = Installer::new(&pins, ToolsDir::at(dir.join("bin")), &lock_path, &source);

    let out = installer.install(&req(Item::Telepresence, "2.32.1")).unwrap();
    let Outcome::Installed { verified_by, .. } = &out[0].outcome else { panic!("{out:?}") };
    assert!(verified_by[0].contains("first use"), "{verified_by:?}");
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock.contains(&format!("telepresence 2.32.1 {}", sha256_hex(&first))), "{lock}");

    // Same bytes again (after the binary was removed): accepted by the lock.
    std::fs::remove_file(dir.join("bin/telepresence")).unwrap();
    let again = installer.install(&req(Item::Telepresence, "2.32.1")).unwrap();
    let Outcome::Installed { verified_by, .. } = &again[0].outcome else { panic!("{again:?}") };
    assert!(verified_by[0].contains("tools.lock"), "{verified_by:?}");

    // Upstream bytes change: refused, naming both digests; the installed binary is untouched.
    std::fs::remove_file(dir.join("bin/telepresence")).unwrap();
    server.serve("/assets/telepresence-linux-amd64", b"telepresence-v2".to_vec());
    let err = installer.install(&req(Item::Telepresence, "2.32.1")).unwrap_err();
    assert!(matches!(err, InstallError::LockMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&sha256_hex(&first)) && msg.contains(&sha256_hex(b"telepresence-v2")), "{msg}");
    assert!(!dir.join("bin/telepresence").exists());
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), lock, "the lock is never rewritten on mismatch");
}

#[test]
fn a_matching_tool_on_path_is_used_and_a_mismatching_one_is_not() {
    let server = Server::start();
    let binary = b"kind-bytes".to_vec();
    let url = server.serve("/kind-linux-amd64", binary.clone());
    let sums = server.serve("/kind-linux-amd64.sha256sum", format!("{}  kind-linux-amd64\n", sha256_hex(&binary)));
    let pins = pins_with(Item::Kind, "v0.33.0", release(url, Some(sums), None, None));
    let dir = scratch("path");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));

    let matching = RecordingRunner::new();
    matching.on(Tool::Kind, &["version"], Scripted::ok("kind v0.33.0 go1.24.6 linux/amd64\n"));
    let out = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .with_path_probe(&matching)
        .install(&req(Item::Kind, "v0.33.0"))
        .unwrap();
    assert_eq!(out[0].outcome, Outcome::OnPath { version: "0.33.0".into() });
    assert_eq!(matching.command_lines(), ["kind version"]);
    assert!(!dir.join("bin/kind").exists());

    let older = RecordingRunner::new();
    older.on(Tool::Kind, &["version"], Scripted::ok("kind v0.27.0 go1.23 linux/amd64\n"));
    let out = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .with_path_probe(&older as &dyn Runner)
        .install(&req(Item::Kind, "v0.33.0"))
        .unwrap();
    assert!(matches!(out[0].outcome, Outcome::Installed { .. }), "{out:?}");
}

#[test]
fn unknown_version_is_bad_usage() {
    let pins = Pins::builtin();
    let dir = scratch("unknown");
    let source = DefaultSource::with_timeout(Duration::from_secs(1));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::Telepresence, "9.9.9"))
        .unwrap_err();
    assert!(err.to_string().contains("known: 2.20.2, 2.22.6"), "{err}");
    assert_eq!(kyvtel::Error::from(err).exit(), kyvtel::Exit::Input);
}

#[test]
fn file_urls_are_the_offline_seam() {
    let dir = scratch("file");
    let artifact = dir.join("kind-linux-amd64");
    std::fs::write(&artifact, b"from-a-mirror").unwrap();
    std::fs::write(dir.join("sum"), format!("{}  kind-linux-amd64\n", sha256_hex(b"from-a-mirror"))).unwrap();
    let rel = release(
        format!("file://{}", artifact.display()),
        Some(format!("file://{}", dir.join("sum").display())),
        None,
        None,
    );
    let pins = pins_with(Item::Kind, "v0.33.0", rel);
    let source = DefaultSource::default();
    Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::Kind, "v0.33.0"))
        .unwrap();
    assert_eq!(std::fs::read(dir.join("bin/kind")).unwrap(), b"from-a-mirror");
}

#[test]
fn http_errors_are_reported_with_the_url() {
    let server = Server::start();
    let url = format!("{}/missing", server.base);
    let pins = pins_with(Item::Kind, "v0.33.0", release(url.clone(), None, None, None));
    let dir = scratch("404");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("lock"), &source)
        .install(&req(Item::Kind, "v0.33.0"))
        .unwrap_err();
    assert!(err.to_string().contains(&url) && err.to_string().contains("404"), "{err}");
}

#[test]
fn a_non_default_telepresence_is_installed_beside_the_default_and_locked_per_version() {
    let server = Server::start();
    let (default_bytes, other_bytes) = (b"telepresence-2.32.1".to_vec(), b"telepresence-2.27.4".to_vec());
    let default_url = server.serve("/v2.32.1/telepresence-linux-amd64", default_bytes.clone());
    let other_url = server.serve("/v2.27.4/telepresence-linux-amd64", other_bytes.clone());
    let pins = pins_with_releases(
        Item::Telepresence,
        vec![("2.32.1", release(default_url, None, None, None)), ("2.27.4", release(other_url, None, None, None))],
    );
    let dir = scratch("tp-versions");
    let tools = ToolsDir::at(dir.join("bin"));
    let lock_path = dir.join("tools.lock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    // A Telepresence on PATH that reports 2.27.4 must not stand in for the non-default version.
    let path = RecordingRunner::new();
    path.on(Tool::Telepresence, &["version"], Scripted::ok("OSS Client : v2.27.4\n"));
    let installer = Installer::new(&pins, tools.clone(), &lock_path, &source).with_path_probe(&path);
    let both = [Request::new(Item::Telepresence, "2.32.1"), Request::new(Item::Telepresence, "2.27.4")];

    let out = installer.install(&both).unwrap();
    let paths: Vec<&PathBuf> = out
        .iter()
        .map(|i| match &i.outcome {
            Outcome::Installed { path, .. } => path,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, [&dir.join("bin/telepresence"), &dir.join("bin/telepresence-2.27.4/telepresence")]);
    assert_eq!(tools.telepresence(&pins, "2.32.1"), dir.join("bin/telepresence"));
    assert_eq!(tools.telepresence(&pins, "2.27.4"), dir.join("bin/telepresence-2.27.4/telepresence"));
    assert_eq!(std::fs::read(dir.join("bin/telepresence")).unwrap(), default_bytes);
    assert_eq!(std::fs::read(dir.join("bin/telepresence-2.27.4/telepresence")).unwrap(), other_bytes);
    assert_eq!(path.command_lines(), ["telepresence version"], "PATH is probed for the default only");

    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock.contains(&format!("telepresence 2.32.1 {}", sha256_hex(&default_bytes))), "{lock}");
    assert!(lock.contains(&format!("telepresence 2.27.4 {}", sha256_hex(&other_bytes))), "{lock}");
    let manifest = read_manifest(&tools);
    assert_eq!(manifest["telepresence"].version, "2.32.1");
    assert_eq!(manifest["telepresence@2.27.4"].version, "2.27.4");

    let hits = server.hits();
    let again = installer.install(&both).unwrap();
    assert!(again.iter().all(|i| matches!(i.outcome, Outcome::UpToDate { .. })), "{again:?}");
    assert_eq!(server.hits(), hits, "both versions stay up to date side by side");
}

#[test]
fn the_pinned_default_on_path_is_still_used() {
    let pins = pins_with_releases(
        Item::Telepresence,
        vec![
            ("2.32.1", release("http://127.0.0.1:1/never".into(), None, None, None)),
            ("2.27.4", release("http://127.0.0.1:1/never".into(), None, None, None)),
        ],
    );
    let dir = scratch("tp-path");
    let source = DefaultSource::with_timeout(Duration::from_secs(5));
    let path = RecordingRunner::new();
    path.on(Tool::Telepresence, &["version"], Scripted::ok("OSS Client : v2.32.1\n"));
    let out = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("tools.lock"), &source)
        .with_path_probe(&path)
        .install(&req(Item::Telepresence, "2.32.1"))
        .unwrap();
    assert_eq!(out[0].outcome, Outcome::OnPath { version: "2.32.1".into() });
}

#[test]
fn a_tool_without_a_pinned_sha256_is_locked_after_its_checksum_file_verified_it() {
    let server = Server::start();
    let first = b"kind-v0.33.0".to_vec();
    let url = server.serve("/kind-linux-amd64", first.clone());
    let sums = server.serve("/kind-linux-amd64.sha256sum", format!("{}  kind-linux-amd64\n", sha256_hex(&first)));
    let pins = pins_with(Item::Kind, "v0.33.0", release(url, Some(sums), None, None));
    let dir = scratch("kind-lock");
    let lock_path = dir.join("tools.lock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let installer = Installer::new(&pins, ToolsDir::at(dir.join("bin")), &lock_path, &source);

    let out = installer.install(&req(Item::Kind, "v0.33.0")).unwrap();
    let Outcome::Installed { verified_by, .. } = &out[0].outcome else { panic!("{out:?}") };
    assert!(verified_by[0].contains("checksum file"), "{verified_by:?}");
    assert!(
        verified_by[1].contains("first use, recorded in") && verified_by[1].contains("tools.lock"),
        "{verified_by:?}"
    );
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock.contains(&format!("kind v0.33.0 {}", sha256_hex(&first))), "{lock}");

    // Upstream re-publishes the binary together with its checksum file: the lock refuses it.
    std::fs::remove_file(dir.join("bin/kind")).unwrap();
    let second = b"kind-v0.33.0-republished".to_vec();
    server.serve("/kind-linux-amd64", second.clone());
    server.serve("/kind-linux-amd64.sha256sum", format!("{}  kind-linux-amd64\n", sha256_hex(&second)));
    let err = installer.install(&req(Item::Kind, "v0.33.0")).unwrap_err();
    assert!(matches!(err, InstallError::LockMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("kind v0.33.0: sha256"), "{msg}");
    assert!(msg.contains(&sha256_hex(&first)) && msg.contains(&sha256_hex(&second)), "{msg}");
    assert!(msg.contains(&lock_path.display().to_string()), "{msg}");
    assert!(!dir.join("bin/kind").exists());
    assert_eq!(std::fs::read_to_string(&lock_path).unwrap(), lock, "the lock is never rewritten on mismatch");
    assert_eq!(kyvtel::Error::from(err).exit(), kyvtel::Exit::Infra);
}

#[test]
fn a_checksum_file_that_fails_records_nothing_in_the_lock() {
    let server = Server::start();
    let url = server.serve("/kubectl", b"kubectl".to_vec());
    let wrong = server.serve("/kubectl.sha256", "0".repeat(64));
    let pins = pins_with(Item::Kubectl, "v1.35.8", release(url, Some(wrong), None, None));
    let dir = scratch("kubectl-nolock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("tools.lock"), &source)
        .install(&req(Item::Kubectl, "v1.35.8"))
        .unwrap_err();
    assert!(matches!(err, InstallError::ChecksumMismatch { .. }), "{err}");
    assert!(!dir.join("tools.lock").exists(), "an unverified download must not be trusted");
}

#[test]
fn a_pinned_sha256_is_authoritative_and_never_locked() {
    let server = Server::start();
    let tgz = build_tar_gz(&[("linux-amd64/helm", b"HELM")]).unwrap();
    let digest = sha256_hex(&tgz);
    let url = server.serve("/helm.tar.gz", tgz);
    let pins = pins_with(Item::Helm, "v3.21.4", release(url, None, Some(digest), Some("linux-amd64/helm")));
    let dir = scratch("helm-nolock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("tools.lock"), &source)
        .install(&req(Item::Helm, "v3.21.4"))
        .unwrap();
    assert!(!dir.join("tools.lock").exists());
}

/// A Helm repository index listing `kyverno` charts (version → digest).
fn helm_index(charts: &[(&str, &str)]) -> String {
    let mut s = String::from("apiVersion: v1\nentries:\n  kyverno:\n");
    for (version, digest) in charts {
        s.push_str(&format!(
            "  - apiVersion: v2\n    name: kyverno\n    version: {version}\n    appVersion: v1.19.0\n    digest: {digest}\n    \
             created: \"2026-01-01T00:00:00Z\"\n    urls:\n    - https://kyverno.github.io/kyverno/kyverno-{version}.tgz\n"
        ));
    }
    s.push_str("generated: \"2026-01-01T00:00:00Z\"\n");
    s
}

#[test]
fn charts_are_verified_against_the_repository_index() {
    let server = Server::start();
    let (new, old) = (b"chart-3.9.0".to_vec(), b"chart-3.7.2".to_vec());
    let index =
        server.serve("/kyverno/index.yaml", helm_index(&[("3.9.0", &sha256_hex(&new)), ("3.7.2", &sha256_hex(&old))]));
    let pinned = release(
        server.serve("/kyverno/kyverno-3.9.0.tgz", new.clone()),
        Some(index.clone()),
        Some(sha256_hex(&new)),
        None,
    );
    let unpinned = release(server.serve("/kyverno/kyverno-3.7.2.tgz", old.clone()), Some(index), None, None);
    let pins = pins_with_releases(Item::KyvernoChart, vec![("3.9.0", pinned), ("3.7.2", unpinned)]);
    let dir = scratch("chart-index");
    let lock_path = dir.join("tools.lock");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let installer = Installer::new(&pins, ToolsDir::at(dir.join("bin")), &lock_path, &source);

    let hits = server.hits();
    let out = installer
        .install(&[Request::new(Item::KyvernoChart, "3.9.0"), Request::new(Item::KyvernoChart, "3.7.2")])
        .unwrap();
    assert_eq!(server.hits() - hits, 3, "two charts and one index download");
    let verified: Vec<&Vec<String>> = out
        .iter()
        .map(|i| match &i.outcome {
            Outcome::Installed { verified_by, .. } => verified_by,
            other => panic!("{other:?}"),
        })
        .collect();
    // 3.9.0: the pin and the index; 3.7.2: the index, then locked as a first use.
    assert_eq!(verified[0].len(), 2, "{:?}", verified[0]);
    assert!(verified[0][0] == "pinned sha256" && verified[0][1].contains("index.yaml"), "{:?}", verified[0]);
    assert!(verified[1][0].contains("index.yaml") && verified[1][1].contains("first use"), "{:?}", verified[1]);
    assert_eq!(std::fs::read(dir.join("bin/charts/kyverno-3.7.2.tgz")).unwrap(), old);
    let lock = std::fs::read_to_string(&lock_path).unwrap();
    assert!(lock.contains(&format!("kyverno-chart 3.7.2 {}", sha256_hex(&old))), "{lock}");
    assert!(!lock.contains("kyverno-chart 3.9.0"), "a pinned chart is not locked: {lock}");
    let manifest = read_manifest(&ToolsDir::at(dir.join("bin")));
    assert!(manifest.contains_key("kyverno-chart") && manifest.contains_key("kyverno-chart@3.7.2"), "{manifest:?}");
}

#[test]
fn a_chart_the_index_contradicts_or_lacks_is_refused() {
    let server = Server::start();
    let chart = b"chart-3.7.2".to_vec();
    let url = server.serve("/kyverno/kyverno-3.7.2.tgz", chart.clone());
    let dir = scratch("chart-index-bad");
    let source = DefaultSource::with_timeout(Duration::from_secs(20));
    let cases = [
        ("mismatch", helm_index(&[("3.7.2", &"0".repeat(64))]), "does not match"),
        ("missing", helm_index(&[("3.9.0", &sha256_hex(&chart))]), "the index lists no version 3.7.2 of chart kyverno"),
        ("malformed", "entries: [unclosed\n".to_string(), "not a Helm repository index"),
    ];
    for (name, body, want) in cases {
        let index = server.serve(&format!("/{name}/index.yaml"), body);
        let pins = pins_with(Item::KyvernoChart, "3.7.2", release(url.clone(), Some(index), None, None));
        let err = Installer::new(&pins, ToolsDir::at(dir.join("bin")), dir.join("tools.lock"), &source)
            .install(&req(Item::KyvernoChart, "3.7.2"))
            .unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
        match name {
            "mismatch" => assert!(matches!(err, InstallError::ChecksumMismatch { .. }), "{err}"),
            _ => assert!(matches!(err, InstallError::ChecksumFile { .. }), "{err}"),
        }
        assert!(!dir.join("bin/charts/kyverno-3.7.2.tgz").exists(), "{name}");
        assert!(!dir.join("tools.lock").exists(), "{name}");
    }
}
