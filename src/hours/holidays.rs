//! Japanese national holidays (国民の祝日に関する法律, "the Holiday Act").
//!
//! Two sources, SPEC §2:
//! - the **official list** published by the Cabinet Office (内閣府「国民の祝日について」), shipped
//!   below as data for [`OFFICIAL_YEARS`]; it wins wherever it exists;
//! - a **rule-based generator** for [`RULE_YEARS`] that applies the Act as amended over time
//!   (Happy Monday, 山の日, the 2019 accession days, the 2020/2021 Olympic moves, equinoxes by the
//!   standard approximation formula) and derives substitute holidays (art. 3(2)) and citizens'
//!   holidays (art. 3(3)). Its output for years outside the official list is *provisional*: the
//!   equinox days in particular are only fixed by the Cabinet Office each February for the next
//!   year.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Serialize;

/// Years whose holidays ship as the Cabinet Office's official list. Extend this (and
/// [`OFFICIAL`]) each February when the next year's list is announced.
pub const OFFICIAL_YEARS: RangeInclusive<i32> = 2024..=2027;

/// Years the rule generator covers: the equinox approximation formula is only valid for
/// 1980–2099, and nothing before 1980 is needed by a service founded in this century.
pub const RULE_YEARS: RangeInclusive<i32> = 1980..=2099;

/// Japanese holiday names, as the Cabinet Office lists them.
pub mod names {
    pub const GANJITSU: &str = "元日";
    pub const SEIJIN: &str = "成人の日";
    pub const KENKOKU: &str = "建国記念の日";
    pub const TENNO_TANJOBI: &str = "天皇誕生日";
    pub const SHUNBUN: &str = "春分の日";
    pub const SHOWA: &str = "昭和の日";
    pub const KENPO: &str = "憲法記念日";
    pub const MIDORI: &str = "みどりの日";
    pub const KODOMO: &str = "こどもの日";
    pub const UMI: &str = "海の日";
    pub const YAMA: &str = "山の日";
    pub const KEIRO: &str = "敬老の日";
    pub const SHUBUN: &str = "秋分の日";
    pub const SPORTS: &str = "スポーツの日";
    /// Name of the second Monday of October before 2020.
    pub const TAIIKU: &str = "体育の日";
    pub const BUNKA: &str = "文化の日";
    pub const KINRO: &str = "勤労感謝の日";
    /// Holiday Act art. 3(2).
    pub const FURIKAE: &str = "振替休日";
    /// Holiday Act art. 3(3).
    pub const KOKUMIN_NO_KYUJITSU: &str = "国民の休日";
    /// One-off holidays under special acts.
    pub const TAISO_NO_REI: &str = "昭和天皇の大喪の礼";
    pub const SOKUIREI_SEIDEN_NO_GI: &str = "即位礼正殿の儀";
    pub const KEKKON_NO_GI: &str = "皇太子徳仁親王の結婚の儀";
    pub const SOKUI_NO_HI: &str = "天皇の即位の日";
}

use names::*;

/// Why a date is a holiday, following the articles of the Holiday Act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolidayKind {
    /// 国民の祝日 (art. 2), or a day a special act treats as one.
    National,
    /// 振替休日 (art. 3(2)).
    Substitute,
    /// 国民の休日 (art. 3(3)).
    Citizens,
}

/// One holiday: a date with its Japanese name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: String,
    pub kind: HolidayKind,
}

use HolidayKind::{Citizens, National, Substitute};

