//! YAML loading with source locations.
//!
//! serde-saphyr decodes (and locates its own errors); a second pass over granit-parser events
//! (the parser serde-saphyr itself uses) records where every node sits, so that checks made after
//! decoding (schema, references, versions) can still point at `file:line:column`.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser, ScanError};

use crate::error::{Error, Location, Result};

/// Where each node of one YAML document sits, keyed by JSON pointer (`/spec/steps/0`).
#[derive(Debug, Clone, Default)]
pub struct Index {
    values: HashMap<String, Location>,
    keys: HashMap<String, Location>,
}

impl Index {
    /// Location of the value at `pointer`, if it exists in the source.
    pub fn value(&self, pointer: &str) -> Option<Location> {
        self.values.get(pointer).copied()
    }

    /// Location of the mapping key whose value is at `pointer` (best for "unknown field").
    pub fn key(&self, pointer: &str) -> Option<Location> {
        self.keys.get(pointer).copied()
    }

    /// Location of `pointer`, or of its nearest ancestor that exists (for missing fields).
    pub fn nearest(&self, pointer: &str) -> Option<Location> {
        let mut p = pointer.to_string();
        loop {
            if let Some(l) = self.key(&p).or_else(|| self.value(&p)) {
                return Some(l);
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return None,
            }
        }
    }
}

/// One decoded YAML document with its location index.
#[derive(Debug, Clone)]
pub struct Document {
    /// The untyped value.
    pub value: Value,
    /// Where its nodes sit.
    pub index: Index,
}

/// Escapes one JSON-pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Reads a user file (see [`crate::input`]: regular files only, capped, UTF-8).
pub fn read(path: &Path) -> Result<String> {
    crate::input::read(path)
}

/// Decodes every document in `src` as untyped values, with an index per document.
/// Empty documents (e.g. a trailing `---`) are dropped.
pub fn documents(path: &Path, src: &str) -> Result<Vec<Document>> {
    let indexes = index_documents(src).map_err(|e| syntax_error(path, &e))?;
    let values: Vec<Value> = serde_saphyr::from_multiple(src).map_err(|e| decode_error(path, &e))?;
    let docs = values
        .into_iter()
        .zip(indexes.into_iter().chain(std::iter::repeat_with(Index::default)))
        .filter(|(v, _)| !v.is_null())
        .map(|(value, index)| Document { value, index })
        .collect();
    Ok(docs)
}

/// Decodes a single-document file into `T`, rejecting an empty file.
pub fn typed<T: DeserializeOwned>(path: &Path, src: &str) -> Result<(T, Index)> {
    if src.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Err(Error::input(path, None, "the file is empty"));
    }
    // Syntax first, so that malformed YAML is reported as such rather than as a schema error.
    let index = index_documents(src).map_err(|e| syntax_error(path, &e))?.into_iter().next().unwrap_or_default();
    let value: T = serde_saphyr::from_str(src).map_err(|e| decode_error(path, &e))?;
    Ok((value, index))
}

/// Turns a serde-saphyr error into a one-line located diagnostic.
fn decode_error(path: &Path, e: &serde_saphyr::Error) -> Error {
    let location = e.location().map(|l| Location { line: l.line() as usize, column: l.column() as usize });
    let mut message = e.without_snippet().to_string();
    // serde-saphyr appends its own "at line L, column C"; the diagnostic prints that once, in front.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    // Drop library advice aimed at programmers (e.g. "set DuplicateKeyPolicy in Options").
    if let Some(i) = message.find(", set ") {
        message.truncate(i);
    }
    let mut message = message.lines().next().unwrap_or_default().trim().to_string();
    // The parser's resource budget prints a Rust value (`budget breached: Nodes { nodes: 250001 }`).
    if let Some(breach) = message.strip_prefix("budget breached: ") {
        let what = breach.split_once('{').map_or(breach, |(_, rest)| rest).trim_end_matches('}').trim();
        let what = what.split_once(':').map_or(what.to_string(), |(k, n)| format!("{} ({})", k.trim(), n.trim()));
        message = format!("too large or too deeply nested to read: past the YAML parser's limit on {what}");
    }
    Error::input(path, location, message)
}

/// Turns a parser error into a located "invalid YAML" diagnostic.
fn syntax_error(path: &Path, e: &ScanError) -> Error {
    let m = e.marker();
    Error::input(path, Some(Location { line: m.line(), column: m.col() + 1 }), format!("invalid YAML: {}", e.info()))
}

