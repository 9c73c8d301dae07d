//! Reading user input: every file a user gives kyvtel (scenarios and what they refer to, pods,
//! denial texts, CRDs, kind configs) and standard input go through here, so that one cap and one
//! set of refusals hold everywhere.
//!
//! - At most [`MAX_INPUT_BYTES`] are read; a larger input is refused, also an endless stdin.
//! - Only regular files are read: a FIFO, device, socket or directory is refused without waiting
//!   (the file is opened non-blocking, then checked on the open descriptor).
//! - The text must be UTF-8.
//!
//! Files kyvtel writes itself (reports, snapshots, tool output) have their own limits.

use std::fs::FileType;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The largest input kyvtel reads: 4 MiB (a scenario, a policy, a pod list or a denial text is a
/// few KiB; the Kyverno ClusterPolicy CRD, the largest real input, is 1.4 MiB).
pub const MAX_INPUT_BYTES: u64 = 4 * 1024 * 1024;

/// The cap as README and messages write it.
pub const MAX_INPUT_TEXT: &str = "4 MiB";

/// The name diagnostics use for standard input.
pub const STDIN: &str = "<stdin>";

/// Reads a user file: regular, at most [`MAX_INPUT_BYTES`], UTF-8. Errors are input errors on
/// `path` (exit 2).
pub fn read(path: &Path) -> Result<String> {
    let refuse = |why: String| Error::input(path, None, why);
    // Checked before opening too, so that a socket (which cannot be opened) is named as such.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.file_type().is_file()
    {
        return Err(refuse(not_regular(meta.file_type())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| refuse(io_reason(&e)))?;
    let meta = file.metadata().map_err(|e| refuse(io_reason(&e)))?;
    if !meta.file_type().is_file() {
        return Err(refuse(not_regular(meta.file_type())));
    }
    bounded(file).map_err(refuse)
}

/// Reads standard input up to [`MAX_INPUT_BYTES`].
pub fn read_stdin() -> Result<String> {
    bounded(std::io::stdin().lock()).map_err(|why| Error::input(Path::new(STDIN), None, why))
}

/// Reads `path`, or standard input for `-`; returns the name to use in diagnostics and the text.
pub fn read_arg(path: &Path) -> Result<(PathBuf, String)> {
    if path == Path::new("-") {
        Ok((PathBuf::from(STDIN), read_stdin()?))
    } else {
        Ok((path.to_path_buf(), read(path)?))
    }
}

/// Reads at most one byte past the cap, so that an endless source ends the read.
fn bounded(source: impl Read) -> std::result::Result<String, String> {
    let mut bytes = Vec::new();
    source.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("larger than the {MAX_INPUT_TEXT} input limit"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        format!("not UTF-8 text (the first invalid byte is on line {line})")
    })
}

fn not_regular(t: FileType) -> String {
    let what = if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    format!("not a regular file ({what})")
}

/// An I/O failure in words, without Rust's `Os { .. }` debug forms.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ if e.raw_os_error() == Some(libc::ENXIO) => "not a regular file (nothing to read from)".into(),
        _ if e.raw_os_error() == Some(libc::EISDIR) => "not a regular file (a directory)".into(),
        _ => {
            // `Display` of an OS error is "<text> (os error N)": keep the text.
            let s = e.to_string();
            format!("cannot read: {}", s.split(" (os error").next().unwrap_or(&s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_for_an_endless_source() {
        let e = bounded(std::io::repeat(b'a')).unwrap_err();
        assert_eq!(e, "larger than the 4 MiB input limit");
        assert_eq!(bounded(std::io::repeat(b'a').take(MAX_INPUT_BYTES)).unwrap().len() as u64, MAX_INPUT_BYTES);
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let e = bounded(&b"a\nb\n\xff"[..]).unwrap_err();
        assert_eq!(e, "not UTF-8 text (the first invalid byte is on line 3)");
    }

    #[test]
    fn special_files_are_named() {
        let e = read(Path::new("/dev/null")).unwrap_err().to_string();
        assert_eq!(e, "/dev/null: not a regular file (a character device)");
        let e = read(Path::new("/")).unwrap_err().to_string();
        assert_eq!(e, "/: not a regular file (a directory)");
        let e = read(Path::new("/no/such/file")).unwrap_err().to_string();
        assert_eq!(e, "/no/such/file: file not found");
    }
}
