//! The members of a zip archive read into memory, so that the evidence bundle can redact each one
//! instead of keeping the archive (`telepresence gather-logs` writes a zip of log files).
//!
//! Nothing is extracted to disk here. A member is left out, with the reason, when its name would
//! leave the archive's root, when it is encrypted, a symlink, larger than the limit, or cannot be
//! decompressed (only stored and deflated members are supported).

use std::io::{Cursor, Read};

/// The largest member read, in bytes; a larger one is listed as left out. Telepresence's logs are
/// far smaller; the limit only bounds memory on a corrupt or hostile archive.
pub const MEMBER_LIMIT: u64 = 64 * 1024 * 1024;

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its path inside the archive, `/`-separated, relative, without `..`.
    pub path: String,
    /// Its uncompressed contents.
    pub contents: Vec<u8>,
}

/// A member that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// Its name as the archive gives it (possibly unsafe; for the record only).
    pub path: String,
    /// Its uncompressed size as the archive declares it.
    pub bytes: u64,
    /// Why it was not read.
    pub reason: String,
}

/// What an archive held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// The files read, in archive order (directories are not listed).
    pub read: Vec<Member>,
    /// The files left out.
    pub left_out: Vec<LeftOut>,
}

/// The archive as a whole could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not a readable zip archive: {0}")]
pub struct NotAZip(#[from] zip::result::ZipError);

/// Reads every file of the zip archive `bytes`, each up to `limit` bytes.
pub fn read(bytes: &[u8], limit: u64) -> Result<Members, NotAZip> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
    let mut out = Members::default();
    for i in 0..archive.len() {
        // A name that cannot be decoded is recorded by its index.
        let raw_name =
            archive.name_for_index(i).and_then(Result::ok).map_or_else(|| format!("#{i}"), |n| n.into_owned());
        let mut file = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                out.left_out.push(LeftOut { path: raw_name, bytes: 0, reason: format!("cannot be read: {e}") });
                continue;
            }
        };
        if file.is_dir() {
            continue;
        }
        let declared = file.size();
        let left_out = |reason: String| LeftOut { path: raw_name.clone(), bytes: declared, reason };
        let Some(path) = file.enclosed_name().map(|p| p.to_string_lossy().replace('\\', "/")) else {
            out.left_out.push(left_out("its name leaves the archive's root".into()));
            continue;
        };
        if file.is_symlink() {
            out.left_out.push(left_out("a symbolic link".into()));
            continue;
        }
        if file.encrypted() {
            out.left_out.push(left_out("encrypted".into()));
            continue;
        }
        if declared > limit {
            out.left_out.push(left_out(format!("larger than {limit} bytes")));
            continue;
        }
        // The declared size may lie: read at most one byte past the limit to notice.
        let mut contents = Vec::new();
        match (&mut file).take(limit + 1).read_to_end(&mut contents) {
            Ok(n) if n as u64 > limit => out.left_out.push(left_out(format!("larger than {limit} bytes"))),
            Ok(_) => out.read.push(Member { path, contents }),
            Err(e) => out.left_out.push(left_out(format!("cannot be decompressed: {e}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write as _;

    use super::*;

    /// A deflated zip archive of `files` (name, contents); directories end in `/`, and a name
    /// `link -> target` is a symbolic link.
    pub(crate) fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, contents) in files {
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else if let Some((link, target)) = name.split_once(" -> ") {
                w.add_symlink(link, target, opts).unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(contents).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn reads_files_in_order_and_skips_directories() {
        let zip = zip_of(&[("connector.log", b"hello\n"), ("pods/", b""), ("pods/manager.log", b"x".as_slice())]);
        let m = read(&zip, MEMBER_LIMIT).unwrap();
        assert_eq!(
            m.read,
            [
                Member { path: "connector.log".into(), contents: b"hello\n".to_vec() },
                Member { path: "pods/manager.log".into(), contents: b"x".to_vec() },
            ]
        );
        assert!(m.left_out.is_empty(), "{:?}", m.left_out);
    }

    #[test]
    fn leaves_out_escaping_names_and_members_over_the_limit() {
        let zip = zip_of(&[
            ("../../etc/passwd", b"root"),
            ("/abs.log", b"a"),
            ("big.log", &[b'x'; 11]),
            ("home -> /root", b""),
            ("ok", b"1"),
        ]);
        let m = read(&zip, 10).unwrap();
        assert_eq!(m.read.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["abs.log", "ok"]);
        let left: Vec<(&str, u64)> = m.left_out.iter().map(|l| (l.path.as_str(), l.bytes)).collect();
        assert_eq!(left, [("../../etc/passwd", 4), ("big.log", 11), ("home", 5)], "{:?}", m.left_out);
        assert!(m.left_out[0].reason.contains("leaves the archive"), "{:?}", m.left_out[0]);
        assert!(m.left_out[1].reason.contains("larger than 10 bytes"), "{:?}", m.left_out[1]);
        assert_eq!(m.left_out[2].reason, "a symbolic link");
    }

    #[test]
    fn a_file_that_is_no_zip_is_an_error() {
        let err = read(b"telepresence: command failed", MEMBER_LIMIT).unwrap_err();
        assert!(err.to_string().starts_with("not a readable zip archive"), "{err}");
    }
}