/// The Cabinet Office's official lists, 2024–2027, copied date by date (the 2027 list was
/// announced in February 2026). `rule_generator_reproduces_the_official_lists` keeps the
/// generator honest against it.
const OFFICIAL: &[(i32, u32, u32, &str, HolidayKind)] = &[
    // 2024
    (2024, 1, 1, GANJITSU, National),
    (2024, 1, 8, SEIJIN, National),
    (2024, 2, 11, KENKOKU, National),
    (2024, 2, 12, FURIKAE, Substitute),
    (2024, 2, 23, TENNO_TANJOBI, National),
    (2024, 3, 20, SHUNBUN, National),
    (2024, 4, 29, SHOWA, National),
    (2024, 5, 3, KENPO, National),
    (2024, 5, 4, MIDORI, National),
    (2024, 5, 5, KODOMO, National),
    (2024, 5, 6, FURIKAE, Substitute),
    (2024, 7, 15, UMI, National),
    (2024, 8, 11, YAMA, National),
    (2024, 8, 12, FURIKAE, Substitute),
    (2024, 9, 16, KEIRO, National),
    (2024, 9, 22, SHUBUN, National),
    (2024, 9, 23, FURIKAE, Substitute),
    (2024, 10, 14, SPORTS, National),
    (2024, 11, 3, BUNKA, National),
    (2024, 11, 4, FURIKAE, Substitute),
    (2024, 11, 23, KINRO, National),
    // 2025
    (2025, 1, 1, GANJITSU, National),
    (2025, 1, 13, SEIJIN, National),
    (2025, 2, 11, KENKOKU, National),
    (2025, 2, 23, TENNO_TANJOBI, National),
    (2025, 2, 24, FURIKAE, Substitute),
    (2025, 3, 20, SHUNBUN, National),
    (2025, 4, 29, SHOWA, National),
    (2025, 5, 3, KENPO, National),
    (2025, 5, 4, MIDORI, National),
    (2025, 5, 5, KODOMO, National),
    (2025, 5, 6, FURIKAE, Substitute),
    (2025, 7, 21, UMI, National),
    (2025, 8, 11, YAMA, National),
    (2025, 9, 15, KEIRO, National),
    (2025, 9, 23, SHUBUN, National),
    (2025, 10, 13, SPORTS, National),
    (2025, 11, 3, BUNKA, National),
    (2025, 11, 23, KINRO, National),
    (2025, 11, 24, FURIKAE, Substitute),
    // 2026
    (2026, 1, 1, GANJITSU, National),
    (2026, 1, 12, SEIJIN, National),
    (2026, 2, 11, KENKOKU, National),
    (2026, 2, 23, TENNO_TANJOBI, National),
    (2026, 3, 20, SHUNBUN, National),
    (2026, 4, 29, SHOWA, National),
    (2026, 5, 3, KENPO, National),
    (2026, 5, 4, MIDORI, National),
    (2026, 5, 5, KODOMO, National),
    (2026, 5, 6, FURIKAE, Substitute),
    (2026, 7, 20, UMI, National),
    (2026, 8, 11, YAMA, National),
    (2026, 9, 21, KEIRO, National),
    (2026, 9, 22, KOKUMIN_NO_KYUJITSU, Citizens),
    (2026, 9, 23, SHUBUN, National),
    (2026, 10, 12, SPORTS, National),
    (2026, 11, 3, BUNKA, National),
    (2026, 11, 23, KINRO, National),
    // 2027
    (2027, 1, 1, GANJITSU, National),
    (2027, 1, 11, SEIJIN, National),
    (2027, 2, 11, KENKOKU, National),
    (2027, 2, 23, TENNO_TANJOBI, National),
    (2027, 3, 21, SHUNBUN, National),
    (2027, 3, 22, FURIKAE, Substitute),
    (2027, 4, 29, SHOWA, National),
    (2027, 5, 3, KENPO, National),
    (2027, 5, 4, MIDORI, National),
    (2027, 5, 5, KODOMO, National),
    (2027, 7, 19, UMI, National),
    (2027, 8, 11, YAMA, National),
    (2027, 9, 20, KEIRO, National),
    (2027, 9, 23, SHUBUN, National),
    (2027, 10, 11, SPORTS, National),
    (2027, 11, 3, BUNKA, National),
    (2027, 11, 23, KINRO, National),
];

/// Whether `year`'s holidays come from the shipped Cabinet Office list rather than the rules.
pub fn is_official_year(year: i32) -> bool {
    OFFICIAL_YEARS.contains(&year)
}

