//! sha256 digests and upstream checksum files.

/// The lower-case hex sha256 of `bytes` (ring's implementation).
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is a 64-character hex sha256.
#[must_use]
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The digest a checksum file gives for `file_name`.
///
/// Accepted formats, as published by the pinned tools:
/// - `sha256sum` lines, `<hex>  <name>` (kind `.sha256sum`, helm `.sha256sum`, kyverno
///   `checksums.txt`), where `<name>` may carry sha256sum's binary-mode `*` prefix;
/// - a bare `<hex>` as the only content (kubectl `.sha256`).
///
/// Errors name what was wrong: no line for the file, or a malformed digest.
pub fn expected_from_checksum_file(contents: &str, file_name: &str) -> Result<String, String> {
    let lines: Vec<&str> = contents.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if let [only] = lines.as_slice()
        && !only.contains(char::is_whitespace)
    {
        return if is_sha256(only) {
            Ok(only.to_ascii_lowercase())
        } else {
            Err(format!("checksum file holds `{only}`, not a sha256"))
        };
    }
    for line in &lines {
        let mut parts = line.split_whitespace();
        let (Some(hex), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        if name.trim_start_matches('*') == file_name {
            return if is_sha256(hex) {
                Ok(hex.to_ascii_lowercase())
            } else {
                Err(format!("checksum file has a malformed digest for {file_name}: `{hex}`"))
            };
        }
    }
    Err(format!("checksum file has no entry for {file_name}"))
}

/// Whether `checksum_url` names a Helm chart repository index (`.../index.yaml`) rather than a
/// `sha256sum`-style checksum file.
#[must_use]
pub fn is_helm_index(checksum_url: &str) -> bool {
    file_name_of(checksum_url) == "index.yaml"
}

/// The parts of a Helm repository index kyvtel reads; every other field is ignored.
// upstream: helm/helm pkg/repo/index.go@01e913a7ea0f (`IndexFile.Entries map[string]ChartVersions`
// under `entries`; each `ChartVersion` carries the chart metadata (`name`, `version`), `urls` and
// `digest`, the sha256 hex of the packaged `.tgz` from provenance.DigestFile).
#[derive(Debug, serde::Deserialize)]
struct HelmIndex {
    entries: std::collections::BTreeMap<String, Vec<Option<HelmChartVersion>>>,
}

#[derive(Debug, serde::Deserialize)]
struct HelmChartVersion {
    version: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
}

/// The digest a Helm repository index (`index.yaml`) gives for the chart file `file_name` at
/// `version`.
///
/// The chart name is the file name without `-<version>.tgz` (Helm's packaging convention); the entry
/// is the one under `entries.<chart>` whose `version` equals `version`. If the file name does not
/// follow the convention, any entry with that `version` whose `urls` end in `file_name` is used.
///
/// Errors name what was wrong: not a Helm index, chart or version missing, no or malformed digest.
pub fn expected_from_helm_index(contents: &str, file_name: &str, version: &str) -> Result<String, String> {
    // Real indexes are large (every chart version with its annotations): raise the node and event
    // limits far above serde-saphyr's defaults, which are sized for configuration files.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_events: 50_000_000, max_nodes: 20_000_000 },
    };
    let index: HelmIndex = serde_saphyr::from_str_with_options(contents, options)
        .map_err(|e| format!("not a Helm repository index: {}", e.to_string().lines().next().unwrap_or("")))?;
    let by_name = file_name.strip_suffix(&format!("-{version}.tgz"));
    let url_matches = |v: &HelmChartVersion| v.urls.iter().any(|u| file_name_of(u) == file_name);
    let found = match by_name.and_then(|chart| index.entries.get(chart).map(|vs| (chart, vs))) {
        Some((chart, versions)) => versions
            .iter()
            .flatten()
            .find(|v| v.version == version)
            .ok_or_else(|| format!("the index lists no version {version} of chart {chart}"))?,
        None => index
            .entries
            .values()
            .flatten()
            .flatten()
            .find(|v| v.version == version && url_matches(v))
            .ok_or_else(|| format!("the index has no chart entry for {file_name}"))?,
    };
    match found.digest.as_deref() {
        Some(d) if is_sha256(d) => Ok(d.to_ascii_lowercase()),
        Some(d) => Err(format!("the index has a malformed digest for {file_name}: `{d}`")),
        None => Err(format!("the index has no digest for {file_name}")),
    }
}

