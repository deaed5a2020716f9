//! Protobuf well-known types in their JSON form.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `google.protobuf.Duration` written as in proto-JSON: seconds with an `s` suffix (`"5s"`, `"0.5s"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtoDuration(pub Duration);

impl fmt::Debug for ProtoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ProtoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl ProtoDuration {
    /// Parses `"1.5s"`. Negative durations are refused.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid duration \"{s}\": expected seconds with an \"s\" suffix, e.g. \"5s\" or \"0.5s\"");
        let num = s.strip_suffix('s').ok_or_else(bad)?;
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 9
        {
            return Err(bad());
        }
        let secs: u64 = whole.parse().map_err(|_| bad())?;
        let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
        Ok(ProtoDuration(Duration::new(secs, nanos)))
    }
}

impl Serialize for ProtoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProtoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ProtoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A `google.protobuf.Struct`: any JSON object.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(ProtoDuration::parse("5s").unwrap().0, Duration::from_secs(5));
        assert_eq!(ProtoDuration::parse("0.5s").unwrap().0, Duration::from_millis(500));
        assert_eq!(ProtoDuration::parse("1.000000001s").unwrap().0, Duration::new(1, 1));
        assert_eq!(ProtoDuration::parse("0.5s").unwrap().to_string(), "0.5s");
        for bad in ["5", "s", "-1s", "1.s5", "1m", "1.0000000001s"] {
            assert!(ProtoDuration::parse(bad).is_err(), "{bad}");
        }
    }
}

/// Parses a Go duration (`"300ms"`, `"1h30m"`, `"1.5s"`), as Kuma's newer APIs write them.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration \"{s}\": expected e.g. \"10s\", \"1m30s\" or \"250ms\"");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * unit;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod go_duration_tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_go_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "-1s", "1x", "1.2.3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}

/// A Kubernetes `metav1.Duration` as Kuma's targetRef policies write it (`"10s"`, `"1m30s"`, `"-1s"`); kept as
/// written so that a policy serialises back unchanged, and negative values are kept so that validation can name them.
#[derive(Clone, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    duration: Duration,
    negative: bool,
}

impl GoDuration {
    /// Parses a Go duration, with an optional leading `-`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (negative, magnitude) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let duration = parse_go_duration(magnitude)
            .map_err(|_| format!("invalid duration \"{s}\": expected e.g. \"10s\", \"1m30s\" or \"250ms\""))?;
        Ok(GoDuration { text: s.to_owned(), duration, negative: negative && !duration.is_zero() })
    }

    /// The duration (zero when negative).
    pub fn get(&self) -> Duration {
        if self.negative { Duration::ZERO } else { self.duration }
    }

    /// Whether it is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Whether it is zero (or below).
    pub fn is_zero_or_negative(&self) -> bool {
        self.negative || self.duration.is_zero()
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        let ms = d.as_millis();
        let text = if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") };
        GoDuration { text, duration: d, negative: false }
    }
}

impl fmt::Debug for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod k8s_duration_tests {
    use super::*;

    #[test]
    fn k8s_durations_keep_their_text_and_sign() {
        let d = GoDuration::parse("1m30s").unwrap();
        assert_eq!(d.get(), Duration::from_secs(90));
        assert_eq!(serde_json::to_value(&d).unwrap(), serde_json::json!("1m30s"));
        let n = GoDuration::parse("-1s").unwrap();
        assert!(n.is_negative() && n.is_zero_or_negative());
        assert_eq!(n.get(), Duration::ZERO);
        assert!(GoDuration::parse("0").unwrap().is_zero_or_negative());
        assert!(GoDuration::parse("1x").is_err());
        assert_eq!(GoDuration::from(Duration::from_millis(500)).to_string(), "500ms");
    }
}
