//! Yen arithmetic of the bill (SPEC §5). Everything is integer yen; every rounding is a floor,
//! done once where the SPEC says, in exact integer arithmetic (no floating point).

use chrono::NaiveDate;

use crate::billing::{BillingError, YearMonth};

/// Consumption tax rate as a fraction `TAX_NUM / TAX_DEN` of a tax-inclusive price: 10 / 110
/// (SPEC §4 line 49: prices include 10% tax).
const TAX_NUM: i128 = 10;
const TAX_DEN: i128 = 110;

/// Late-payment interest: 14.6% a year = 146 / 1000, per day over 365 days (SPEC §5 line 91).
const INTEREST_PER_MILLE: i128 = 146;
const INTEREST_DEN: i128 = 1000 * 365;

/// Narrows an exact i128 result back to yen. Inputs that could overflow are far beyond any real
/// bill; saturating keeps the function total instead of panicking.
fn to_yen(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// First-month pro-rata of one charge line: `floor(monthly × days_used / days_in_month)`
/// (SPEC §5 lines 84–86). Each line is rounded on its own, so callers call this once per line.
///
/// `days_used` is clamped to `0..=days_in_month` so the result never exceeds `monthly`; a
/// `days_in_month` of 0 (impossible for a real month) yields 0 rather than dividing by zero.
pub fn prorate(monthly: i64, days_used: u32, days_in_month: u32) -> i64 {
    if days_in_month == 0 {
        return 0;
    }
    let used = i128::from(days_used.min(days_in_month));
    to_yen(i128::from(monthly) * used / i128::from(days_in_month))
}

/// Consumption tax contained in a tax-inclusive total: `floor(taxable_total × 10 / 110)`, one
/// rounding per bill (SPEC §5 line 89). Zero for a non-positive total.
pub fn tax_contained(taxable_total: i64) -> i64 {
    if taxable_total <= 0 {
        return 0;
    }
    to_yen(i128::from(taxable_total) * TAX_NUM / TAX_DEN)
}

/// Late-payment interest: `floor(unpaid × 0.146 × days_late / 365)` (SPEC §5 line 91), computed
/// exactly as `unpaid × 146 × days_late / 365000`. Zero when nothing is unpaid or nothing is late.
///
/// SPEC §8 example 4: `late_interest(12_100, 30) == 145`.
pub fn late_interest(unpaid: i64, days_late: i64) -> i64 {
    if unpaid <= 0 || days_late <= 0 {
        return 0;
    }
    i128::from(unpaid)
        .checked_mul(INTEREST_PER_MILLE)
        .and_then(|v| v.checked_mul(i128::from(days_late)))
        .map_or(i64::MAX, |v| to_yen(v / INTEREST_DEN))
}

/// Due date of a month's bill: the last day of the following month (SPEC §5 line 82).
pub fn due_date(month: YearMonth) -> Result<NaiveDate, BillingError> {
    month
        .next()
        .map(|m| m.last_day())
        .ok_or(BillingError::DateOutOfRange)
}

/// Whole days from `due` to `paid_on`; 0 when paid on or before the due date.
pub fn days_late(due: NaiveDate, paid_on: NaiveDate) -> i64 {
    (paid_on - due).num_days().max(0)
}

/// `12100` → `"12,100円"`, `-5500` → `"-5,500円"`: the yen amounts of the Japanese statement.
pub fn format_yen(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    if amount < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out.push('円');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn yen_format() {
        assert_eq!(format_yen(0), "0円");
        assert_eq!(format_yen(999), "999円");
        assert_eq!(format_yen(1000), "1,000円");
        assert_eq!(format_yen(12_100), "12,100円");
        assert_eq!(format_yen(1_234_567), "1,234,567円");
        assert_eq!(format_yen(-5_500), "-5,500円");
        assert_eq!(format_yen(i64::MIN), "-9,223,372,036,854,775,808円");
    }

    #[test]
    fn prorate_rounds_down_each_line() {
        assert_eq!(prorate(11_000, 15, 30), 5_500);
        assert_eq!(prorate(5_500, 15, 30), 2_750);
        // 11000 × 1 / 31 = 354.8… → 354
        assert_eq!(prorate(11_000, 1, 31), 354);
        // 16500 × 10 / 29 = 5689.6… → 5689 (leap February)
        assert_eq!(prorate(16_500, 10, 29), 5_689);
        assert_eq!(prorate(11_000, 28, 28), 11_000);
        assert_eq!(prorate(11_000, 40, 30), 11_000);
        assert_eq!(prorate(11_000, 5, 0), 0);
    }

    #[test]
    fn tax_one_rounding() {
        assert_eq!(tax_contained(12_100), 1_100);
        assert_eq!(tax_contained(49_500), 4_500);
        assert_eq!(tax_contained(5_500), 500);
        assert_eq!(tax_contained(109), 9); // 9.909… → 9
        assert_eq!(tax_contained(0), 0);
        assert_eq!(tax_contained(-100), 0);
    }

    #[test]
    fn interest_and_due_dates() {
        assert_eq!(late_interest(12_100, 30), 145);
        assert_eq!(late_interest(12_100, 0), 0);
        assert_eq!(late_interest(12_100, -3), 0);
        assert_eq!(late_interest(0, 30), 0);
        // 10000 × 0.146 × 1 / 365 = 4.0 exactly
        assert_eq!(late_interest(10_000, 1), 4);
        assert_eq!(late_interest(i64::MAX, i64::MAX), i64::MAX);
        let nov: YearMonth = "2026-11".parse().unwrap();
        assert_eq!(due_date(nov).unwrap(), d(2026, 12, 31));
        let jan: YearMonth = "2028-01".parse().unwrap();
        assert_eq!(due_date(jan).unwrap(), d(2028, 2, 29));
        assert!(due_date(YearMonth::of(NaiveDate::MAX)).is_err());
        assert_eq!(days_late(d(2026, 12, 31), d(2027, 1, 30)), 30);
        assert_eq!(days_late(d(2026, 12, 31), d(2026, 12, 31)), 0);
        assert_eq!(days_late(d(2026, 12, 31), d(2026, 12, 1)), 0);
    }

    proptest! {
        #[test]
        fn prorate_never_exceeds_monthly(
            monthly in 0i64..=10_000_000,
            days_in_month in 28u32..=31,
            used in 0u32..=40,
        ) {
            let p = prorate(monthly, used, days_in_month);
            prop_assert!(p >= 0 && p <= monthly);
            if used >= days_in_month {
                prop_assert_eq!(p, monthly);
            }
        }

        #[test]
        fn tax_is_floor_of_ten_over_110(total in 0i64..=1_000_000_000_000) {
            let tax = tax_contained(total);
            prop_assert!(tax * 110 <= total * 10);
            prop_assert!((tax + 1) * 110 > total * 10);
        }

        #[test]
        fn interest_is_exact_floor(unpaid in 0i64..=100_000_000, days in 0i64..=3650) {
            let i = late_interest(unpaid, days);
            let exact = i128::from(unpaid) * 146 * i128::from(days);
            prop_assert!(i128::from(i) * 365_000 <= exact);
            prop_assert!(i128::from(i + 1) * 365_000 > exact);
        }
    }
}