/// The last path segment of a URL: the published file name.
#[must_use]
pub fn file_name_of(url: &str) -> &str {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    no_query.rsplit('/').next().unwrap_or(no_query)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "61f88ab166748cb19604d7884cb100ae9ccb13804ddeb98e08af167eacbb6a14";

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn checksum_formats() {
        assert_eq!(
            expected_from_checksum_file(&format!("{HEX}  kind-linux-amd64\n"), "kind-linux-amd64").unwrap(),
            HEX
        );
        assert_eq!(expected_from_checksum_file(&format!("{HEX}\n"), "kubectl").unwrap(), HEX);
        let many = format!("{}  other.tar.gz\n{HEX} *kyverno-cli.tar.gz\n", "0".repeat(64));
        assert_eq!(expected_from_checksum_file(&many, "kyverno-cli.tar.gz").unwrap(), HEX);
        assert!(expected_from_checksum_file(&many, "missing").unwrap_err().contains("no entry"));
        assert!(expected_from_checksum_file("nothex\n", "x").unwrap_err().contains("not a sha256"));
        assert!(expected_from_checksum_file("zz  x\n", "x").unwrap_err().contains("malformed"));
    }

    #[test]
    fn file_names() {
        assert_eq!(
            file_name_of("https://get.helm.sh/helm-v3.21.4-linux-amd64.tar.gz"),
            "helm-v3.21.4-linux-amd64.tar.gz"
        );
        assert_eq!(file_name_of("http://127.0.0.1:1/a/kind?x=1"), "kind");
    }

    fn helm_index(entries: &str) -> String {
        format!("apiVersion: v1\nentries:\n{entries}generated: \"2026-01-01T00:00:00Z\"\n")
    }

    #[test]
    fn helm_index_digest_by_chart_and_version() {
        let index = helm_index(&format!(
            "  kyverno:\n  - name: kyverno\n    version: 3.9.0\n    digest: {HEX}\n    urls:\n    - https://kyverno.github.io/kyverno/kyverno-3.9.0.tgz\n    annotations:\n      artifacthub.io/changes: |\n        - kind: added\n          description: x\n  - name: kyverno\n    version: 3.8.2\n    digest: {}\n    urls: [kyverno-3.8.2.tgz]\n  kyverno-policies:\n  - name: kyverno-policies\n    version: 3.9.0\n    digest: {}\n    urls: [kyverno-policies-3.9.0.tgz]\n  legacy:\n  - version: 1.0\n    created: 2019-01-01T00:00:00Z\n  other:\n  - version: 1.0.0\n    digest: {}\n    urls: [https://m.example/charts/renamed.tgz]\n",
            "1".repeat(64),
            "2".repeat(64),
            "3".repeat(64)
        ));
        assert_eq!(expected_from_helm_index(&index, "kyverno-3.9.0.tgz", "3.9.0").unwrap(), HEX);
        assert_eq!(expected_from_helm_index(&index, "kyverno-3.8.2.tgz", "3.8.2").unwrap(), "1".repeat(64));
        assert_eq!(expected_from_helm_index(&index, "kyverno-policies-3.9.0.tgz", "3.9.0").unwrap(), "2".repeat(64));
        // A file name off the convention is found by its URL.
        assert_eq!(expected_from_helm_index(&index, "renamed.tgz", "1.0.0").unwrap(), "3".repeat(64));
        // Versions that YAML would read as numbers are compared as written.
        let legacy = expected_from_helm_index(&index, "legacy-1.0.tgz", "1.0").unwrap_err();
        assert!(legacy.contains("no digest for legacy-1.0.tgz"), "{legacy}");
        let missing = expected_from_helm_index(&index, "kyverno-3.7.2.tgz", "3.7.2").unwrap_err();
        assert!(missing.contains("no version 3.7.2 of chart kyverno"), "{missing}");
        let other = expected_from_helm_index(&index, "cilium-1.0.0.tgz", "1.0.0").unwrap_err();
        assert!(other.contains("no chart entry for cilium-1.0.0.tgz"), "{other}");
    }

    #[test]
    fn helm_index_errors() {
        let bad_digest = helm_index("  kyverno:\n  - version: 3.9.0\n    digest: nothex\n");
        let e = expected_from_helm_index(&bad_digest, "kyverno-3.9.0.tgz", "3.9.0").unwrap_err();
        assert!(e.contains("malformed digest"), "{e}");
        let no_digest = helm_index("  kyverno:\n  - version: 3.9.0\n");
        let e = expected_from_helm_index(&no_digest, "kyverno-3.9.0.tgz", "3.9.0").unwrap_err();
        assert!(e.contains("no digest"), "{e}");
        for malformed in ["entries: [1, 2", "just text", "apiVersion: v1\n"] {
            let e = expected_from_helm_index(malformed, "kyverno-3.9.0.tgz", "3.9.0").unwrap_err();
            assert!(e.starts_with("not a Helm repository index"), "{malformed}: {e}");
        }
        assert!(is_helm_index("https://kyverno.github.io/kyverno/index.yaml"));
        assert!(!is_helm_index("https://get.helm.sh/helm.tar.gz.sha256sum"));
    }

    #[test]
    fn kind_helm_and_kubectl_are_pinned_by_sha256_and_have_a_checksum_file() {
        let p = crate::scenario::pins::Pins::builtin();
        for (name, t) in [("kind", &p.kind), ("helm", &p.helm), ("kubectl", &p.kubectl)] {
            for (version, r) in &t.releases {
                let pin = r.sha256.as_deref().unwrap_or_default();
                assert!(is_sha256(pin), "{name} {version}: sha256 {pin:?}");
                assert!(r.checksum_url.is_some(), "{name} {version}: no upstream checksum file");
            }
        }
    }
}
