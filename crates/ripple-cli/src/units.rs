//! Durations (`3`, `500ms`, `2m`) and byte sizes (`32`, `64k`, `1MiB`) as typed on the command
//! line.

use std::time::Duration;

/// Parses a duration: a number of seconds (`3`, `2.5`) or a number with a unit: `us`, `ms`,
/// `s`, `m`, `h` (`500ms`, `2m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 3, 500ms, 2m)"))?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use us, ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("{text:?} is out of range"))
}

/// Parses a byte size: a number of bytes, optionally with `k`/`KiB` (1024) or `m`/`MiB`
/// (1024²) (`32`, `64k`, `64KiB`, `1m`).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 32, 64k, 1MiB)"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use k or m)")),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A byte count for people: `32 B`, `64 KiB`, `1.5 MiB`.
pub(crate) fn format_size(bytes: usize) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{} KiB", trim_float(b / KIB))
    } else {
        format!("{} MiB", trim_float(b / KIB / KIB))
    }
}

/// A duration for people: `850 µs`, `12.3 ms`, `2.50 s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    format_micros(micros)
}

/// Microseconds for people, in the unit that keeps three significant digits.
pub(crate) fn format_micros(micros: f64) -> String {
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_seconds_and_units() {
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "ms", "-1", "3 days", "1.2.3", "5x", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32"), Ok(32));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "k", "-3", "1.5k", "3 tb", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(32), "32 B");
        assert_eq!(format_size(65536), "64 KiB");
        assert_eq!(format_size(1536 * 1024), "1.5 MiB");
        assert_eq!(format_duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(format_duration(Duration::from_micros(12_345)), "12.35 ms");
        assert_eq!(format_duration(Duration::from_millis(2500)), "2.50 s");
    }
}
