//! Property tests of the parsers that read user input: the duration parser, the scenario loader and
//! the `explain` parser never panic or hang, whatever they are given. Bounded: a fixed number of
//! cases, no persistence files, a few seconds in all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kyvtel::duration;
use kyvtel::outcome::denial;
use kyvtel::scenario::{Confinement, load_confined};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documented recipe with every path made absolute, so that a mutated copy loads from anywhere.
fn recipe_text() -> String {
    let scenarios = root().join("scenarios");
    std::fs::read_to_string(scenarios.join("documented-recipe.yaml"))
        .unwrap()
        .replace("../kind-config/", &format!("{}/kind-config/", root().display()))
        .replace("policies/", &format!("{}/policies/", scenarios.display()))
        .replace("values/", &format!("{}/values/", scenarios.display()))
        .replace("workloads/", &format!("{}/workloads/", scenarios.display()))
}

fn real_denial() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/denials/real-1.19.1/clusterpolicy-pattern-pod-create.txt"))
        .unwrap()
}

/// `text` with `edits` applied: each (position, replacement) replaces one character.
fn mutate(text: &str, edits: &[(usize, char)]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, c) in edits {
        if chars.is_empty() {
            break;
        }
        let i = at % chars.len();
        chars[i] = *c;
    }
    chars.into_iter().collect()
}

fn load_text(dir: &Path, text: &str) {
    let file = dir.join("scenario.yaml");
    std::fs::write(&file, text).unwrap();
    let _ = load_confined(&file, &Confinement { root: None, allow_outside_root: true });
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_duration_parser_never_panics(s in "\\PC{0,40}") {
        let _ = duration::parse(&s);
    }

    #[test]
    fn a_parsed_duration_is_positive_and_at_most_the_maximum(
        n in any::<u64>(),
        unit in prop::sample::select(vec!["ms", "s", "m", "h", "d", "", "µs"]),
    ) {
        if let Ok(d) = duration::parse(&format!("{n}{unit}")) {
            prop_assert!(d > Duration::ZERO && d <= duration::MAX);
            let _ = duration::deadline(d);
        }
    }

    #[test]
    fn the_explain_parser_never_panics_on_any_text(s in any::<String>()) {
        let _ = denial::parse(&s);
    }

    #[test]
    fn the_explain_parser_never_panics_on_a_mutated_real_denial(
        edits in prop::collection::vec((any::<usize>(), any::<char>()), 1..12),
    ) {
        let _ = denial::parse(&mutate(&real_denial(), &edits));
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn the_scenario_loader_never_panics_on_a_mutated_recipe(
        edits in prop::collection::vec((any::<usize>(), prop::sample::select(vec![' ', ':', '-', '\n', '"', '\'', '[', '{', '9', 'x', '&', '*', '\t', '\u{0}']) ), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        load_text(dir.path(), &mutate(&recipe_text(), &edits));
    }

    #[test]
    fn the_scenario_loader_never_panics_on_any_text(s in any::<String>()) {
        let dir = tempfile::tempdir().unwrap();
        load_text(dir.path(), &s);
    }
}

#[test]
fn the_unmutated_recipe_loads_from_anywhere() {
    // The mutation tests start from a scenario that loads: otherwise they would test nothing.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenario.yaml");
    std::fs::write(&file, recipe_text()).unwrap();
    let loaded = load_confined(&file, &Confinement { root: None, allow_outside_root: true });
    assert!(loaded.is_ok(), "{:?}", loaded.err().map(|e| e.to_string()));
}
