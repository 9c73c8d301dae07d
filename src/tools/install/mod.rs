//! Provisioning the pinned tools: `kyvtel tools install` and [`ensure_tools`] for `cargo test --test e2e`.
//!
//! For each item (kind, helm, kubectl, telepresence, the kyverno CLI, the Kyverno chart):
//!
//! 1. **Up to date?** The tools directory keeps a manifest, `.kyvtel-installed.json`, with the
//!    version, URL and digests of every file it installed, keyed by item name for the pinned default
//!    and `<item>@<version>` for any other version ([`manifest_key`]), so several versions stay
//!    installed side by side. A file whose version and sha256 still match is left alone
//!    (idempotent; no network).
//! 2. **On PATH?** If the tools directory has no file for the tool, a tool on PATH is used only
//!    for the pinned default version, and only when its version (see [`version`]) equals it.
//! 3. **Download and verify**, every check that applies, and at least one:
//!    - the pinned `sha256` of pins.yaml (authoritative when present);
//!    - the upstream checksum file (`checksumUrl`): a `sha256sum`-style file, or for charts the
//!      Helm repository's `index.yaml` (its `digest` field);
//!    - without a pinned `sha256`: `tools.lock` ([`lock`]). The first download that the checksum
//!      file verified (or, for Telepresence, which publishes no checksums, the first download) is
//!      recorded; every later download must match.
//! 4. Extract the archive member if the release names one, write atomically (`.part` + rename),
//!    mark binaries executable, and record the manifest entry.
//!
//! Binaries go to `<bin>/<program>` for the pinned default and `<bin>/<program>-<version>` for any
//! other version (e.g. `telepresence-2.27.4/telepresence`, see [`ToolsDir::telepresence`]); charts go to
//! `<bin>/charts/<file>` ([`ToolsDir`]).

pub mod archive;
pub mod lock;
pub mod source;
pub mod verify;
pub mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::lock::Lock;
use self::source::{FetchError, Source};
use super::{Runner, Tool};
use crate::Error;
use crate::scenario::Loaded;
use crate::scenario::pins::{self, Pins};

/// The manifest file inside the tools directory.
pub const MANIFEST: &str = ".kyvtel-installed.json";

/// Something `kyvtel tools install` provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Item {
    /// kind.
    Kind,
    /// Helm.
    Helm,
    /// kubectl.
    Kubectl,
    /// Telepresence CLI.
    Telepresence,
    /// Kyverno CLI (`kyverno`).
    KyvernoCli,
    /// Kyverno Helm chart (a `.tgz` file, not a binary).
    KyvernoChart,
}

impl Item {
    /// Every item, in install order.
    pub const ALL: [Item; 6] =
        [Item::Kind, Item::Helm, Item::Kubectl, Item::Telepresence, Item::KyvernoCli, Item::KyvernoChart];

    /// The name used in messages and the manifest.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Item::Kind => "kind",
            Item::Helm => "helm",
            Item::Kubectl => "kubectl",
            Item::Telepresence => "telepresence",
            Item::KyvernoCli => "kyverno-cli",
            Item::KyvernoChart => "kyverno-chart",
        }
    }

    /// The program it provides, if it is a binary.
    #[must_use]
    pub fn tool(self) -> Option<Tool> {
        match self {
            Item::Kind => Some(Tool::Kind),
            Item::Helm => Some(Tool::Helm),
            Item::Kubectl => Some(Tool::Kubectl),
            Item::Telepresence => Some(Tool::Telepresence),
            Item::KyvernoCli => Some(Tool::Kyverno),
            Item::KyvernoChart => None,
        }
    }

    /// Its releases in the pins.
    #[must_use]
    pub fn pinned(self, pins: &Pins) -> &pins::Tool {
        match self {
            Item::Kind => &pins.kind,
            Item::Helm => &pins.helm,
            Item::Kubectl => &pins.kubectl,
            Item::Telepresence => &pins.telepresence,
            Item::KyvernoCli => &pins.kyverno_cli,
            Item::KyvernoChart => &pins.kyverno_chart,
        }
    }
}

/// Where tools are installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsDir {
    /// Binaries: `$KYVTEL_TOOLS_DIR` or `.tools/bin`.
    pub bin: PathBuf,
}

impl ToolsDir {
    /// `$KYVTEL_TOOLS_DIR`, or `.tools/bin` in the working directory.
    #[must_use]
    pub fn from_env() -> Self {
        ToolsDir { bin: super::runner::default_tools_dir() }
    }