/// The holidays of `year`, sorted by date: the official list where shipped, else the rule
/// generator's provisional list; empty outside [`RULE_YEARS`] (the equinox formula does not
/// reach there, and a partial list would be worse than an obviously empty one).
pub fn holidays_in_year(year: i32) -> Vec<Holiday> {
    if is_official_year(year) {
        official_holidays(year)
    } else {
        rule_holidays(year)
    }
}

/// The holiday on `date`, if any, from the same source as [`holidays_in_year`].
pub fn holiday_on(date: NaiveDate) -> Option<Holiday> {
    holidays_in_year(date.year())
        .into_iter()
        .find(|h| h.date == date)
}

fn official_holidays(year: i32) -> Vec<Holiday> {
    OFFICIAL
        .iter()
        .filter(|(y, ..)| *y == year)
        .filter_map(|&(y, m, d, name, kind)| {
            NaiveDate::from_ymd_opt(y, m, d).map(|date| Holiday {
                date,
                name: name.to_owned(),
                kind,
            })
        })
        .collect()
}

/// The rule generator on its own, ignoring the official list: used for provisional years and to
/// test the rules against the official list.
pub fn rule_holidays(year: i32) -> Vec<Holiday> {
    if !RULE_YEARS.contains(&year) {
        return Vec::new();
    }
    let national = national_days(year);
    let national_dates: BTreeSet<NaiveDate> = national.iter().map(|(d, _)| *d).collect();

    let mut out: Vec<Holiday> = national
        .iter()
        .map(|&(date, name)| Holiday {
            date,
            name: name.to_owned(),
            kind: National,
        })
        .collect();

    let substitutes = substitute_days(&national_dates);
    let citizens = citizens_days(&national_dates, &substitutes);
    out.extend(substitutes.iter().map(|&date| Holiday {
        date,
        name: FURIKAE.to_owned(),
        kind: Substitute,
    }));
    out.extend(citizens.into_iter().map(|date| Holiday {
        date,
        name: KOKUMIN_NO_KYUJITSU.to_owned(),
        kind: Citizens,
    }));
    out.sort_by_key(|h| h.date);
    out
}

/// Art. 2 holidays of `year` (plus days special acts made holidays), with the date rules each
/// had in force that year.
fn national_days(year: i32) -> Vec<(NaiveDate, &'static str)> {
    let ymd = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d);
    let monday = |m: u32, n: u8| NaiveDate::from_weekday_of_month_opt(year, m, Weekday::Mon, n);

    let mut days: Vec<(Option<NaiveDate>, &'static str)> = vec![
        (ymd(1, 1), GANJITSU),
        // Happy Monday system (2000 amendment): 15 Jan before.
        (
            if year >= 2000 {
                monday(1, 2)
            } else {
                ymd(1, 15)
            },
            SEIJIN,
        ),
        (ymd(2, 11), KENKOKU),
        (ymd(3, vernal_equinox_day(year)), SHUNBUN),
        // 29 April: the Shōwa Emperor's birthday until 1988, みどりの日 1989–2006, 昭和の日
        // since the 2005 amendment took effect in 2007.
        (
            ymd(4, 29),
            match year {
                ..=1988 => TENNO_TANJOBI,
                1989..=2006 => MIDORI,
                _ => SHOWA,
            },
        ),
        (ymd(5, 3), KENPO),
        (ymd(5, 5), KODOMO),
        (ymd(9, autumnal_equinox_day(year)), SHUBUN),
        (ymd(11, 3), BUNKA),
        (ymd(11, 23), KINRO),
    ];
    // 4 May became みどりの日 in 2007; before, it was a citizens' holiday derived by art. 3(3).
    if year >= 2007 {
        days.push((ymd(5, 4), MIDORI));
    }
    match year {
        1989..=2018 => days.push((ymd(12, 23), TENNO_TANJOBI)),
        2019 => {} // no Emperor's birthday in the accession year
        2020.. => days.push((ymd(2, 23), TENNO_TANJOBI)),
        _ => {}
    }
    // 海の日 from 1996; Happy Monday from 2003; moved by the Olympic special act in 2020/2021.
    match year {
        1996..=2002 => days.push((ymd(7, 20), UMI)),
        2020 => days.push((ymd(7, 23), UMI)),
        2021 => days.push((ymd(7, 22), UMI)),
        2003.. => days.push((monday(7, 3), UMI)),
        _ => {}
    }
    // 山の日 from 2016; moved by the Olympic special act in 2020/2021.
    match year {
        2020 => days.push((ymd(8, 10), YAMA)),
        2021 => days.push((ymd(8, 8), YAMA)),
        2016.. => days.push((ymd(8, 11), YAMA)),
        _ => {}
    }
    days.push((
        if year >= 2003 {
            monday(9, 3)
        } else {
            ymd(9, 15)
        },
        KEIRO,
    ));
    // 体育の日 (10 Oct, Happy Monday from 2000) renamed スポーツの日 in 2020.
    match year {
        ..=1999 => days.push((ymd(10, 10), TAIIKU)),
        2000..=2019 => days.push((monday(10, 2), TAIIKU)),
        2020 => days.push((ymd(7, 24), SPORTS)),
        2021 => days.push((ymd(7, 23), SPORTS)),
        _ => days.push((monday(10, 2), SPORTS)),
    }
    // One-off holidays by special act. The 2019 ones are deemed 国民の祝日, so they also
    // produce the citizens' holidays of 30 April and 2 May 2019.
    match year {
        1989 => days.push((ymd(2, 24), TAISO_NO_REI)),
        1990 => days.push((ymd(11, 12), SOKUIREI_SEIDEN_NO_GI)),
        1993 => days.push((ymd(6, 9), KEKKON_NO_GI)),
        2019 => {
            days.push((ymd(5, 1), SOKUI_NO_HI));
            days.push((ymd(10, 22), SOKUIREI_SEIDEN_NO_GI));
        }
        _ => {}
    }

    let mut out: Vec<(NaiveDate, &'static str)> = days
        .into_iter()
        .filter_map(|(d, name)| d.map(|d| (d, name)))
        .collect();
    out.sort_by_key(|(d, _)| *d);
    out
}

