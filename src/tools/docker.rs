//! Docker command lines. kyvtel pulls images on the host, once per run, and saves each into an
//! archive in the run directory that `kind load image-archive` puts into the cluster.
//!
//! Why an archive: Docker 29 (GitHub's ubuntu runners) defaults to the containerd image store, with
//! which `kind load docker-image` fails (kind issue 3795; facts.md §2). Letting the node pull would
//! work too, but pulls again in every cluster, hits registry rate limits, and turns a pull failure
//! into a pod that never starts; a pull on the host fails at once, with Docker's own message.
//! `--platform` keeps one platform in the archive: with the containerd store, `docker save` of a
//! multi-platform image otherwise exports every platform's manifest, whose content may be missing.

use std::path::Path;

use super::{CommandLine, Tool};

/// The platform of kind's nodes on the runners kyvtel targets.
pub const PLATFORM: &str = "linux/amd64";

/// `docker pull --platform linux/amd64 IMG`.
pub fn pull(image: &str) -> CommandLine {
    CommandLine::new(Tool::Docker).args(["pull", "--platform", PLATFORM, image])
}

/// `docker save --platform linux/amd64 -o ARCHIVE IMG`.
// upstream: docker/cli cli/command/image/save.go (v28+: `--platform`, `-o/--output`).
pub fn save(image: &str, archive: &Path) -> CommandLine {
    CommandLine::new(Tool::Docker)
        .args(["save", "--platform", PLATFORM, "-o"])
        .args([archive.display().to_string()])
        .args([image])
}

/// The archive of `image` under `dir`: the reference with every character outside `[A-Za-z0-9._-]`
/// replaced by `_`.
#[must_use]
pub fn archive_name(dir: &Path, image: &str) -> std::path::PathBuf {
    let safe: String =
        image.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect();
    dir.join(format!("{safe}.tar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_names_the_image_as_given() {
        let c = pull("ghcr.io/telepresenceio/tel2:2.32.1");
        assert_eq!(c.tool, Tool::Docker);
        assert_eq!(c.args, ["pull", "--platform", "linux/amd64", "ghcr.io/telepresenceio/tel2:2.32.1"]);
    }

    #[test]
    fn an_archive_name_keeps_no_path_separator() {
        let f = archive_name(Path::new("/r/images"), "registry.k8s.io/e2e-test-images/agnhost:2.53@sha256:ab");
        assert_eq!(f, Path::new("/r/images/registry.k8s.io_e2e-test-images_agnhost_2.53_sha256_ab.tar"));
    }
}