    /// A tools directory at `bin`.
    pub fn at(bin: impl Into<PathBuf>) -> Self {
        ToolsDir { bin: bin.into() }
    }

    /// Where charts are kept: `<bin>/charts`.
    #[must_use]
    pub fn charts(&self) -> PathBuf {
        self.bin.join("charts")
    }

    /// Where `tool`'s binary is installed at its pinned default version.
    #[must_use]
    pub fn binary(&self, tool: Tool) -> PathBuf {
        self.bin.join(tool.program())
    }

    /// Where the Telepresence binary of `version` is installed: the pinned default (from `pins`) at
    /// `<bin>/telepresence`, so that PATH use and a single-version setup keep working; any other
    /// version at `<bin>/telepresence-<version>/telepresence`, e.g. `telepresence-2.27.4/telepresence`.
    ///
    /// Every binary keeps its own name, and the runner puts its directory first on the child's
    /// `PATH`: a precaution, so that the daemons it starts are that version if it finds them by name.
    #[must_use]
    pub fn telepresence(&self, pins: &Pins, version: &str) -> PathBuf {
        self.versioned_binary(Tool::Telepresence, &pins.telepresence.default, version)
    }

    /// `<bin>/<program>` for the `default` version, `<bin>/<program>-<version>/<program>` for any other.
    fn versioned_binary(&self, tool: Tool, default: &str, version: &str) -> PathBuf {
        if version == default {
            self.binary(tool)
        } else {
            self.bin.join(format!("{}-{version}", tool.program())).join(tool.program())
        }
    }

    /// Where the Kyverno chart of `release` is kept: `<bin>/charts/<file name of its URL>`.
    #[must_use]
    pub fn chart(&self, release: &pins::Release) -> PathBuf {
        self.charts().join(verify::file_name_of(&release.url))
    }

    fn destination(&self, item: Item, pins: &Pins, version: &str, release: &pins::Release) -> PathBuf {
        match item.tool() {
            Some(tool) => self.versioned_binary(tool, &item.pinned(pins).default, version),
            None => self.chart(release),
        }
    }
}

/// One item at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What.
    pub item: Item,
    /// Which pinned version.
    pub version: String,
}

impl Request {
    /// The pinned default version of `item`.
    #[must_use]
    pub fn default_for(item: Item, pins: &Pins) -> Request {
        Request { item, version: item.pinned(pins).default.clone() }
    }

    /// `item` at `version` (checked against the pins when installed).
    #[must_use]
    pub fn new(item: Item, version: impl Into<String>) -> Request {
        Request { item, version: version.into() }
    }

    /// What the scenarios need beyond the defaults: the Telepresence version and the Kyverno chart
    /// each of them resolves to (scenario order, without repeats).
    #[must_use]
    pub fn for_scenarios(loaded: &[Loaded]) -> Vec<Request> {
        let mut out = Vec::new();
        for l in loaded {
            out.push(Request::new(Item::Telepresence, l.versions.telepresence.clone()));
            out.push(Request::new(Item::KyvernoChart, l.versions.kyverno_chart.clone()));
        }
        dedup(out)
    }
}

/// `requests` without repeats, grouped by item in install order ([`Item::ALL`]), keeping the
/// given order of versions within an item.
#[must_use]
pub fn dedup(requests: Vec<Request>) -> Vec<Request> {
    let mut out: Vec<Request> = Vec::new();
    for item in Item::ALL {
        for r in requests.iter().filter(|r| r.item == item) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
    }
    out
}

/// The manifest key of `item` at `version`: its name for the pinned default, `<name>@<version>`
/// otherwise (e.g. `telepresence@2.27.4`), so that versions installed side by side each stay
/// up to date.
#[must_use]
pub fn manifest_key(item: Item, pins: &Pins, version: &str) -> String {
    if version == item.pinned(pins).default { item.name().to_string() } else { format!("{}@{version}", item.name()) }
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Downloaded, verified and written.
    Installed {
        /// Where.
        path: PathBuf,
        /// sha256 of the download.
        sha256: String,
        /// The checks that passed.
        verified_by: Vec<String>,
    },
    /// Already installed at this version, file unchanged.
    UpToDate {
        /// Where.
        path: PathBuf,
    },
    /// Not installed: the tool on PATH has the pinned version.
    OnPath {
        /// The version it reported.
        version: String,
    },
}

