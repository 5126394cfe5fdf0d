//! Event times and the `--from`/`--to` range of a hunt.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// An inclusive range of event times; either end may be open.
///
/// ```
/// use vigil_hunt::TimeRange;
///
/// let now = "2024-05-02T00:00:00Z".parse().unwrap();
/// let range = TimeRange::parse(Some("1d"), Some("2024-05-01T12:00:00Z"), now).unwrap();
/// assert!(range.contains(vigil_hunt::parse_event_time("2024-05-01T06:00:00Z").unwrap()));
/// assert!(!range.contains(vigil_hunt::parse_event_time("2024-05-01T13:00:00Z").unwrap()));
/// assert!(TimeRange::parse(Some("yesterday"), None, now).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Parses both ends ([`parse_time_bound`]); `from` after `to` is an error.
    pub fn parse(from: Option<&str>, to: Option<&str>, now: DateTime<Utc>) -> Result<Self, String> {
        let range = TimeRange {
            from: from.map(|t| parse_time_bound(t, now)).transpose()?,
            to: to.map(|t| parse_time_bound(t, now)).transpose()?,
        };
        if let (Some(f), Some(t)) = (range.from, range.to)
            && f > t
        {
            return Err(format!(
                "the range is empty: --from {} is after --to {}",
                f.to_rfc3339(),
                t.to_rfc3339()
            ));
        }
        Ok(range)
    }

    /// Whether neither end is set (every event is in range, with a time or not).
    pub fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t <= to)
    }
}

/// A `--from`/`--to` value: an RFC 3339 time (`2024-05-01T09:00:00Z`), a date
/// (`2024-05-01`, midnight UTC), or a duration back from `now`: a number and a unit `s`,
/// `m`, `h`, `d` or `w` (`90m`, `24h`, `7d`).
pub fn parse_time_bound(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc());
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => 0,
    };
    let n: i64 = number.parse().unwrap_or(-1);
    if seconds_per_unit == 0 || n < 0 {
        return Err(format!(
            "`{text}` is not a time: give RFC 3339 (2024-05-01T09:00:00Z), a date (2024-05-01) \
             or a duration back from now (30m, 24h, 7d, 2w)"
        ));
    }
    n.checked_mul(seconds_per_unit)
        .and_then(TimeDelta::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
        .ok_or_else(|| format!("`{text}` reaches too far back"))
}

/// An event time as [`crate::event_time`] finds it: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]`
/// (UTC, as evtx_dump and many exports write it), or a number of seconds (milliseconds when
/// above 10^11) since 1970.
pub fn parse_event_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), format) {
            return Some(t.and_utc());
        }
    }
    if let Ok(n) = text.parse::<f64>()
        && n.is_finite()
        && n >= 0.0
    {
        let millis = if n > 1e11 { n } else { n * 1000.0 };
        return DateTime::from_timestamp_millis(millis as i64);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-05-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn bounds_are_rfc3339_dates_or_durations_back() {
        let at = |t: &str| parse_time_bound(t, now()).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2024-05-01T09:00:00+02:00").unwrap(),
            "2024-05-01T07:00:00+00:00"
        );
        assert_eq!(at("2024-05-01").unwrap(), "2024-05-01T00:00:00+00:00");
        assert_eq!(at("90m").unwrap(), "2024-05-10T10:30:00+00:00");
        assert_eq!(at("7d").unwrap(), "2024-05-03T12:00:00+00:00");
        assert_eq!(at("2w").unwrap(), "2024-04-26T12:00:00+00:00");
        for bad in [
            "",
            "h",
            "-1h",
            "5y",
            "2024-13-01",
            "soon",
            "99999999999999999999d",
        ] {
            let e = at(bad).unwrap_err();
            assert!(e.contains(bad.trim()), "{bad}: {e}");
        }
        assert!(TimeRange::parse(Some("2024-05-02"), Some("2024-05-01"), now()).is_err());
    }

    #[test]
    fn event_times_in_the_common_spellings() {
        let t = |s: &str| parse_event_time(s).map(|t| t.timestamp_millis());
        let base = 1_714_554_000_000; // 2024-05-01T09:00:00Z
        assert_eq!(t("2024-05-01T09:00:00Z"), Some(base));
        assert_eq!(t("2024-05-01T09:00:00.1234567Z"), Some(base + 123));
        assert_eq!(t("2024-05-01 09:00:00.250"), Some(base + 250));
        assert_eq!(t("2024-05-01T09:00:00"), Some(base));
        assert_eq!(t("1714554000"), Some(base));
        assert_eq!(t("1714554000500"), Some(base + 500));
        assert_eq!(t("May  1 09:00:00"), None);
        assert_eq!(t("NaN"), None);
    }
}
