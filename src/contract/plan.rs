//! The price list (SPEC §4 lines 49–77; terms 別紙 1–2).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::billing::month::quote_input;
use crate::contract::ContractError;

/// A plan of the price list. The four SD plans are on sale since 2022-07-01; the four legacy
/// plans took applications up to 2022-06-30 and existing contracts keep them (SPEC §4 line 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plan {
    Sd100,
    Sd200,
    Sd300,
    Sd500,
    Standard,
    Business,
    Enterprise,
    Premium,
}

/// The price tier a plan sits in: each legacy plan prices like the SD plan of the same row
/// (Standard = SD100, …) except for its cancellation fee.
#[derive(Clone, Copy)]
enum Tier {
    T100,
    T200,
    T300,
    T500,
}

/// Overage unit price per call beyond the included count (SPEC §4 lines 55–67, 69–70).
const OVERAGE_UNIT: i64 = 220;
/// Overage unit price with the hearing option (SPEC §4 line 70: "330 instead of 220").
const OVERAGE_UNIT_HEARING: i64 = 330;
/// Cancellation fee of the SD plans, non-taxable (SPEC §4 lines 55–58).
const CANCELLATION_FEE_SD: i64 = 10_000;
/// Cancellation fee of the legacy plans, non-taxable (SPEC §4 lines 64–67).
const CANCELLATION_FEE_LEGACY: i64 = 20_000;

impl Plan {
    pub const ALL: [Plan; 8] = [
        Plan::Sd100,
        Plan::Sd200,
        Plan::Sd300,
        Plan::Sd500,
        Plan::Standard,
        Plan::Business,
        Plan::Enterprise,
        Plan::Premium,
    ];

    const fn tier(self) -> Tier {
        match self {
            Plan::Sd100 | Plan::Standard => Tier::T100,
            Plan::Sd200 | Plan::Business => Tier::T200,
            Plan::Sd300 | Plan::Enterprise => Tier::T300,
            Plan::Sd500 | Plan::Premium => Tier::T500,
        }
    }

    /// Monthly base fee, tax included (SPEC §4 lines 55–58, 64–67).
    pub const fn monthly_base(self) -> i64 {
        match self.tier() {
            Tier::T100 => 11_000,
            Tier::T200 => 22_000,
            Tier::T300 => 33_000,
            Tier::T500 => 55_000,
        }
    }

    /// Calls included in the base fee; never prorated (SPEC §5 lines 86–87).
    pub const fn included_calls(self) -> u32 {
        match self.tier() {
            Tier::T100 => 100,
            Tier::T200 => 200,
            Tier::T300 => 300,
            Tier::T500 => 500,
        }
    }

    /// Price of each call beyond the included count: 220, or 330 with the hearing option
    /// (SPEC §4 lines 69–70).
    pub const fn overage_unit(self, hearing: bool) -> i64 {
        if hearing {
            OVERAGE_UNIT_HEARING
        } else {
            OVERAGE_UNIT
        }
    }

    /// Non-taxable cancellation fee: 10,000 for SD plans, 20,000 for legacy plans (SPEC §4).
    pub const fn cancellation_fee(self) -> i64 {
        if self.is_legacy() {
            CANCELLATION_FEE_LEGACY
        } else {
            CANCELLATION_FEE_SD
        }
    }

    /// Monthly fee of the hearing option on this plan, tax included (SPEC §4 lines 72–77).
    pub const fn hearing_option_fee(self) -> i64 {
        match self.tier() {
            Tier::T100 => 5_500,
            Tier::T200 => 11_000,
            Tier::T300 => 16_500,
            Tier::T500 => 27_500,
        }
    }

    /// Legacy plans are closed to new applications after 2022-06-30 (SPEC §4 line 60).
    pub const fn is_legacy(self) -> bool {
        matches!(
            self,
            Plan::Standard | Plan::Business | Plan::Enterprise | Plan::Premium
        )
    }

    /// Canonical name: `SD100` … `SD500`, `Standard` … `Premium`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Plan::Sd100 => "SD100",
            Plan::Sd200 => "SD200",
            Plan::Sd300 => "SD300",
            Plan::Sd500 => "SD500",
            Plan::Standard => "Standard",
            Plan::Business => "Business",
            Plan::Enterprise => "Enterprise",
            Plan::Premium => "Premium",
        }
    }

    /// Name as printed in the terms' price list (別紙), for the Japanese statement.
    pub const fn name_ja(self) -> &'static str {
        match self {
            Plan::Sd100 => "SD100プラン",
            Plan::Sd200 => "SD200プラン",
            Plan::Sd300 => "SD300プラン",
            Plan::Sd500 => "SD500プラン",
            Plan::Standard => "スタンダードプラン",
            Plan::Business => "ビジネスプラン",
            Plan::Enterprise => "エンタープライズプラン",
            Plan::Premium => "プレミアムプラン",
        }
    }
}