enum Frame {
    Map { key: Option<String>, expect_key: bool },
    Seq { next: usize },
}

/// Records the location of every node of every document, by JSON pointer.
fn index_documents(src: &str) -> std::result::Result<Vec<Index>, ScanError> {
    let mut out = Vec::new();
    let mut current = Index::default();
    let mut stack: Vec<(String, Frame)> = Vec::new();
    for item in Parser::new_from_str(src) {
        let (event, span) = item?;
        let loc = Location { line: span.start.line(), column: span.start.col() + 1 };
        match event {
            Event::DocumentStart(..) => {
                current = Index::default();
                stack.clear();
            }
            Event::DocumentEnd => out.push(std::mem::take(&mut current)),
            Event::Scalar(ref text, ..) => {
                if let Some(key) = take_key(&mut stack, text) {
                    let ptr = format!("{}/{}", parent_ptr(&stack), escape(&key));
                    current.keys.insert(ptr, loc);
                } else {
                    let ptr = child_ptr(&mut stack);
                    current.values.insert(ptr, loc);
                }
            }
            Event::Alias(_) => {
                let ptr = child_ptr(&mut stack);
                current.values.insert(ptr, loc);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let ptr = child_ptr(&mut stack);
                current.values.insert(ptr.clone(), loc);
                let frame = if matches!(event, Event::MappingStart(..)) {
                    Frame::Map { key: None, expect_key: true }
                } else {
                    Frame::Seq { next: 0 }
                };
                stack.push((ptr, frame));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// If the innermost frame is a mapping awaiting a key, consumes `text` as that key.
fn take_key(stack: &mut [(String, Frame)], text: &str) -> Option<String> {
    match stack.last_mut() {
        Some((_, Frame::Map { key, expect_key })) if *expect_key => {
            *expect_key = false;
            *key = Some(text.to_string());
            Some(text.to_string())
        }
        _ => None,
    }
}

fn parent_ptr(stack: &[(String, Frame)]) -> String {
    stack.last().map(|(p, _)| p.clone()).unwrap_or_default()
}

/// The pointer of the next value in the innermost collection, advancing that collection.
fn child_ptr(stack: &mut [(String, Frame)]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some((p, Frame::Seq { next })) => {
            let ptr = format!("{p}/{next}");
            *next += 1;
            ptr
        }
        Some((p, Frame::Map { key, expect_key })) => {
            *expect_key = true;
            let k = key.take().unwrap_or_default();
            format!("{p}/{}", escape(&k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_nested_keys_and_sequence_items() {
        let src = "a:\n  b: 1\n  c:\n    - x\n    - y: 2\n";
        let docs = documents(Path::new("t.yaml"), src).unwrap();
        let idx = &docs[0].index;
        assert_eq!(idx.key("/a/b"), Some(Location { line: 2, column: 3 }));
        assert_eq!(idx.value("/a/c/1"), Some(Location { line: 5, column: 7 }));
        assert_eq!(idx.key("/a/c/1/y"), Some(Location { line: 5, column: 7 }));
        assert_eq!(idx.value("/a/c/1/y"), Some(Location { line: 5, column: 10 }));
        assert_eq!(idx.nearest("/a/c/1/missing"), Some(Location { line: 5, column: 7 }));
    }

    #[test]
    fn indexes_each_document_separately() {
        let src = "a: 1\n---\nb: 2\n";
        let docs = documents(Path::new("t.yaml"), src).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index.key("/b"), Some(Location { line: 3, column: 1 }));
    }

    #[test]
    fn duplicate_key_is_a_located_error() {
        let err = documents(Path::new("t.yaml"), "a: 1\na: 2\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.yaml:2:1: "), "{text}");
    }

    #[test]
    fn malformed_yaml_is_a_syntax_error() {
        let err = typed::<Value>(Path::new("m.yaml"), "a: [\n").unwrap_err().to_string();
        assert_eq!(err, "m.yaml:1:4: invalid YAML: unclosed bracket '['");
    }

    #[test]
    fn empty_file_is_rejected() {
        let err = typed::<Value>(Path::new("e.yaml"), "# only a comment\n").unwrap_err();
        assert_eq!(err.to_string(), "e.yaml: the file is empty");
    }
}