/// The result for one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// What.
    pub item: Item,
    /// Which version.
    pub version: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The version is not in the pins.
    #[error("{item} {version} is not pinned (known: {known})")]
    UnknownVersion {
        /// Item name.
        item: &'static str,
        /// Requested version.
        version: String,
        /// Pinned versions.
        known: String,
    },
    /// A download failed.
    #[error("downloading {item}: {source}")]
    Fetch {
        /// Item name.
        item: &'static str,
        /// The cause.
        #[source]
        source: FetchError,
    },
    /// The download does not match the pinned sha256.
    #[error("{item} {url}: sha256 {actual} does not match the pinned sha256 {expected}")]
    PinMismatch {
        /// Item name.
        item: &'static str,
        /// Downloaded URL.
        url: String,
        /// The pin.
        expected: String,
        /// What was downloaded.
        actual: String,
    },
    /// The download does not match the upstream checksum file.
    #[error("{item} {url}: sha256 {actual} does not match {expected} from {checksum_url}")]
    ChecksumMismatch {
        /// Item name.
        item: &'static str,
        /// Downloaded URL.
        url: String,
        /// The checksum file.
        checksum_url: String,
        /// Its digest.
        expected: String,
        /// What was downloaded.
        actual: String,
    },
    /// The checksum file could not be used.
    #[error("{item}: checksum file {checksum_url}: {reason}")]
    ChecksumFile {
        /// Item name.
        item: &'static str,
        /// The checksum file.
        checksum_url: String,
        /// What is wrong.
        reason: String,
    },
    /// The download changed since its first verified download was recorded in the lock file.
    #[error(
        "{item} {version}: sha256 {actual} does not match {locked} recorded in {lock} \
         (if upstream re-published the release on purpose, delete that line and reinstall)"
    )]
    LockMismatch {
        /// Item name.
        item: &'static str,
        /// Version.
        version: String,
        /// The lock file.
        lock: PathBuf,
        /// The recorded digest.
        locked: String,
        /// What was downloaded.
        actual: String,
    },
    /// Nothing could verify this release.
    #[error("{item} {version}: no pinned sha256 and no checksum file; refusing an unverified download")]
    Unverifiable {
        /// Item name.
        item: &'static str,
        /// Version.
        version: String,
    },
    /// The archive did not contain what the pin says.
    #[error("{item}: {reason}")]
    Archive {
        /// Item name.
        item: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Writing into the tools directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be read or written.
    #[error(transparent)]
    Lock(Box<Error>),
}

impl From<InstallError> for Error {
    /// An unknown version is bad usage (exit 2); everything else is exit 3.
    fn from(e: InstallError) -> Error {
        match e {
            InstallError::UnknownVersion { .. } => Error::Usage(e.to_string()),
            InstallError::Lock(inner) => *inner,
            other => Error::infra("kyvtel tools install", other),
        }
    }
}

/// One manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Installed version.
    pub version: String,
    /// Downloaded from.
    pub url: String,
    /// sha256 of the download (archive or binary).
    pub download_sha256: String,
    /// sha256 of the installed file.
    pub file_sha256: String,
}

/// The tools directory's record of what it installed, keyed by [`manifest_key`].
pub type Manifest = BTreeMap<String, ManifestEntry>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io { path: path.to_path_buf(), source }
}

