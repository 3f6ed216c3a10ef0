//! An instant on the wire: an RFC 3339 date and time (`2027-01-01T00:00:00Z`,
//! or with an offset, `2027-01-01T01:00:00+01:00`; at most millisecond
//! precision), held as milliseconds since the Unix epoch. Written back in UTC
//! (`Z`), with milliseconds only when it has some. The catalog's scheduled
//! price changes use it (`catalog::PriceChange`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z, read and written as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

/// What a refused instant is told (the value itself is not repeated).
pub const EXPECTED: &str =
    "must be an RFC 3339 date and time from 1970 on, such as 2027-01-01T00:00:00Z";

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (`civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `n` ASCII digits at the start of `s`, as a number, and the rest.
fn digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    let (head, rest) = (s.get(..n)?, s.get(n..)?);
    head.iter()
        .try_fold(0u32, |a, &b| {
            b.is_ascii_digit().then(|| a * 10 + u32::from(b - b'0'))
        })
        .map(|v| (v, rest))
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    match s.split_first() {
        Some((&b, rest)) if b == c => Some(rest),
        _ => None,
    }
}

impl Timestamp {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,3}](Z|±HH:MM)` (`T`/`Z` in either
    /// case). None for anything else, an impossible date or time, or an
    /// instant before 1970.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let (year, b) = digits(b, 4)?;
        let (month, b) = digits(expect(b, b'-')?, 2)?;
        let (day, b) = digits(expect(b, b'-')?, 2)?;
        let b = match b.split_first() {
            Some((b'T' | b't', rest)) => rest,
            _ => return None,
        };
        let (hour, b) = digits(b, 2)?;
        let (minute, b) = digits(expect(b, b':')?, 2)?;
        let (second, mut b) = digits(expect(b, b':')?, 2)?;
        let year = i64::from(year);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut ms = 0u32;
        if let Some(rest) = expect(b, b'.') {
            let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if !(1..=3).contains(&n) {
                return None;
            }
            let (frac, rest) = digits(rest, n)?;
            ms = frac * 10u32.pow(3 - n as u32);
            b = rest;
        }
        let offset_s: i64 = match b.split_first() {
            Some((b'Z' | b'z', [])) => 0,
            Some((&sign @ (b'+' | b'-'), rest)) => {
                let (oh, rest) = digits(rest, 2)?;
                let (om, rest) = digits(expect(rest, b':')?, 2)?;
                if !rest.is_empty() || oh > 23 || om > 59 {
                    return None;
                }
                let o = i64::from(oh * 3600 + om * 60);
                if sign == b'+' { o } else { -o }
            }
            _ => return None,
        };
        let secs = days_from_civil(year, month, day) * 86_400
            + i64::from(hour * 3600 + minute * 60 + second)
            - offset_s;
        let ms = secs.checked_mul(1000)?.checked_add(i64::from(ms))?;
        u64::try_from(ms).ok().map(Timestamp)
    }

    /// Milliseconds since the Unix epoch.
    pub fn ms(self) -> u64 {
        self.0
    }

    /// The instant as an HTTP-date (RFC 9110 IMF-fixdate, what RFC 8594's
    /// `Sunset` header carries), to the second: `Thu, 14 Jan 2027 00:00:00
    /// GMT`.
    pub fn http_date(self) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let t = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        // 1970-01-01 was a Thursday.
        let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
        let month = MONTHS
            .get((m as usize).saturating_sub(1))
            .copied()
            .unwrap_or("Jan");
        format!(
            "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
            t / 3600,
            t / 60 % 60,
            t % 60
        )
    }

    /// The UTC calendar date, `2027-01-14`.
    pub fn date(self) -> String {
        let (y, m, d) = civil_from_days((self.0 / 1000 / 86_400) as i64);
        format!("{y:04}-{m:02}-{d:02}")
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = (self.0 / 1000) as i64;
        let ms = self.0 % 1000;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let t = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            t / 3600,
            t / 60 % 60,
            t % 60
        )?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom(EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3339_instants_parse_to_epoch_milliseconds_and_print_back_in_utc() {
        let p = |s: &str| Timestamp::parse(s).map(Timestamp::ms);
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0));
        // date -u -d 2027-01-01T00:00:00Z +%s → 1798761600
        assert_eq!(p("2027-01-01T00:00:00Z"), Some(1_798_761_600_000));
        assert_eq!(p("2027-01-01t00:00:00z"), Some(1_798_761_600_000));
        assert_eq!(p("2027-01-01T01:00:00+01:00"), Some(1_798_761_600_000));
        assert_eq!(p("2026-12-31T19:00:00-05:00"), Some(1_798_761_600_000));
        assert_eq!(p("2027-01-01T00:00:00.5Z"), Some(1_798_761_600_500));
        assert_eq!(p("2027-01-01T00:00:00.123Z"), Some(1_798_761_600_123));
        // 2024-02-29 exists; date -u -d 2024-02-29T12:34:56Z +%s → 1709210096
        assert_eq!(p("2024-02-29T12:34:56Z"), Some(1_709_210_096_000));
        for bad in [
            "",
            "2027-01-01",
            "2027-01-01 00:00:00Z",
            "2027-01-01T00:00:00",
            "2027-13-01T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2027-01-32T00:00:00Z",
            "2027-01-01T24:00:00Z",
            "2027-01-01T00:60:00Z",
            "2027-01-01T00:00:60Z",
            "2027-01-01T00:00:00.1234Z",
            "2027-01-01T00:00:00.Z",
            "2027-01-01T00:00:00+0100",
            "2027-01-01T00:00:00Zjunk",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00+00:01",
            "+2027-01-01T00:00:00Z",
            "２０２７-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        for s in [
            "1970-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
            "2024-02-29T12:34:56.007Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(
            Timestamp::parse("2027-01-01T01:00:00+01:00")
                .unwrap()
                .to_string(),
            "2027-01-01T00:00:00Z"
        );
        let e = serde_json::from_str::<Timestamp>("\"tomorrow\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains(EXPECTED) && !e.contains("tomorrow"), "{e}");
        assert!(serde_json::from_str::<Timestamp>("1798761600000").is_err());
    }

    /// `Sunset`'s HTTP-date and the calendar date a retirement is told by.
    #[test]
    fn instants_print_as_http_dates_and_calendar_dates() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        // date -u -R -d 2027-01-14 → Thu, 14 Jan 2027 00:00:00 +0000
        assert_eq!(
            t("2027-01-14T00:00:00Z").http_date(),
            "Thu, 14 Jan 2027 00:00:00 GMT"
        );
        assert_eq!(t("2027-01-14T00:00:00Z").date(), "2027-01-14");
        // date -u -R -d 2027-01-22 → Fri, 22 Jan 2027 00:00:00 +0000
        assert_eq!(
            t("2027-01-22T00:00:00Z").http_date(),
            "Fri, 22 Jan 2027 00:00:00 GMT"
        );
        assert_eq!(Timestamp(0).http_date(), "Thu, 01 Jan 1970 00:00:00 GMT");
        // date -u -R -d 2024-02-29T23:59:59.999Z → Thu, 29 Feb 2024 23:59:59
        assert_eq!(
            t("2024-02-29T23:59:59.999Z").http_date(),
            "Thu, 29 Feb 2024 23:59:59 GMT"
        );
        assert_eq!(t("2026-12-05T21:30:00-05:00").date(), "2026-12-06");
        assert_eq!(
            t("2026-12-06T02:30:00Z").http_date(),
            "Sun, 06 Dec 2026 02:30:00 GMT"
        );
    }
}
