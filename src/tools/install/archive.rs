//! Extracting one member from a `.tar.gz` release archive (flate2 + tar, pure Rust).

use std::io::Read as _;

/// The bytes of `member` inside the gzip-compressed tar `archive`.
///
/// `member` is compared with each entry's path after dropping a leading `./`.
pub fn extract_member(archive: &[u8], member: &str) -> Result<Vec<u8>, String> {
    let want = member.trim_start_matches("./");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let entries = tar.entries().map_err(|e| format!("not a tar.gz archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt archive: {e}"))?;
        let path = entry.path().map_err(|e| format!("corrupt archive: {e}"))?;
        let name = path.to_string_lossy();
        if name.trim_start_matches("./") == want && entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).map_err(|e| format!("reading {member}: {e}"))?;
            return Ok(out);
        }
    }
    Err(format!("archive has no member `{member}`"))
}

/// A `.tar.gz` holding the given files (used by tests to build fixtures).
pub fn build_tar_gz(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, name, *data)?;
    }
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_member() {
        let tgz = build_tar_gz(&[("linux-amd64/README.md", b"readme"), ("linux-amd64/helm", b"ELF-helm")]).unwrap();
        assert_eq!(extract_member(&tgz, "linux-amd64/helm").unwrap(), b"ELF-helm");
        assert!(extract_member(&tgz, "helm").unwrap_err().contains("no member"));
        assert!(extract_member(b"plain bytes", "x").is_err());
    }
}
