//! Dates and timestamps in the shapes the source systems export: `2021-08-12` and
//! `2021-08-12 10:40:17` (UTC). Written digit by digit because millions are written per run.

use chrono::{Datelike, NaiveDate};

/// Days from 0001-01-01 (chrono's day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i64 = 719_163;

pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a calendar date.
pub(crate) fn days_since_epoch(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) - UNIX_EPOCH_FROM_CE
}

fn push_2(buf: &mut String, n: u32) {
    buf.push(char::from(b'0' + (n / 10) as u8));
    buf.push(char::from(b'0' + (n % 10) as u8));
}

/// Pushes `yyyy-MM-dd` for a day count since 1970-01-01.
pub(crate) fn push_date(buf: &mut String, days: i64) {
    let date = i32::try_from(days + UNIX_EPOCH_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(NaiveDate::MIN);
    let year = date.year().clamp(0, 9999) as u32;
    push_2(buf, year / 100);
    push_2(buf, year % 100);
    buf.push('-');
    push_2(buf, date.month());
    buf.push('-');
    push_2(buf, date.day());
}

/// Pushes `yyyy-MM-dd HH:mm:ss` for seconds since 1970-01-01 00:00:00 UTC.
pub(crate) fn push_timestamp(buf: &mut String, seconds: i64) {
    push_date(buf, seconds.div_euclid(SECONDS_PER_DAY));
    let in_day = seconds.rem_euclid(SECONDS_PER_DAY) as u32;
    buf.push(' ');
    push_2(buf, in_day / 3600);
    buf.push(':');
    push_2(buf, in_day / 60 % 60);
    buf.push(':');
    push_2(buf, in_day % 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_chrono() {
        for seconds in [
            0i64,
            1_628_764_817,
            951_782_400,
            4_102_444_799,
            1_709_251_199,
        ] {
            let mut ours = String::new();
            push_timestamp(&mut ours, seconds);
            let theirs = chrono::DateTime::from_timestamp(seconds, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            assert_eq!(ours, theirs);
        }
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or(NaiveDate::MIN);
        let mut buf = String::new();
        push_date(&mut buf, days_since_epoch(date));
        assert_eq!(buf, "2024-02-29");
    }
}