/// Day of March of the vernal equinox by the standard approximation used for 1980–2099:
/// `floor(20.8431 + 0.242194 × (Y − 1980) − floor((Y − 1980) / 4))`, in millionths so that no
/// floating-point rounding can move a day.
fn vernal_equinox_day(year: i32) -> u32 {
    equinox_day(20_843_100, year)
}

/// Day of September of the autumnal equinox, same formula with 23.2488.
fn autumnal_equinox_day(year: i32) -> u32 {
    equinox_day(23_248_800, year)
}

fn equinox_day(base_millionths: i64, year: i32) -> u32 {
    let y = i64::from(year) - 1980;
    let millionths = base_millionths + 242_194 * y - 1_000_000 * y.div_euclid(4);
    // Out of the formula's range the result is meaningless; 0 yields no date downstream.
    u32::try_from(millionths.div_euclid(1_000_000)).unwrap_or(0)
}

/// Art. 3(2) 振替休日. Since 2007: when a holiday falls on Sunday, the nearest following day
/// that is not a holiday. From 1973-04-12 to 2006: only the Monday after, and only if that
/// Monday was not itself a holiday.
fn substitute_days(national: &BTreeSet<NaiveDate>) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for &date in national.iter().filter(|d| d.weekday() == Weekday::Sun) {
        if date >= AMENDMENT_2007 {
            // At most a handful of consecutive holidays exist; 7 bounds the walk regardless.
            let mut next = date.checked_add_days(Days::new(1));
            for _ in 0..7 {
                match next {
                    Some(d) if national.contains(&d) => next = d.checked_add_days(Days::new(1)),
                    _ => break,
                }
            }
            if let Some(d) = next.filter(|d| !national.contains(d)) {
                out.insert(d);
            }
        } else if let Some(d) = date
            .checked_add_days(Days::new(1))
            .filter(|d| !national.contains(d))
        {
            out.insert(d);
        }
    }
    out
}

