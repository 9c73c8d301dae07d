//! Where the local stack's pieces come from: the binaries built under the repository root
//! ([`OUT_DIR`]) and the charts in Go's module cache ([`module_cache`]), which hold the modules built.

use std::path::{Path, PathBuf};

/// Where built binaries go, under the repository root.
pub const OUT_DIR: &str = ".tools/local";

/// The traffic-manager binary's name for a Telepresence version.
#[must_use]
pub fn traffic_name(version: &str) -> String {
    format!("traffic-{version}")
}

/// Go's module cache: `$GOMODCACHE`, else `$GOPATH/pkg/mod`, else `~/go/pkg/mod` (read without running `go`).
#[must_use]
pub fn module_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("GOMODCACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(p) = std::env::var_os("GOPATH").filter(|d| !d.is_empty()) {
        let first = std::env::split_paths(&p).next().unwrap_or_default();
        return first.join("pkg/mod");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join("go/pkg/mod")
}

/// A module's extracted directory in the cache (`Foo` is escaped as `!foo`, as Go does).
#[must_use]
pub fn module_dir(cache: &Path, module: &str, version: &str) -> PathBuf {
    let mut escaped = String::new();
    for c in module.chars() {
        if c.is_ascii_uppercase() {
            escaped.push('!');
            escaped.push(c.to_ascii_lowercase());
        } else {
            escaped.push(c);
        }
    }
    cache.join(format!("{escaped}@{version}"))
}

/// The Telepresence chart directory inside its module.
#[must_use]
pub fn telepresence_chart_dir(module_dir: &Path) -> PathBuf {
    let oss = module_dir.join("charts/telepresence-oss");
    if oss.is_dir() { oss } else { module_dir.join("charts/telepresence") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_are_escaped_as_go_does() {
        assert_eq!(
            module_dir(Path::new("/c"), "github.com/BurntSushi/toml", "v1.0.0"),
            PathBuf::from("/c/github.com/!burnt!sushi/toml@v1.0.0")
        );
    }
}
