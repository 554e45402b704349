//! The complaint rule (SPEC §6 lines 110–112; terms 第7条3項): 5 or more complaint calls for one
//! contractor within 3 consecutive days flag it for suspension.

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// Complaint records needed to trip the rule (SPEC §6 line 110: "5 or more").
pub const COMPLAINT_THRESHOLD: usize = 5;

/// Length of the window in calendar days (SPEC §6 line 111: "within 3 consecutive days").
pub const COMPLAINT_WINDOW_DAYS: u64 = 3;

/// The complaints that tripped the rule.
///
/// `last_day` is the day the threshold was reached; the window is the 3 calendar days ending
/// there. `first_day` is the earliest complaint inside that window (so the span shown to staff
/// starts on a real complaint), and `count` is every complaint in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplaintWindow {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub count: usize,
}

/// Flags a contractor under the complaint rule. `complaint_days` holds one Asia/Tokyo date per
/// complaint record, in any order.
///
/// Returns the earliest window that trips the rule, "earliest" meaning the first day on which
/// 5 complaints had accumulated within the last 3 calendar days: that is the day the contractor
/// became flaggable. `None` when the rule never trips.
pub fn complaint_flag(complaint_days: &[NaiveDate]) -> Option<ComplaintWindow> {
    let mut days = complaint_days.to_vec();
    days.sort_unstable();
    let mut lo = 0;
    let mut hi = 0;
    while hi < days.len() {
        let last_day = *days.get(hi)?;
        // Advance past every complaint on `last_day` so the count includes all of that day's.
        while days.get(hi + 1) == Some(&last_day) {
            hi += 1;
        }
        let window_start = last_day.checked_sub_days(Days::new(COMPLAINT_WINDOW_DAYS - 1));
        while days
            .get(lo)
            .is_some_and(|first| window_start.is_some_and(|ws| *first < ws))
        {
            lo += 1;
        }
        let count = hi + 1 - lo;
        if count >= COMPLAINT_THRESHOLD {
            return Some(ComplaintWindow {
                first_day: *days.get(lo)?,
                last_day,
                count,
            });
        }
        hi += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, day).unwrap()
    }

    #[test]
    fn five_in_three_days_trips() {
        let w = complaint_flag(&[d(10), d(11), d(12), d(12), d(10)]).unwrap();
        assert_eq!(
            w,
            ComplaintWindow {
                first_day: d(10),
                last_day: d(12),
                count: 5,
            }
        );
    }

    #[test]
    fn five_on_one_day_trips() {
        let w = complaint_flag(&[d(11); 6]).unwrap();
        assert_eq!((w.first_day, w.last_day, w.count), (d(11), d(11), 6));
    }

    #[test]
    fn four_is_not_enough() {
        assert_eq!(complaint_flag(&[d(10), d(11), d(12), d(12)]), None);
        assert_eq!(complaint_flag(&[]), None);
    }

    #[test]
    fn spread_over_four_days_does_not_trip() {
        // [10,12] holds 4, [11,13] holds 4: never 5 within 3 consecutive days.
        assert_eq!(complaint_flag(&[d(10), d(11), d(12), d(12), d(13)]), None);
    }

    #[test]
    fn earliest_window_is_returned() {
        let days = [
            d(1),
            d(1),
            d(2),
            d(3),
            d(3),
            d(20),
            d(20),
            d(20),
            d(20),
            d(20),
        ];
        let w = complaint_flag(&days).unwrap();
        assert_eq!((w.first_day, w.last_day, w.count), (d(1), d(3), 5));
    }

    #[test]
    fn window_crosses_month_end() {
        let feb = |day| NaiveDate::from_ymd_opt(2028, 2, day).unwrap();
        let mar1 = NaiveDate::from_ymd_opt(2028, 3, 1).unwrap();
        let days = [feb(28), feb(29), mar1, mar1, mar1];
        let w = complaint_flag(&days).unwrap();
        assert_eq!((w.first_day, w.last_day, w.count), (feb(28), mar1, 5));
    }

    /// Brute force: some 3-day window [s, s+2] holds 5 or more.
    fn trips(days: &[NaiveDate]) -> bool {
        days.iter().any(|s| {
            let end = *s + Days::new(2);
            days.iter().filter(|x| *x >= s && **x <= end).count() >= 5
        })
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(offsets in proptest::collection::vec(0u64..40, 0..30)) {
            let base = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
            let days: Vec<NaiveDate> = offsets.iter().map(|o| base + Days::new(*o)).collect();
            let got = complaint_flag(&days);
            prop_assert_eq!(got.is_some(), trips(&days));
            if let Some(w) = got {
                prop_assert!(w.count >= 5);
                prop_assert!((w.last_day - w.first_day).num_days() <= 2);
                let in_window = days
                    .iter()
                    .filter(|x| **x >= w.first_day && **x <= w.last_day)
                    .count();
                prop_assert_eq!(in_window, w.count);
                // Nothing trips earlier.
                let before: Vec<NaiveDate> =
                    days.iter().copied().filter(|x| *x < w.last_day).collect();
                prop_assert!(!trips(&before));
            }
        }
    }
}
