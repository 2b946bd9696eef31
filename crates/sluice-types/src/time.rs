//! RFC 3339 timestamps without a time library.

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

/// Now, as seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The instant `n` working days (Monday to Friday, UTC; public holidays are
/// not modelled) after `unix_secs`, at the same time of day: the deadlines
/// of the platform's rules (art. 10, 16, 20).
pub fn add_working_days(unix_secs: i64, n: u32) -> i64 {
    let mut t = unix_secs;
    let mut left = n;
    while left > 0 {
        t += 86_400;
        // 1970-01-01 was a Thursday: day 0 has weekday 4 (0 = Sunday).
        let weekday = (t.div_euclid(86_400) + 4).rem_euclid(7);
        if weekday != 0 && weekday != 6 {
            left -= 1;
        }
    }
    t
}

/// Seconds since the Unix epoch of a `YYYY-MM-DDTHH:MM:SS` UTC timestamp
/// (what [`rfc3339`] writes; fractional seconds and a `Z` are accepted).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), the inverse of rfc3339's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Working days (Monday to Friday, UTC) from `from` until `to`: how many
/// [`add_working_days`] steps stay at or before `to`; negative when `to`
/// is already past, counting the working days since.
pub fn working_days_until(from: i64, to: i64) -> i64 {
    let (start, end, sign) = if to >= from {
        (from, to, 1)
    } else {
        (to, from, -1)
    };
    let mut n = 0;
    while add_working_days(start, n as u32 + 1) <= end {
        n += 1;
    }
    sign * n
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_what_it_writes_and_counts_working_days() {
        for t in [
            0,
            951_782_400,
            1_764_000_000,
            1_795_910_399,
            1_798_761_599,
            4_102_444_800,
            -86_400,
        ] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(t)), Some(t));
        }
        assert_eq!(super::parse_rfc3339("2026-11-28"), None);
        assert_eq!(
            super::parse_rfc3339("2026-12-07T14:00:00.123Z"),
            super::parse_rfc3339("2026-12-07T14:00:00Z")
        );
        assert_eq!(super::parse_rfc3339("2026-13-01T00:00:00Z"), None);
        // Friday 2026-11-27 to Monday 2026-12-07: 6 working days.
        let friday = super::parse_rfc3339("2026-11-27T12:00:00Z").unwrap();
        let monday = super::parse_rfc3339("2026-12-07T12:00:00Z").unwrap();
        assert_eq!(super::working_days_until(friday, monday), 6);
        assert_eq!(super::working_days_until(monday, friday), -6);
        assert_eq!(super::working_days_until(friday, friday + 3600), 0);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_824_000), "2026-11-28T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_910_399), "2026-11-28T23:59:59Z");
    }

    #[test]
    fn working_days_skip_weekends() {
        // 2026-11-27 is a Friday; 1 working day later is Monday the 30th,
        // 5 later Friday 2026-12-04, 10 later Friday 2026-12-11.
        let friday = 1_795_737_600;
        assert_eq!(super::rfc3339(friday), "2026-11-27T00:00:00Z");
        assert_eq!(
            super::rfc3339(super::add_working_days(friday, 1)),
            "2026-11-30T00:00:00Z"
        );
        assert_eq!(
            super::rfc3339(super::add_working_days(friday, 5)),
            "2026-12-04T00:00:00Z"
        );
        assert_eq!(
            super::rfc3339(super::add_working_days(friday, 10)),
            "2026-12-11T00:00:00Z"
        );
        assert_eq!(super::add_working_days(friday, 0), friday);
    }
}