/// Whether a legacy plan could still be applied for on `date`: up to and including 2022-06-30
/// (SPEC §4 line 60).
pub(crate) fn legacy_open_on(date: NaiveDate) -> bool {
    (date.year(), date.month(), date.day()) <= (2022, 6, 30)
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = ContractError;

    /// Case-insensitive canonical names (`sd100`, `STANDARD`), the Japanese names
    /// (`スタンダード`, `ビジネス`, `エンタープライズ`, `プレミアム`), each optionally followed by
    /// `プラン` (as the terms write them) and surrounded by whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_suffix("プラン").unwrap_or(t).trim();
        let lower = t.to_ascii_lowercase();
        let plan = match lower.as_str() {
            "sd100" => Plan::Sd100,
            "sd200" => Plan::Sd200,
            "sd300" => Plan::Sd300,
            "sd500" => Plan::Sd500,
            "standard" | "スタンダード" => Plan::Standard,
            "business" | "ビジネス" => Plan::Business,
            "enterprise" | "エンタープライズ" => Plan::Enterprise,
            "premium" | "プレミアム" => Plan::Premium,
            _ => return Err(ContractError::UnknownPlan(quote_input(s))),
        };
        Ok(plan)
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_table_sd() {
        let rows = [
            (Plan::Sd100, 11_000, 100, 5_500),
            (Plan::Sd200, 22_000, 200, 11_000),
            (Plan::Sd300, 33_000, 300, 16_500),
            (Plan::Sd500, 55_000, 500, 27_500),
        ];
        for (plan, base, calls, option) in rows {
            assert_eq!(plan.monthly_base(), base);
            assert_eq!(plan.included_calls(), calls);
            assert_eq!(plan.hearing_option_fee(), option);
            assert_eq!(plan.overage_unit(false), 220);
            assert_eq!(plan.overage_unit(true), 330);
            assert_eq!(plan.cancellation_fee(), 10_000);
            assert!(!plan.is_legacy());
        }
    }

    #[test]
    fn price_table_legacy() {
        let rows = [
            (Plan::Standard, 11_000, 100, 5_500),
            (Plan::Business, 22_000, 200, 11_000),
            (Plan::Enterprise, 33_000, 300, 16_500),
            (Plan::Premium, 55_000, 500, 27_500),
        ];
        for (plan, base, calls, option) in rows {
            assert_eq!(plan.monthly_base(), base);
            assert_eq!(plan.included_calls(), calls);
            assert_eq!(plan.hearing_option_fee(), option);
            assert_eq!(plan.overage_unit(false), 220);
            assert_eq!(plan.overage_unit(true), 330);
            assert_eq!(plan.cancellation_fee(), 20_000);
            assert!(plan.is_legacy());
        }
    }

    #[test]
    fn names_parse_and_display() {
        for plan in Plan::ALL {
            assert_eq!(plan.to_string().parse::<Plan>().unwrap(), plan);
            assert_eq!(
                plan.to_string().to_lowercase().parse::<Plan>().unwrap(),
                plan
            );
            assert_eq!(plan.name_ja().parse::<Plan>().unwrap(), plan);
        }
        assert_eq!("sd100".parse::<Plan>().unwrap(), Plan::Sd100);
        assert_eq!(" Sd500 ".parse::<Plan>().unwrap(), Plan::Sd500);
        assert_eq!("スタンダード".parse::<Plan>().unwrap(), Plan::Standard);
        assert_eq!("ビジネス".parse::<Plan>().unwrap(), Plan::Business);
        assert_eq!(
            "エンタープライズ".parse::<Plan>().unwrap(),
            Plan::Enterprise
        );
        assert_eq!("プレミアム".parse::<Plan>().unwrap(), Plan::Premium);
        assert_eq!(Plan::Sd100.to_string(), "SD100");
        assert_eq!(Plan::Standard.to_string(), "Standard");
        for bad in ["", "sd1000", "SD 100", "gold", "プラン"] {
            assert!(bad.parse::<Plan>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_canonical_name() {
        assert_eq!(serde_json::to_string(&Plan::Sd100).unwrap(), "\"SD100\"");
        let p: Plan = serde_json::from_str("\"premium\"").unwrap();
        assert_eq!(p, Plan::Premium);
    }

    #[test]
    fn legacy_window_closes_after_2022_06_30() {
        assert!(legacy_open_on(
            NaiveDate::from_ymd_opt(2022, 6, 30).unwrap()
        ));
        assert!(!legacy_open_on(
            NaiveDate::from_ymd_opt(2022, 7, 1).unwrap()
        ));
    }
}
