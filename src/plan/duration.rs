//! Durations as written in scenarios and plans: `500ms`, `90s`, `5m`, `1h`.

use std::time::Duration;

/// Parses `<n>ms`, `<n>s`, `<n>m` or `<n>h` (a positive whole number and a unit).
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}`: write a whole number and a unit, e.g. `90s`, `5m`");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!("invalid duration `{s}`: it must be positive"));
    }
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(secs))
}

/// Formats a duration the way [`parse`] reads it, in the largest exact unit.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["500ms", "90s", "5m", "2h"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        assert!(parse("5 minutes").is_err());
        assert!(parse("0s").is_err());
        assert!(parse("m").is_err());
    }
}
