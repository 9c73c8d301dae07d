//! Small text helpers that more than one layer needs.

/// The last `lines` lines of `s`, joined by `\n` (all of it when shorter).
#[must_use]
pub fn last_lines(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn keeps_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a", 3), "a");
        assert_eq!(last_lines("", 3), "");
    }
}