/// Reads the manifest; missing or unreadable means empty (everything is re-verified).
#[must_use]
pub fn read_manifest(dir: &ToolsDir) -> Manifest {
    std::fs::read(dir.bin.join(MANIFEST)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Downloads, verifies and installs pinned tools.
pub struct Installer<'a> {
    pins: &'a Pins,
    dir: ToolsDir,
    lock_path: PathBuf,
    source: &'a dyn Source,
    path_runner: Option<&'a dyn Runner>,
    /// Checksum files already fetched in the current [`Installer::install`] (one chart index serves
    /// every chart); emptied at the start of each call.
    checksum_files: std::cell::RefCell<BTreeMap<String, String>>,
}

impl<'a> Installer<'a> {
    /// An installer into `dir`, recording first-use digests in `lock_path`, downloading from `source`.
    pub fn new(pins: &'a Pins, dir: ToolsDir, lock_path: impl Into<PathBuf>, source: &'a dyn Source) -> Self {
        Installer {
            pins,
            dir,
            lock_path: lock_path.into(),
            source,
            path_runner: None,
            checksum_files: Default::default(),
        }
    }

    /// Probes tools on PATH with `runner` (which must resolve programs on PATH only); without it,
    /// PATH is never considered. Only the pinned default version of a tool may come from PATH.
    #[must_use]
    pub fn with_path_probe(mut self, runner: &'a dyn Runner) -> Self {
        self.path_runner = Some(runner);
        self
    }

    /// Installs every request, in order, stopping at the first failure.
    pub fn install(&self, requests: &[Request]) -> Result<Vec<Installed>, InstallError> {
        self.checksum_files.borrow_mut().clear();
        let mut manifest = read_manifest(&self.dir);
        let mut lock = Lock::read(&self.lock_path).map_err(|e| InstallError::Lock(Box::new(e)))?;
        let mut done = Vec::new();
        for req in requests {
            let outcome = self.one(req, &mut manifest, &mut lock)?;
            done.push(Installed { item: req.item, version: req.version.clone(), outcome });
        }
        Ok(done)
    }

    fn one(&self, req: &Request, manifest: &mut Manifest, lock: &mut Lock) -> Result<Outcome, InstallError> {
        let item = req.item;
        let pinned = item.pinned(self.pins);
        let release = pinned.release(&req.version).ok_or_else(|| InstallError::UnknownVersion {
            item: item.name(),
            version: req.version.clone(),
            known: pinned.known(),
        })?;
        let dest = self.dir.destination(item, self.pins, &req.version, release);
        let key = manifest_key(item, self.pins, &req.version);
        if self.up_to_date(item, &key, &req.version, release, &dest, manifest, lock)? {
            return Ok(Outcome::UpToDate { path: dest });
        }
        if !dest.exists()
            && req.version == pinned.default
            && let Some(version) = self.matching_on_path(item, &req.version)
        {
            return Ok(Outcome::OnPath { version });
        }
        let (bytes, sha256, verified_by) = self.download_verified(item, &req.version, release, lock)?;
        let contents = match &release.member {
            Some(member) => archive::extract_member(&bytes, member)
                .map_err(|reason| InstallError::Archive { item: item.name(), reason })?,
            None => bytes,
        };
        write_atomically(&dest, &contents, item.tool().is_some())?;
        manifest.insert(
            key,
            ManifestEntry {
                version: req.version.clone(),
                url: release.url.clone(),
                download_sha256: sha256.clone(),
                file_sha256: verify::sha256_hex(&contents),
            },
        );
        let manifest_path = self.dir.bin.join(MANIFEST);
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| InstallError::Io { path: manifest_path.clone(), source: std::io::Error::other(e) })?;
        write_atomically(&manifest_path, &json, false)?;
        Ok(Outcome::Installed { path: dest, sha256, verified_by })
    }

    #[allow(clippy::too_many_arguments)]
    fn up_to_date(
        &self,
        item: Item,
        key: &str,
        version: &str,
        release: &pins::Release,
        dest: &Path,
        manifest: &Manifest,
        lock: &mut Lock,
    ) -> Result<bool, InstallError> {
        let Some(entry) = manifest.get(key) else {
            return Ok(false);
        };
        if entry.version != version || entry.url != release.url {
            return Ok(false);
        }
        if release.sha256.as_deref().is_some_and(|pin| !pin.eq_ignore_ascii_case(&entry.download_sha256)) {
            return Ok(false);
        }
        let Ok(bytes) = std::fs::read(dest) else {
            return Ok(false);
        };
        if verify::sha256_hex(&bytes) != entry.file_sha256 {
            return Ok(false);
        }
        if release.sha256.is_none() {
            match lock.get(item.name(), version) {
                Some(locked) if locked.sha256 == entry.download_sha256 => {}
                Some(_) => return Ok(false),
                None => {
                    // The installed file was verified when it was downloaded (the manifest only
                    // records verified downloads): it is the first use; record it.
                    let entry = lock::Entry { sha256: entry.download_sha256.clone(), url: release.url.clone() };
                    lock.record(item.name(), version, entry).map_err(|e| InstallError::Lock(Box::new(e)))?;
                }
            }
        }
        Ok(true)
    }

    fn matching_on_path(&self, item: Item, version: &str) -> Option<String> {
        let runner = self.path_runner?;
        let cmd = version::probe(item.tool()?)?;
        let out = runner.run(&cmd, Duration::from_secs(30)).ok().filter(super::Output::success)?;
        let found = version::parse(cmd.tool, &out.stdout)?;
        version::same(&found, version).then_some(found)
    }

    fn fetch(&self, item: Item, url: &str) -> Result<Vec<u8>, InstallError> {
        self.source.fetch(url).map_err(|source| InstallError::Fetch { item: item.name(), source })
    }

    fn download_verified(
        &self,
        item: Item,
        version: &str,
        release: &pins::Release,
        lock: &mut Lock,
    ) -> Result<(Vec<u8>, String, Vec<String>), InstallError> {
        let bytes = self.fetch(item, &release.url)?;
        let actual = verify::sha256_hex(&bytes);
        let mut verified_by = Vec::new();
        if let Some(pin) = &release.sha256 {
            if !pin.eq_ignore_ascii_case(&actual) {
                return Err(InstallError::PinMismatch {
                    item: item.name(),
                    url: release.url.clone(),
                    expected: pin.to_ascii_lowercase(),
                    actual,
                });
            }
            verified_by.push("pinned sha256".to_string());
        }
        if let Some(checksum_url) = &release.checksum_url {
            let bad = |reason: String| InstallError::ChecksumFile {
                item: item.name(),
                checksum_url: checksum_url.clone(),
                reason,
            };
            let cached = self.checksum_files.borrow().get(checksum_url).cloned();
            let text = match cached {
                Some(text) => text,
                None => {
                    let bytes = self.fetch(item, checksum_url)?;
                    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
                    self.checksum_files.borrow_mut().insert(checksum_url.clone(), text.clone());
                    text
                }
            };
            let file_name = verify::file_name_of(&release.url);
            let expected = if verify::is_helm_index(checksum_url) {
                verify::expected_from_helm_index(&text, file_name, version)
            } else {
                verify::expected_from_checksum_file(&text, file_name)
            }
            .map_err(bad)?;
            if expected != actual {
                return Err(InstallError::ChecksumMismatch {
                    item: item.name(),
                    url: release.url.clone(),
                    checksum_url: checksum_url.clone(),
                    expected,
                    actual,
                });
            }
            verified_by.push(format!("checksum file {checksum_url}"));
        }
        // Without a pinned sha256, the lock file guards against a re-published release (the
        // checksum file could be re-published with it). A first use is recorded only once another
        // check passed, except for Telepresence, which publishes no checksums at all.
        if release.sha256.is_none() {
            match lock.get(item.name(), version) {
                Some(locked) if locked.sha256 == actual => {
                    verified_by.push(format!("{}", lock.path.display()));
                }
                Some(locked) => {
                    return Err(InstallError::LockMismatch {
                        item: item.name(),
                        version: version.to_string(),
                        lock: lock.path.clone(),
                        locked: locked.sha256.clone(),
                        actual,
                    });
                }
                None if !verified_by.is_empty() || item == Item::Telepresence => {
                    let entry = lock::Entry { sha256: actual.clone(), url: release.url.clone() };
                    lock.record(item.name(), version, entry).map_err(|e| InstallError::Lock(Box::new(e)))?;
                    verified_by.push(format!("first use, recorded in {}", lock.path.display()));
                }
                None => {}
            }
        }
        if verified_by.is_empty() {
            return Err(InstallError::Unverifiable { item: item.name(), version: version.to_string() });
        }
        Ok((bytes, actual, verified_by))
    }
}

