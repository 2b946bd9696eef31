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

#[cfg(test)]
mod tests {
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