/// Art. 3(3) 国民の休日: a day that is not a 国民の祝日 but whose previous and next days are.
/// Introduced on 1985-12-27; until 2006 it excluded Sundays and substitute holidays.
fn citizens_days(
    national: &BTreeSet<NaiveDate>,
    substitutes: &BTreeSet<NaiveDate>,
) -> BTreeSet<NaiveDate> {
    national
        .iter()
        .filter_map(|d| d.checked_add_days(Days::new(1)))
        .filter(|between| !national.contains(between) && !substitutes.contains(between))
        .filter(|between| {
            between
                .checked_add_days(Days::new(1))
                .is_some_and(|after| national.contains(&after))
        })
        .filter(|between| {
            if *between >= AMENDMENT_2007 {
                true
            } else {
                *between >= CITIZENS_HOLIDAY_START && between.weekday() != Weekday::Sun
            }
        })
        .collect()
}

/// The 2005 amendment (昭和の日, みどりの日 on 4 May, the new art. 3(2) and 3(3)) took effect on
/// 2007-01-01.
const AMENDMENT_2007: NaiveDate = match NaiveDate::from_ymd_opt(2007, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// Art. 3(3) took effect on promulgation of the 1985 amendment.
const CITIZENS_HOLIDAY_START: NaiveDate = match NaiveDate::from_ymd_opt(1985, 12, 27) {
    Some(d) => d,
    None => NaiveDate::MAX,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN)
    }

    fn assert_year(year: i32, expected: &[(u32, u32, &str, HolidayKind)]) {
        let got: Vec<(NaiveDate, String, HolidayKind)> = holidays_in_year(year)
            .into_iter()
            .map(|h| (h.date, h.name, h.kind))
            .collect();
        let want: Vec<(NaiveDate, String, HolidayKind)> = expected
            .iter()
            .map(|&(m, day, name, kind)| (d(year, m, day), name.to_owned(), kind))
            .collect();
        assert_eq!(got, want, "holidays of {year}");
        for (date, name, kind) in &want {
            let h = holiday_on(*date);
            assert_eq!(
                h.as_ref().map(|h| (h.name.as_str(), h.kind)),
                Some((name.as_str(), *kind)),
                "holiday_on({date})"
            );
        }
    }

    #[test]
    fn official_data_is_well_formed() {
        let parsed: usize = OFFICIAL_YEARS.map(|y| official_holidays(y).len()).sum();
        assert_eq!(parsed, OFFICIAL.len(), "every shipped date is a real date");
        let counts: Vec<usize> = OFFICIAL_YEARS.map(|y| official_holidays(y).len()).collect();
        assert_eq!(counts, vec![21, 19, 18, 17]);
        for year in OFFICIAL_YEARS {
            let list = official_holidays(year);
            assert!(
                list.windows(2).all(|w| w[0].date < w[1].date),
                "{year} sorted"
            );
            assert!(list.iter().all(|h| h.date.year() == year));
        }
    }

    #[test]
    fn rule_generator_reproduces_the_official_lists() {
        for year in OFFICIAL_YEARS {
            assert_eq!(rule_holidays(year), official_holidays(year), "year {year}");
        }
    }

    #[test]
    fn every_2026_holiday() {
        assert_year(
            2026,
            &[
                (1, 1, "元日", National),
                (1, 12, "成人の日", National),
                (2, 11, "建国記念の日", National),
                (2, 23, "天皇誕生日", National),
                (3, 20, "春分の日", National),
                (4, 29, "昭和の日", National),
                (5, 3, "憲法記念日", National),
                (5, 4, "みどりの日", National),
                (5, 5, "こどもの日", National),
                (5, 6, "振替休日", Substitute),
                (7, 20, "海の日", National),
                (8, 11, "山の日", National),
                (9, 21, "敬老の日", National),
                (9, 22, "国民の休日", Citizens),
                (9, 23, "秋分の日", National),
                (10, 12, "スポーツの日", National),
                (11, 3, "文化の日", National),
                (11, 23, "勤労感謝の日", National),
            ],
        );
    }

    #[test]
    fn every_2027_holiday() {
        assert_year(
            2027,
            &[
                (1, 1, "元日", National),
                (1, 11, "成人の日", National),
                (2, 11, "建国記念の日", National),
                (2, 23, "天皇誕生日", National),
                (3, 21, "春分の日", National),
                (3, 22, "振替休日", Substitute),
                (4, 29, "昭和の日", National),
                (5, 3, "憲法記念日", National),
                (5, 4, "みどりの日", National),
                (5, 5, "こどもの日", National),
                (7, 19, "海の日", National),
                (8, 11, "山の日", National),
                (9, 20, "敬老の日", National),
                (9, 23, "秋分の日", National),
                (10, 11, "スポーツの日", National),
                (11, 3, "文化の日", National),
                (11, 23, "勤労感謝の日", National),
            ],
        );
    }

    #[test]
    fn shipped_weekdays_match_the_act() {
        // The three derived days of 2026–2027 that the brief names, checked against the calendar.
        assert_eq!(d(2026, 5, 3).weekday(), Weekday::Sun);
        assert_eq!(d(2026, 5, 6).weekday(), Weekday::Wed);
        assert_eq!(d(2026, 9, 22).weekday(), Weekday::Tue);
        assert_eq!(d(2027, 3, 21).weekday(), Weekday::Sun);
        assert_eq!(d(2027, 3, 22).weekday(), Weekday::Mon);
        // Every Happy Monday holiday is a Monday.
        for h in OFFICIAL_YEARS.flat_map(official_holidays) {
            if [SEIJIN, UMI, KEIRO, SPORTS].contains(&h.name.as_str()) {
                assert_eq!(h.date.weekday(), Weekday::Mon, "{h:?}");
            }
        }
    }

    #[test]
    fn non_holidays() {
        for date in [
            d(2026, 1, 2),
            d(2026, 2, 24),
            d(2026, 4, 30),
            d(2026, 5, 7),
            d(2026, 9, 24),
            d(2026, 12, 23), // the Heisei Emperor's birthday, no longer a holiday
            d(2027, 3, 20),
            d(2027, 5, 6),
            d(2027, 9, 21),
            d(2027, 9, 22),
            d(2027, 12, 29),
        ] {
            assert_eq!(holiday_on(date), None, "{date}");
        }
    }

    #[test]
    fn citizens_holiday_is_a_day_sandwiched_between_two_holidays() {
        for date in [
            d(2009, 9, 22),
            d(2015, 9, 22),
            d(2026, 9, 22),
            d(2032, 9, 21),
        ] {
            assert_eq!(holiday_on(date).map(|h| h.kind), Some(Citizens), "{date}");
        }
        // Before 2007 the rule made 4 May a citizens' holiday, except when it was a substitute.
        assert_eq!(holiday_on(d(1988, 5, 4)).map(|h| h.kind), Some(Citizens));
        assert_eq!(holiday_on(d(2006, 5, 4)).map(|h| h.kind), Some(Citizens));
        assert_eq!(holiday_on(d(1998, 5, 4)).map(|h| h.kind), Some(Substitute));
        // A Sunday was never a citizens' holiday under the old rule.
        assert_eq!(holiday_on(d(1997, 5, 4)), None);
        // Not yet in force before 1985: 4 May 1982 was an ordinary Tuesday.
        assert_eq!(d(1982, 5, 4).weekday(), Weekday::Tue);
        assert_eq!(holiday_on(d(1982, 5, 4)), None);
    }

    #[test]
    fn substitute_holiday_skips_following_holidays_since_2007() {
        // 2008-05-04 (Sun) → 5 May is a holiday → substitute on Tuesday 6 May.
        assert_eq!(holiday_on(d(2008, 5, 6)).map(|h| h.kind), Some(Substitute));
        // 2009-05-03 (Sun) → substitute on Wednesday 6 May.
        assert_eq!(holiday_on(d(2009, 5, 6)).map(|h| h.kind), Some(Substitute));
    }

    #[test]
    fn special_years() {
        let names = |y: i32| -> Vec<(NaiveDate, String)> {
            holidays_in_year(y)
                .into_iter()
                .map(|h| (h.date, h.name))
                .collect()
        };
        let y2019 = names(2019);
        for (date, name) in [
            (d(2019, 4, 30), KOKUMIN_NO_KYUJITSU),
            (d(2019, 5, 1), SOKUI_NO_HI),
            (d(2019, 5, 2), KOKUMIN_NO_KYUJITSU),
            (d(2019, 5, 6), FURIKAE),
            (d(2019, 10, 22), SOKUIREI_SEIDEN_NO_GI),
        ] {
            assert!(y2019.contains(&(date, name.to_owned())), "{date} {name}");
        }
        assert!(!y2019.iter().any(|(_, n)| n == TENNO_TANJOBI));
        let y2020 = names(2020);
        for (date, name) in [
            (d(2020, 2, 24), FURIKAE),
            (d(2020, 7, 23), UMI),
            (d(2020, 7, 24), SPORTS),
            (d(2020, 8, 10), YAMA),
        ] {
            assert!(y2020.contains(&(date, name.to_owned())), "{date} {name}");
        }
        let y2021 = names(2021);
        for (date, name) in [
            (d(2021, 7, 22), UMI),
            (d(2021, 7, 23), SPORTS),
            (d(2021, 8, 8), YAMA),
            (d(2021, 8, 9), FURIKAE),
        ] {
            assert!(y2021.contains(&(date, name.to_owned())), "{date} {name}");
        }
        assert_eq!(
            holiday_on(d(1989, 2, 24)).map(|h| h.name),
            Some(TAISO_NO_REI.to_owned())
        );
        assert_eq!(
            holiday_on(d(1988, 4, 29)).map(|h| h.name),
            Some(TENNO_TANJOBI.to_owned())
        );
        assert_eq!(
            holiday_on(d(2018, 12, 24)).map(|h| h.kind),
            Some(Substitute)
        );
    }

    #[test]
    fn equinox_formula_matches_known_days() {
        // (year, vernal, autumnal) from the Cabinet Office lists and the NAO almanac.
        for (year, spring, autumn) in [
            (1980, 20, 23),
            (2012, 20, 22),
            (2016, 20, 22),
            (2019, 21, 23),
            (2023, 21, 23),
            (2024, 20, 22),
            (2025, 20, 23),
            (2026, 20, 23),
            (2027, 21, 23),
            (2028, 20, 22),
        ] {
            assert_eq!(vernal_equinox_day(year), spring, "vernal {year}");
            assert_eq!(autumnal_equinox_day(year), autumn, "autumnal {year}");
        }
    }

    #[test]
    fn generated_years_are_consistent() {
        for year in RULE_YEARS {
            let list = holidays_in_year(year);
            assert!((12..=24).contains(&list.len()), "{year}: {}", list.len());
            assert!(list.windows(2).all(|w| w[0].date < w[1].date), "{year}");
            let national: BTreeSet<NaiveDate> = list
                .iter()
                .filter(|h| h.kind == National)
                .map(|h| h.date)
                .collect();
            for h in &list {
                assert_eq!(h.date.year(), year);
                let prev = h.date.pred_opt().unwrap_or(NaiveDate::MIN);
                let next = h.date.succ_opt().unwrap_or(NaiveDate::MAX);
                match h.kind {
                    National => {}
                    Substitute => {
                        // Walk back over holidays to the Sunday that caused it.
                        let mut day = prev;
                        while national.contains(&day) && day.weekday() != Weekday::Sun {
                            day = day.pred_opt().unwrap_or(NaiveDate::MIN);
                        }
                        assert!(
                            national.contains(&day) && day.weekday() == Weekday::Sun,
                            "{h:?}"
                        );
                    }
                    Citizens => {
                        assert!(
                            national.contains(&prev) && national.contains(&next),
                            "{h:?}"
                        )
                    }
                }
            }
        }
    }

    #[test]
    fn outside_rule_years_is_empty() {
        assert!(holidays_in_year(1979).is_empty());
        assert!(holidays_in_year(2100).is_empty());
        assert_eq!(holiday_on(d(2100, 1, 1)), None);
    }
}
