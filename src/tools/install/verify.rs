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
}
