//! Durations as written in scenarios and plans: `500ms`, `90s`, `5m`, `1h`, at most [`MAX`].

use std::time::{Duration, Instant};

/// The longest duration a scenario may write: 24 hours. Every wait kyvtel has is far shorter;
/// anything longer is a typo, and bounding it keeps every deadline representable.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// Parses `<n>ms`, `<n>s`, `<n>m` or `<n>h` (a positive whole number and a unit), at most [`MAX`].
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{s}`: write a whole number and a unit, e.g. `90s`, `5m`");
    let too_long = || format!("invalid duration `{s}`: longer than the maximum, {}", format(MAX));
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(bad()),
    };
    // Digits only, so a parse failure is an overflow: longer than any maximum.
    let n: u64 = digits.parse().map_err(|_| too_long())?;
    if n == 0 {
        return Err(format!("invalid duration `{s}`: it must be positive"));
    }
    let d = n.checked_mul(per_unit_ms).map(Duration::from_millis).ok_or_else(too_long)?;
    if d > MAX {
        return Err(too_long());
    }
    Ok(d)
}

/// The instant `timeout` from now; a timeout too large to represent waits as long as [`MAX`]
/// allows instead of panicking (scenario timeouts are bounded by [`parse`]; this guards the rest).
#[must_use]
pub fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).or_else(|| now.checked_add(MAX)).unwrap_or(now)
}

/// [`deadline`] on tokio's clock.
#[must_use]
pub fn tokio_deadline(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout).or_else(|| now.checked_add(MAX)).unwrap_or(now)
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

/// Serializes a duration as [`format`] writes it (`90s`, `5m`), for `#[serde(serialize_with)]`.
///
/// # Errors
/// The serializer's.
pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
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

    #[test]
    fn no_magnitude_overflows_and_the_maximum_holds() {
        assert_eq!(parse("24h").unwrap(), MAX);
        assert_eq!(parse("1440m").unwrap(), MAX);
        for s in ["25h", "86400001ms", "18446744073709551615h", "18446744073709551616s", &"9".repeat(400)] {
            let s = if s.ends_with(|c: char| c.is_ascii_digit()) { format!("{s}ms") } else { s.to_string() };
            assert!(parse(&s).unwrap_err().contains("longer than the maximum, 24h"), "{s}");
        }
    }

    #[test]
    fn a_deadline_never_panics() {
        assert!(deadline(Duration::MAX) > Instant::now());
        assert!(deadline(Duration::from_secs(1)) > Instant::now());
    }
}