fn write_atomically(dest: &Path, contents: &[u8], executable: bool) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    std::fs::write(&part, contents).map_err(io_err(&part))?;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode)).map_err(io_err(&part))?;
    std::fs::rename(&part, dest).map_err(io_err(dest))
}

/// The lock file used when none is named: `$KYVTEL_LOCK_FILE`, or `tools.lock` in the working
/// directory (the repository root under `make`).
#[must_use]
pub fn default_lock_path() -> PathBuf {
    match std::env::var_os("KYVTEL_LOCK_FILE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(lock::FILE_NAME),
    }
}

/// Provisions whatever of `requests` is missing, with the same code as `kyvtel tools install`:
/// the real HTTP source, PATH probing with a PATH-only [`super::runner::DuctRunner`].
///
/// For `cargo test --test e2e`: pass `ToolsDir::from_env()` and the repository's `tools.lock`.
/// Blocking; do not call from inside an async task.
pub fn ensure_tools(dir: &ToolsDir, lock_path: &Path, requests: &[Request]) -> Result<Vec<Installed>, Error> {
    let pins = Pins::builtin();
    let source = source::DefaultSource::default();
    let scratch = std::env::temp_dir().join(format!("kyvtel-probe-{}", std::process::id()));
    let probe = super::runner::DuctRunner::new(&scratch).with_tools_dir(None);
    let installer = Installer::new(&pins, dir.clone(), lock_path, &source).with_path_probe(&probe);
    let installed = installer.install(requests);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(installed?)
}
