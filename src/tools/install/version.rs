//! Reading a tool's version from its own output, to decide whether a tool on PATH matches the pin.
//!
//! Each parser is tolerant: it looks for the documented line or field, then for the first
//! `[v]MAJOR.MINOR.PATCH` token in it. Versions compare without the leading `v`.

use super::super::{CommandLine, Tool};

/// The command that prints `tool`'s version, when kyvtel knows one.
// upstream: kubernetes-sigs/kind pkg/cmd/kind/version/version.go (`kind v<semver> <go> <os>/<arch>`).
// upstream: helm/helm cmd/helm/version.go@v3 (`--template` renders the BuildInfo; `.Version` is `v3.x.y`).
// upstream: kubernetes/kubectl pkg/cmd/version/version.go (`-o json`: `{"clientVersion":{"gitVersion":"v1.x.y"}}`).
// upstream: telepresenceio/telepresence pkg/client/cli/cmd/version.go@v2.20.2 (first key/value line is the
// client, `OSS Client : v2.x.y`; pkg/client/cli/main.go sets DisplayName "OSS Client").
#[must_use]
pub fn probe(tool: Tool) -> Option<CommandLine> {
    let args: &[&str] = match tool {
        Tool::Kind => &["version"],
        Tool::Helm => &["version", "--template", "{{.Version}}"],
        Tool::Kubectl => &["version", "--client", "-o", "json"],
        Tool::Telepresence => &["version"],
        Tool::Docker | Tool::Kyverno | Tool::Sudo | Tool::Df => return None,
    };
    Some(CommandLine::new(tool).args(args.iter().copied()))
}

/// The version in `stdout` of [`probe`]'s command, without a leading `v`.
#[must_use]
pub fn parse(tool: Tool, stdout: &str) -> Option<String> {
    match tool {
        Tool::Kubectl => {
            let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
            first_semver(v.pointer("/clientVersion/gitVersion")?.as_str()?)
        }
        Tool::Telepresence => {
            let line = stdout.lines().find(|l| l.split(':').next().is_some_and(|k| k.contains("Client")))?;
            first_semver(line.split_once(':')?.1)
        }
        Tool::Kind | Tool::Helm => first_semver(stdout.lines().find(|l| !l.trim().is_empty())?),
        Tool::Docker | Tool::Kyverno | Tool::Sudo | Tool::Df => None,
    }
}

/// The first `[v]N.N.N[-pre]` token of `s`, without the `v`.
#[must_use]
pub fn first_semver(s: &str) -> Option<String> {
    s.split(|c: char| c.is_whitespace() || c == ',' || c == '"').find_map(|tok| {
        let t = tok.strip_prefix('v').unwrap_or(tok);
        let core = t.split(['-', '+']).next()?;
        let parts: Vec<&str> = core.split('.').collect();
        (parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
            .then(|| t.to_string())
    })
}

/// `v1.2.3` and `1.2.3` are the same version.
#[must_use]
pub fn same(a: &str, b: &str) -> bool {
    a.trim_start_matches('v') == b.trim_start_matches('v')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Tool::Kind, "kind v0.33.0 go1.24.6 linux/amd64\n", Some("0.33.0"))]
    #[case(Tool::Kind, "0.33.0\n", Some("0.33.0"))]
    #[case(Tool::Helm, "v3.21.4", Some("3.21.4"))]
    #[case(
        Tool::Kubectl,
        r#"{"clientVersion":{"major":"1","gitVersion":"v1.35.8"},"kustomizeVersion":"v5.7.1"}"#,
        Some("1.35.8")
    )]
    #[case(Tool::Telepresence, "OSS Client         : v2.32.1\nRoot Daemon        : not running\n", Some("2.32.1"))]
    #[case(Tool::Telepresence, "Client: v2.22.6\n", Some("2.22.6"))]
    #[case(Tool::Telepresence, "Root Daemon : v2.32.1\n", None)]
    #[case(Tool::Kubectl, "Client Version: v1.35.8", None)]
    #[case(Tool::Helm, "", None)]
    fn parses(#[case] tool: Tool, #[case] out: &str, #[case] want: Option<&str>) {
        assert_eq!(parse(tool, out).as_deref(), want);
    }

    #[test]
    fn versions_compare_without_v() {
        assert!(same("v0.33.0", "0.33.0"));
        assert!(!same("v0.33.1", "0.33.0"));
    }
}
