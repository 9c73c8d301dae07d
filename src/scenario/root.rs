//! The scenario root: the directory every path in a scenario must stay inside, so that a scenario
//! from a bug report cannot make kyvtel read (or apply to a cluster) files from elsewhere.
//!
//! The root is `--root DIR` when given, else the nearest ancestor of the scenario file that holds
//! `kind-config/` or `.git` (the repository a catalog scenario lives in), else the scenario file's
//! own directory. A path is refused when it is absolute, when `..` leads out of the root, or when
//! it resolves through a symlink to a place outside the root; `--allow-outside-root` lifts all three.

use std::path::{Component, Path, PathBuf};

/// How a scenario's paths are confined (the `--root` and `--allow-outside-root` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The root given with `--root`; `None` finds it from the scenario file.
    pub root: Option<PathBuf>,
    /// Accept paths outside the root.
    pub allow_outside_root: bool,
}

/// The root of one scenario file.
#[derive(Debug, Clone)]
pub struct Root {
    /// The root directory, symlinks resolved; `None` when paths are not confined.
    dir: Option<PathBuf>,
    /// The scenario's directory as given (what resolved paths are joined to).
    scenario_dir: PathBuf,
    /// The same directory, absolute and with symlinks resolved (what the checks compare).
    base: PathBuf,
}

impl Root {
    /// The root for the scenario at `scenario` under `how`; an explicit root that does not exist
    /// is an error message.
    pub fn of(scenario: &Path, how: &Confinement) -> Result<Root, String> {
        let scenario_dir = scenario.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = absolute(&scenario_dir);
        let base = base.canonicalize().unwrap_or(base);
        let dir = if how.allow_outside_root {
            None
        } else if let Some(r) = &how.root {
            let dir = r.canonicalize().map_err(|_| format!("--root {}: no such directory", r.display()))?;
            if !dir.is_dir() {
                return Err(format!("--root {}: not a directory", r.display()));
            }
            Some(dir)
        } else {
            let marked = base.ancestors().find(|a| a.join("kind-config").is_dir() || a.join(".git").exists());
            Some(marked.unwrap_or(&base).to_path_buf())
        };
        Ok(Root { dir, scenario_dir, base })
    }

    /// `written` (a path as the scenario writes it) resolved against the scenario's directory; an
    /// error message when it leaves the root.
    pub fn resolve(&self, written: &Path) -> Result<PathBuf, String> {
        let joined = self.scenario_dir.join(written);
        let Some(root) = &self.dir else { return Ok(joined) };
        let shown = written.display();
        let allow = "(pass --allow-outside-root to accept it, or --root DIR to widen the root)";
        if written.is_absolute() {
            return Err(format!("`{shown}` is an absolute path: write it relative to the scenario file {allow}"));
        }
        if !normalize(&self.base.join(written)).starts_with(root) {
            return Err(format!("`{shown}` is outside the scenario root {} {allow}", root.display()));
        }
        if let Ok(real) = joined.canonicalize()
            && !real.starts_with(root)
        {
            return Err(format!(
                "`{shown}` resolves outside the scenario root {} (to {}, through a symlink) {allow}",
                root.display(),
                real.display()
            ));
        }
        Ok(joined)
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(if p.as_os_str().is_empty() { Path::new(".") } else { p }).unwrap_or_else(|_| p.to_path_buf())
}

/// `p` with `.` and `..` removed lexically (`..` at the top stays at the top).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_steps_inside_the_root_are_fine_and_out_of_it_refused() {
        let at = |dir: Option<&str>, scenario_dir: &str| Root {
            dir: dir.map(PathBuf::from),
            scenario_dir: PathBuf::from(scenario_dir),
            base: PathBuf::from(scenario_dir),
        };
        let root = at(Some("/r"), "/r/scenarios");
        assert!(root.resolve(Path::new("../kind-config/x.yaml")).is_ok());
        let e = root.resolve(Path::new("../../etc/passwd")).unwrap_err();
        assert!(e.starts_with("`../../etc/passwd` is outside the scenario root /r"), "{e}");
        let e = at(Some("/r"), "/r").resolve(Path::new("/etc/passwd")).unwrap_err();
        assert!(e.starts_with("`/etc/passwd` is an absolute path"), "{e}");
        assert!(at(None, "/r").resolve(Path::new("/etc/passwd")).is_ok());
    }

    #[test]
    fn normalize_clamps_at_the_top() {
        assert_eq!(normalize(Path::new("/a/b/../../../../c")), PathBuf::from("/c"));
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
