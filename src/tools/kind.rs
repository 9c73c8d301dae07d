//! kind command lines (facts.md §2). `--kubeconfig` is passed to `create` **and** `delete`;
//! without it kind edits `$KUBECONFIG` or `~/.kube/config`.

use std::path::Path;

use super::{CommandLine, Tool};

/// The control-plane wait of `kind create cluster` (facts.md §2: `--wait` waits only for it).
pub const CREATE_WAIT: &str = "120s";

/// `kind create cluster --name N --config FILE --image IMG@sha256:... --kubeconfig F --wait 120s`.
pub fn create(name: &str, config: &Path, image: &str, kubeconfig: &Path, wait: &str) -> CommandLine {
    CommandLine::new(Tool::Kind).args(["create", "cluster", "--name", name]).args([
        "--config".to_string(),
        config.display().to_string(),
        "--image".into(),
        image.into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--wait".into(),
        wait.into(),
    ])
}

/// `kind delete cluster --name N --kubeconfig F`.
pub fn delete(name: &str, kubeconfig: &Path) -> CommandLine {
    CommandLine::new(Tool::Kind)
        .args(["delete", "cluster", "--name", name, "--kubeconfig"])
        .args([kubeconfig.display().to_string()])
}

/// `kind load image-archive ARCHIVE --name N` (an archive from `docker save`; see [`super::docker`]).
// upstream: kubernetes-sigs/kind pkg/cmd/kind/load/image-archive/image-archive.go (`image-archive
// <IMAGE.tar>`, `--name`); facts.md §2.
pub fn load_image_archive(name: &str, archive: &Path) -> CommandLine {
    CommandLine::new(Tool::Kind)
        .args(["load", "image-archive"])
        .args([archive.display().to_string()])
        .args(["--name", name])
}

/// `kind export logs DIR --name N`.
pub fn export_logs(name: &str, dir: &Path) -> CommandLine {
    CommandLine::new(Tool::Kind).args(["export", "logs"]).args([dir.display().to_string()]).args(["--name", name])
}

/// `kind get kubeconfig --name N`.
pub fn get_kubeconfig(name: &str) -> CommandLine {
    CommandLine::new(Tool::Kind).args(["get", "kubeconfig", "--name", name])
}
