//! Detects the version of an installed tool from its own output.
//!
//! Formats (tolerant parsing; the first `vX.Y.Z`-like token wins):
//! - `kind version` prints `kind v0.33.0 go1.24 linux/amd64`;
//! - `helm version --template {{.Version}}` prints `v3.21.4`;
//! - `telepresence version` prints `Client: v2.32.1 ...` among other lines;
//! - `kubectl version --client` prints `Client Version: v1.35.8`;
//! - `kyverno version` prints `Version: 1.19.0` among other lines.

use std::time::Duration;

use super::{CommandLine, Runner, Tool};
use crate::scenario::version::Version;

/// The command that prints `tool`'s version.
pub fn command(tool: Tool) -> CommandLine {
    let c = CommandLine::new(tool);
    match tool {
        Tool::Helm => c.args(["version", "--template", "{{.Version}}"]),
        Tool::Kubectl => c.args(["version", "--client"]),
        Tool::Docker => c.args(["version", "--format", "{{.Client.Version}}"]),
        Tool::Sudo | Tool::Df => c.args(["--version"]),
        Tool::Kind | Tool::Telepresence | Tool::Kyverno => c.args(["version"]),
    }
}

/// Extracts the first version-looking token (`v1.2.3` or `1.2.3`) from `output`; for
/// Telepresence, the `Client` line is preferred.
pub fn parse(tool: Tool, output: &str) -> Option<Version> {
    let lines: Vec<&str> = if tool == Tool::Telepresence {
        let client: Vec<&str> = output.lines().filter(|l| l.trim_start().starts_with("Client")).collect();
        if client.is_empty() { output.lines().collect() } else { client }
    } else {
        output.lines().collect()
    };
    lines.iter().flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ',' || c == '"')).find_map(|tok| {
        let t = tok.trim_start_matches('v');
        (t.contains('.') && t.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .then(|| Version::parse(t.split(['-', '+']).next().unwrap_or(t)))
            .flatten()
    })
}

/// Runs the version command and parses its output. `Ok(None)` when the output has no version.
pub fn detect(runner: &dyn Runner, tool: Tool) -> Result<Option<Version>, super::RunError> {
    let out = runner.run(&command(tool), Duration::from_secs(20))?;
    Ok(parse(tool, &format!("{}\n{}", out.stdout, out.stderr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_tool() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(parse(Tool::Kind, "kind v0.33.0 go1.24.1 linux/amd64"), Some(v("0.33.0")));
        assert_eq!(parse(Tool::Helm, "v3.21.4"), Some(v("3.21.4")));
        assert_eq!(
            parse(Tool::Telepresence, "OSS Client : v2.32.1\nRoot Daemon: v2.31.0\n"),
            None.or(Some(v("2.32.1")))
        );
        assert_eq!(parse(Tool::Kubectl, "Client Version: v1.35.8\nKustomize Version: v5.7.1"), Some(v("1.35.8")));
        assert_eq!(parse(Tool::Kyverno, "Version: 1.19.0-rc.1\nTime: ..."), Some(v("1.19.0")));
        assert_eq!(parse(Tool::Kind, "command not understood"), None);
    }
}
