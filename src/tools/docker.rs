//! Docker command lines. kyvtel only pulls images on the host, once per run, so that kind can
//! preload them into the cluster (`kind load docker-image`) instead of every node pulling them.

use super::{CommandLine, Tool};

/// `docker pull IMG` (images are pulled once on the host, then loaded into kind).
pub fn pull(image: &str) -> CommandLine {
    CommandLine::new(Tool::Docker).args(["pull", image])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_names_the_image_as_given() {
        let c = pull("ghcr.io/telepresenceio/tel2:2.32.1");
        assert_eq!(c.tool, Tool::Docker);
        assert_eq!(c.args, ["pull", "ghcr.io/telepresenceio/tel2:2.32.1"]);
    }
}
