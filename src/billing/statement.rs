//! One contractor's bill for one month (SPEC §5), in the shapes it leaves the system: JSON
//! (serde), a Japanese statement for the management screen, and a CSV row for the collection
//! agent (SPEC §5 line 93).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::billing::money::{
    days_late, due_date, format_yen, late_interest, prorate, tax_contained,
};
use crate::billing::{BillingError, YearMonth};
use crate::contract::{ContractHistory, EndCause, Plan};

/// What the ledger counted for one contractor and month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Calls that reached the contract while in force and not suspended (SPEC §3 lines 38–47).
    pub billable_calls: u32,
    /// Calls per outcome (answered, out_of_hours, …) shown on the bill for information; the
    /// engine does not price them.
    #[serde(default)]
    pub by_outcome: BTreeMap<String, u32>,
}

/// The kind of a charge line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// Plan base fee (SPEC §4), prorated in the first month (SPEC §5 line 84).
    Base,
    /// Hearing option fee (SPEC §4 lines 69–77), prorated on its own in the first month.
    HearingBase,
    /// Calls beyond the included count × 220 or 330 (SPEC §4).
    Overage,
    /// Non-taxable cancellation fee on the last month's bill (SPEC §6 lines 104–107).
    CancellationFee,
}

impl LineKind {
    fn label_ja(self) -> &'static str {
        match self {
            LineKind::Base => "基本料金",
            LineKind::HearingBase => "ヒアリングオプション",
            LineKind::Overage => "超過通話",
            LineKind::CancellationFee => "解約手数料（不課税）",
        }
    }
}

/// One charge line of a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub kind: LineKind,
    pub amount: i64,
    /// Whether the amount includes consumption tax (SPEC §5 line 90: cancellation fees do not).
    pub taxable: bool,
    /// Overage calls; only on the overage line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Price per overage call; only on the overage line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<i64>,
}

impl Line {
    fn charge(kind: LineKind, amount: i64, taxable: bool) -> Self {
        Self {
            kind,
            amount,
            taxable,
            quantity: None,
            unit_price: None,
        }
    }
}

/// The first-month pro-rata fraction (SPEC §5 lines 84–86), e.g. 15/30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProRata {
    pub days_used: u32,
    pub days_in_month: u32,
}

/// A month's bill for one contract.
///
/// `total` is the bill as issued. Late-payment interest is a later, separate non-taxable charge
/// (SPEC §5 line 90: "listed apart"), so it is never part of `total`; when a payment date is
/// known it is reported in `late_interest` and `total_with_interest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub month: YearMonth,
    pub plan: Plan,
    pub hearing: bool,
    /// Billable calls of the month.
    pub calls: u32,
    /// Calls included in the base fee; never prorated (SPEC §5 line 86).
    pub included_calls: u32,
    /// Set only when the first month is prorated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prorated_days: Option<ProRata>,
    pub lines: Vec<Line>,
    /// Sum of the taxable lines (tax included).
    pub taxable_total: i64,
    /// Consumption tax contained in `taxable_total` (SPEC §5 line 89).
    pub tax: i64,
    /// Sum of the non-taxable lines (the cancellation fee).
    pub non_taxable_total: i64,
    /// `taxable_total + non_taxable_total`: the amount billed.
    pub total: i64,
    /// Last day of the following month (SPEC §5 line 82), or the company's termination date when
    /// that is earlier (SPEC §6 line 114: all unpaid amounts fall due at once).
    pub due: NaiveDate,
    pub calls_by_outcome: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_on: Option<NaiveDate>,
    /// Days from `due` to `paid_on`, 0 when paid on time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_late: Option<i64>,
    /// Non-taxable late-payment interest on `total` (SPEC §5 line 91).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_interest: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_with_interest: Option<i64>,
}

/// Computes the bill of `month` for `history` (SPEC §5, §6).
///
/// - Refused for a month before the start month or after the last month (after a company
///   termination there are no more bills), and for a history that breaks a contract rule.
/// - The month is billed wholly on the plan in effect on its first day, or on the start day in
///   the first month (SPEC §6 line 101).
/// - First month: base and option fee each `floor(monthly × days_used / days_in_month)`
///   (SPEC §5 lines 84–86); the included call count is not prorated. The last month is billed in
///   full whatever ended the contract (SPEC §5 line 88; terms 第13条3項).
/// - The cancellation fee, when due, is added to the last month's bill (SPEC §6 line 107).
/// - With `paid_on`, late interest is `floor(total × 0.146 × days_late / 365)` (SPEC §5 line 91);
///   the unpaid amount is the whole bill as issued, cancellation fee included.
pub fn statement(
    history: &ContractHistory,
    month: YearMonth,
    usage: &Usage,
    paid_on: Option<NaiveDate>,
) -> Result<Statement, BillingError> {
    history.validate()?;
    let start_month = history.start_month();
    if month < start_month {
        return Err(BillingError::MonthBeforeStart { month, start_month });
    }
    let end = history.end()?;
    let end_month = end.map(|e| YearMonth::of(e.date));
    if let Some(end_month) = end_month.filter(|m| month > *m) {
        return Err(BillingError::MonthAfterEnd { month, end_month });
    }

    let (plan, hearing) = history.plan_for_month(month);
    let days_in_month = month.days();
    let days_used = if month == start_month {
        // SPEC §5 line 85: from the start day to month end inclusive.
        days_in_month.saturating_sub(history.start.day()) + 1
    } else {
        days_in_month
    };
    let prorated_days = (days_used < days_in_month).then_some(ProRata {
        days_used,
        days_in_month,
    });

    let mut lines = vec![Line::charge(
        LineKind::Base,
        prorate(plan.monthly_base(), days_used, days_in_month),
        true,
    )];
    if hearing {
        lines.push(Line::charge(
            LineKind::HearingBase,
            prorate(plan.hearing_option_fee(), days_used, days_in_month),
            true,
        ));
    }
    let over = usage.billable_calls.saturating_sub(plan.included_calls());
    if over > 0 {
        let unit = plan.overage_unit(hearing);
        lines.push(Line {
            kind: LineKind::Overage,
            amount: i64::from(over) * unit,
            taxable: true,
            quantity: Some(over),
            unit_price: Some(unit),
        });
    }
    if end_month == Some(month) {
        if let Some(fee) = history.cancellation_fee_due()? {
            lines.push(Line::charge(LineKind::CancellationFee, fee, false));
        }
    }

    let taxable_total: i64 = lines.iter().filter(|l| l.taxable).map(|l| l.amount).sum();
    let non_taxable_total: i64 = lines.iter().filter(|l| !l.taxable).map(|l| l.amount).sum();
    let total = taxable_total + non_taxable_total;

    let mut due = due_date(month)?;
    if let Some(e) = end.filter(|e| e.cause == EndCause::Termination) {
        due = due.min(e.date);
    }

    let (days_late, late_interest, total_with_interest) = match paid_on {
        Some(paid) => {
            let late = days_late(due, paid);
            let interest = late_interest(total, late);
            (
                Some(late),
                Some(interest),
                Some(total.saturating_add(interest)),
            )
        }
        None => (None, None, None),
    };

    Ok(Statement {
        month,
        plan,
        hearing,
        calls: usage.billable_calls,
        included_calls: plan.included_calls(),
        prorated_days,
        lines,
        taxable_total,
        tax: tax_contained(taxable_total),
        non_taxable_total,
        total,
        due,
        calls_by_outcome: usage.by_outcome.clone(),
        paid_on,
        days_late,
        late_interest,
        total_with_interest,
    })
}

/// Display width on a terminal: East Asian wide characters take two columns. Only used to line
/// up amounts on the Japanese statement.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

const LABEL_COLUMNS: usize = 40;
const AMOUNT_COLUMNS: usize = 14;
const RULE: &str = "------------------------------------------------------";

fn push_row(out: &mut String, label: &str, value: &str) {
    out.push_str(label);
    let pad = LABEL_COLUMNS.saturating_sub(display_width(label))
        + AMOUNT_COLUMNS.saturating_sub(display_width(value));
    out.push_str(&" ".repeat(pad.max(1)));
    out.push_str(value);
    out.push('\n');
}

fn date_ja(d: NaiveDate) -> String {
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

fn month_ja(m: YearMonth) -> String {
    format!("{}年{}月", m.year(), m.month())
}

/// Outcome names come from the ledger; control characters are replaced so a stray newline
/// cannot forge statement lines.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// RFC 4180 quoting: a field holding a comma, quote, CR or LF is wrapped in quotes with inner
/// quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl Statement {
    /// Sum of the lines of one kind (0 when absent).
    pub fn amount_of(&self, kind: LineKind) -> i64 {
        self.lines
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.amount)
            .sum()
    }

    fn overage_line(&self) -> Option<&Line> {
        self.lines.iter().find(|l| l.kind == LineKind::Overage)
    }

    /// A Japanese invoice (請求書) for the management screen (SPEC §5 line 81), amounts aligned
    /// for a monospace font.
    pub fn render_ja(&self) -> String {
        let mut out = String::new();
        out.push_str("請求書\n");
        let _ = writeln!(out, "対象月: {}", month_ja(self.month));
        let option = if self.hearing {
            "ヒアリングオプションあり"
        } else {
            "ヒアリングオプションなし"
        };
        let _ = writeln!(out, "プラン: {}（{}）", self.plan.name_ja(), option);
        let _ = writeln!(
            out,
            "通話件数: {}件（基本料金内 {}件）",
            self.calls, self.included_calls
        );
        out.push_str(RULE);
        out.push('\n');
        for line in self.lines.iter().filter(|l| l.taxable) {
            let label = match (
                line.kind,
                self.prorated_days,
                line.quantity,
                line.unit_price,
            ) {
                (LineKind::Base | LineKind::HearingBase, Some(p), _, _) => format!(
                    "{}（日割 {}/{}日）",
                    line.kind.label_ja(),
                    p.days_used,
                    p.days_in_month
                ),
                (LineKind::Overage, _, Some(q), Some(u)) => {
                    format!("超過通話 {}件 × {}", q, format_yen(u))
                }
                (kind, _, _, _) => kind.label_ja().to_owned(),
            };
            push_row(&mut out, &label, &format_yen(line.amount));
        }
        out.push_str(RULE);
        out.push('\n');
        push_row(&mut out, "課税対象計", &format_yen(self.taxable_total));
        push_row(&mut out, "（うち消費税 10%）", &format_yen(self.tax));
        for line in self.lines.iter().filter(|l| !l.taxable) {
            push_row(&mut out, line.kind.label_ja(), &format_yen(line.amount));
        }
        out.push_str(RULE);
        out.push('\n');
        push_row(&mut out, "合計", &format_yen(self.total));
        let _ = writeln!(out, "お支払期限: {}", date_ja(self.due));
        if let (Some(paid), Some(late), Some(interest), Some(with)) = (
            self.paid_on,
            self.days_late,
            self.late_interest,
            self.total_with_interest,
        ) {
            let _ = writeln!(out, "お支払日: {}（遅延 {}日）", date_ja(paid), late);
            push_row(
                &mut out,
                "遅延損害金（年14.6%・不課税）",
                &format_yen(interest),
            );
            push_row(&mut out, "遅延損害金を含む合計", &format_yen(with));
        }
        if !self.calls_by_outcome.is_empty() {
            out.push_str("通話内訳:\n");
            for (outcome, n) in &self.calls_by_outcome {
                let _ = writeln!(out, "  {}: {}件", printable(outcome), n);
            }
        }
        out
    }

    /// Column names of [`Statement::csv_row`], without a line ending.
    pub fn csv_header() -> &'static str {
        "contractor_id,contractor_name,month,plan,hearing,calls,included_calls,\
         prorated_days_used,prorated_days_in_month,base,hearing_base,overage_calls,\
         overage_unit_price,overage,cancellation_fee,taxable_total,tax,non_taxable_total,total,\
         due,paid_on,days_late,late_interest,total_with_interest"
    }

    /// One CSV row per contractor and month for the collection agent (SPEC §5 line 93), without a
    /// line ending; fields are RFC 4180 quoted where needed. Absent values are empty fields.
    pub fn csv_row(&self, contractor_id: &str, contractor_name: &str) -> String {
        let overage = self.overage_line();
        let fields = [
            csv_field(contractor_id),
            csv_field(contractor_name),
            self.month.to_string(),
            self.plan.to_string(),
            self.hearing.to_string(),
            self.calls.to_string(),
            self.included_calls.to_string(),
            opt(self.prorated_days.map(|p| p.days_used)),
            opt(self.prorated_days.map(|p| p.days_in_month)),
            self.amount_of(LineKind::Base).to_string(),
            self.amount_of(LineKind::HearingBase).to_string(),
            overage.and_then(|l| l.quantity).unwrap_or(0).to_string(),
            opt(overage.and_then(|l| l.unit_price)),
            self.amount_of(LineKind::Overage).to_string(),
            self.amount_of(LineKind::CancellationFee).to_string(),
            self.taxable_total.to_string(),
            self.tax.to_string(),
            self.non_taxable_total.to_string(),
            self.total.to_string(),
            self.due.to_string(),
            opt(self.paid_on),
            opt(self.days_late),
            opt(self.late_interest),
            opt(self.total_with_interest),
        ];
        fields.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Cancellation, PlanChange};
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    fn calls(n: u32) -> Usage {
        Usage {
            billable_calls: n,
            by_outcome: BTreeMap::new(),
        }
    }

    fn bill(h: &ContractHistory, month: &str, n: u32) -> Statement {
        statement(h, ym(month), &calls(n), None).unwrap()
    }

    fn kinds(s: &Statement) -> Vec<LineKind> {
        s.lines.iter().map(|l| l.kind).collect()
    }

    fn example_1_history() -> ContractHistory {
        ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false)
    }

    /// SPEC §8 example 1, verbatim.
    #[test]
    fn spec_example_1_first_month_pro_rata() {
        let s = bill(&example_1_history(), "2026-11", 130);
        assert_eq!(s.amount_of(LineKind::Base), 5_500);
        assert_eq!(
            s.prorated_days,
            Some(ProRata {
                days_used: 15,
                days_in_month: 30,
            })
        );
        let over = s.overage_line().unwrap();
        assert_eq!(
            (over.quantity, over.unit_price, over.amount),
            (Some(30), Some(220), 6_600)
        );
        assert_eq!(s.total, 12_100);
        assert_eq!(s.tax, 1_100);
        assert_eq!(s.included_calls, 100);
        assert_eq!(s.non_taxable_total, 0);
    }

    /// SPEC §8 example 2, verbatim.
    #[test]
    fn spec_example_2_hearing_option_full_month() {
        let h = ContractHistory::new(d(2026, 12, 1), Plan::Sd200, true);
        let s = bill(&h, "2026-12", 250);
        assert_eq!(
            kinds(&s),
            [LineKind::Base, LineKind::HearingBase, LineKind::Overage]
        );
        assert_eq!(s.amount_of(LineKind::Base), 22_000);
        assert_eq!(s.amount_of(LineKind::HearingBase), 11_000);
        let over = s.overage_line().unwrap();
        assert_eq!(
            (over.quantity, over.unit_price, over.amount),
            (Some(50), Some(330), 16_500)
        );
        assert_eq!(s.total, 49_500);
        assert_eq!(s.tax, 4_500);
        assert_eq!(s.prorated_days, None);
    }

    /// SPEC §8 example 3, verbatim.
    #[test]
    fn spec_example_3_cancellation_fee_outside_term_end() {
        let mut h = example_1_history();
        assert_eq!(
            h.term_on(h.start),
            Some(crate::contract::Term {
                first_day: d(2026, 11, 1),
                last_day: d(2027, 4, 30),
            })
        );
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 20),
            end_month: None,
        });
        assert_eq!(h.end_date().unwrap(), Some(d(2027, 1, 31)));
        let dec = bill(&h, "2026-12", 80);
        assert_eq!(dec.amount_of(LineKind::CancellationFee), 0);
        let jan = bill(&h, "2027-01", 80);
        let fee = jan.lines.last().unwrap();
        assert_eq!(
            (fee.kind, fee.amount, fee.taxable),
            (LineKind::CancellationFee, 10_000, false)
        );
        assert_eq!(jan.taxable_total, 11_000);
        assert_eq!(jan.tax, 1_000);
        assert_eq!(jan.non_taxable_total, 10_000);
        assert_eq!(jan.total, 21_000);
        assert!(matches!(
            statement(&h, ym("2027-02"), &calls(0), None),
            Err(BillingError::MonthAfterEnd { .. })
        ));
    }

    /// SPEC §8 example 4, verbatim.
    #[test]
    fn spec_example_4_late_payment() {
        let s = statement(
            &example_1_history(),
            ym("2026-11"),
            &calls(130),
            Some(d(2027, 1, 30)),
        )
        .unwrap();
        assert_eq!(s.total, 12_100);
        assert_eq!(s.due, d(2026, 12, 31));
        assert_eq!(s.days_late, Some(30));
        assert_eq!(s.late_interest, Some(145));
        assert_eq!(s.total_with_interest, Some(12_245));
    }

    /// SPEC §8 example 5, verbatim, seen through the bills.
    #[test]
    fn spec_example_5_plan_change_effective_month() {
        let mut on_25th = example_1_history();
        on_25th.plan_changes.push(PlanChange {
            received: d(2026, 12, 25),
            plan: Plan::Sd200,
            hearing: false,
        });
        let mut on_26th = example_1_history();
        on_26th.plan_changes.push(PlanChange {
            received: d(2026, 12, 26),
            plan: Plan::Sd200,
            hearing: false,
        });
        assert_eq!(bill(&on_25th, "2026-12", 0).plan, Plan::Sd100);
        assert_eq!(bill(&on_25th, "2027-01", 0).plan, Plan::Sd200);
        assert_eq!(bill(&on_26th, "2027-01", 0).plan, Plan::Sd100);
        assert_eq!(bill(&on_26th, "2027-02", 0).plan, Plan::Sd200);
        assert_eq!(bill(&on_26th, "2027-02", 0).total, 22_000);
    }

    #[test]
    fn included_calls_boundary_100_vs_101() {
        let h = ContractHistory::new(d(2026, 12, 1), Plan::Sd100, false);
        let at = bill(&h, "2026-12", 100);
        assert_eq!(kinds(&at), [LineKind::Base]);
        assert_eq!(at.total, 11_000);
        let over = bill(&h, "2026-12", 101);
        assert_eq!(kinds(&over), [LineKind::Base, LineKind::Overage]);
        assert_eq!(over.total, 11_220);
        assert_eq!(bill(&h, "2026-12", 0).total, 11_000);
    }

    #[test]
    fn included_calls_not_prorated() {
        // Started on the last day of the month: one day's base, but all 100 calls included.
        let h = ContractHistory::new(d(2026, 12, 31), Plan::Sd100, false);
        let s = bill(&h, "2026-12", 100);
        assert_eq!(s.amount_of(LineKind::Base), 354); // floor(11000 × 1/31)
        assert_eq!(s.amount_of(LineKind::Overage), 0);
    }

    #[test]
    fn pro_rata_in_28_29_30_31_day_months() {
        let cases = [
            (d(2027, 2, 15), 14, 28, 5_500),  // 11000 × 14/28
            (d(2028, 2, 15), 15, 29, 5_689),  // 11000 × 15/29 = 5689.6
            (d(2026, 11, 16), 15, 30, 5_500), // 11000 × 15/30
            (d(2026, 12, 16), 16, 31, 5_677), // 11000 × 16/31 = 5677.4
            (d(2028, 2, 29), 1, 29, 379),     // 11000 × 1/29 = 379.3
        ];
        for (start, used, days, base) in cases {
            let h = ContractHistory::new(start, Plan::Sd100, false);
            let month = YearMonth::of(start);
            let s = statement(&h, month, &calls(0), None).unwrap();
            assert_eq!(
                s.prorated_days,
                Some(ProRata {
                    days_used: used,
                    days_in_month: days,
                }),
                "{start}"
            );
            assert_eq!(s.amount_of(LineKind::Base), base, "{start}");
        }
    }

    #[test]
    fn option_fee_prorated_on_its_own_line() {
        // SD300 + hearing from 2028-02-20: 10/29 days.
        let h = ContractHistory::new(d(2028, 2, 20), Plan::Sd300, true);
        let s = bill(&h, "2028-02", 301);
        assert_eq!(s.amount_of(LineKind::Base), 11_379); // 33000 × 10/29 = 11379.3
        assert_eq!(s.amount_of(LineKind::HearingBase), 5_689); // 16500 × 10/29 = 5689.6
        assert_eq!(s.amount_of(LineKind::Overage), 330);
        assert_eq!(s.total, 11_379 + 5_689 + 330);
        assert_eq!(s.tax, (11_379 + 5_689 + 330) * 10 / 110);
    }

    #[test]
    fn no_pro_rata_at_the_end() {
        let mut h = ContractHistory::new(d(2026, 11, 16), Plan::Sd100, false);
        h.cancellation = Some(Cancellation {
            received: d(2027, 3, 2),
            end_month: None,
        });
        let s = bill(&h, "2027-03", 0);
        assert_eq!(s.prorated_days, None);
        assert_eq!(s.amount_of(LineKind::Base), 11_000);
    }

    #[test]
    fn cancellation_25th_vs_26th_bills() {
        let mut h = example_1_history();
        h.cancellation = Some(Cancellation {
            received: d(2027, 2, 25),
            end_month: None,
        });
        assert_eq!(
            bill(&h, "2027-02", 0).amount_of(LineKind::CancellationFee),
            10_000
        );
        assert!(statement(&h, ym("2027-03"), &calls(0), None).is_err());
        h.cancellation = Some(Cancellation {
            received: d(2027, 2, 26),
            end_month: None,
        });
        assert_eq!(
            bill(&h, "2027-02", 0).amount_of(LineKind::CancellationFee),
            0
        );
        assert_eq!(
            bill(&h, "2027-03", 0).amount_of(LineKind::CancellationFee),
            10_000
        );
        assert!(statement(&h, ym("2027-04"), &calls(0), None).is_err());
    }

    #[test]
    fn term_last_month_notice_one_month_before_vs_one_day_late() {
        // Term 2026-11-01 … 2027-04-30; ending in April with notice by 2027-03-30 waives the fee.
        let mut h = example_1_history();
        h.cancellation = Some(Cancellation {
            received: d(2027, 3, 30),
            end_month: Some(ym("2027-04")),
        });
        let on_time = bill(&h, "2027-04", 0);
        assert_eq!(kinds(&on_time), [LineKind::Base]);
        assert_eq!(on_time.total, 11_000);
        h.cancellation = Some(Cancellation {
            received: d(2027, 3, 31),
            end_month: Some(ym("2027-04")),
        });
        let late = bill(&h, "2027-04", 0);
        assert_eq!(late.amount_of(LineKind::CancellationFee), 10_000);
        assert_eq!(late.total, 21_000);
        assert_eq!(late.tax, 1_000);
    }

    #[test]
    fn named_later_end_month_bills_through_it() {
        let mut h = example_1_history();
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 10),
            end_month: Some(ym("2027-10")),
        });
        // The second term ends 2027-10-31; notice long before → no fee.
        for m in ["2027-01", "2027-04", "2027-05", "2027-09"] {
            assert_eq!(bill(&h, m, 0).total, 11_000, "{m}");
        }
        assert_eq!(bill(&h, "2027-10", 0).non_taxable_total, 0);
        assert!(matches!(
            statement(&h, ym("2027-11"), &calls(0), None),
            Err(BillingError::MonthAfterEnd { .. })
        ));
        // A named month that is not a term end still costs the fee.
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 10),
            end_month: Some(ym("2027-07")),
        });
        assert_eq!(bill(&h, "2027-07", 0).non_taxable_total, 10_000);
    }

    #[test]
    fn named_end_month_too_early_is_refused() {
        let mut h = example_1_history();
        h.cancellation = Some(Cancellation {
            received: d(2027, 1, 26),
            end_month: Some(ym("2027-01")),
        });
        let err = statement(&h, ym("2026-12"), &calls(0), None).unwrap_err();
        assert!(err.to_string().contains("end_month 2027-01"), "{err}");
    }

    #[test]
    fn legacy_plan_bills_and_its_20000_fee() {
        let mut h = ContractHistory::new(d(2021, 4, 1), Plan::Standard, true);
        h.cancellation = Some(Cancellation {
            received: d(2026, 6, 10),
            end_month: None,
        });
        let s = bill(&h, "2026-06", 120);
        assert_eq!(s.plan, Plan::Standard);
        assert_eq!(s.amount_of(LineKind::Base), 11_000);
        assert_eq!(s.amount_of(LineKind::HearingBase), 5_500);
        assert_eq!(s.amount_of(LineKind::Overage), 20 * 330);
        // Terms from 2021-04: April–September, October–March; June is mid-term → fee due.
        assert_eq!(s.amount_of(LineKind::CancellationFee), 20_000);
        assert_eq!(s.taxable_total, 23_100);
        assert_eq!(s.tax, 2_100);
        assert_eq!(s.total, 43_100);
    }

    #[test]
    fn legacy_start_after_cutoff_is_refused() {
        let h = ContractHistory::new(d(2022, 7, 1), Plan::Business, false);
        assert!(matches!(
            statement(&h, ym("2022-07"), &calls(0), None),
            Err(BillingError::Contract(_))
        ));
    }

    #[test]
    fn plan_change_mid_contract_bills_next_month_on_new_plan() {
        let mut h = ContractHistory::new(d(2026, 6, 1), Plan::Sd100, false);
        h.plan_changes.push(PlanChange {
            received: d(2026, 9, 10),
            plan: Plan::Sd500,
            hearing: true,
        });
        let sep = bill(&h, "2026-09", 520);
        assert_eq!((sep.plan, sep.hearing), (Plan::Sd100, false));
        assert_eq!(sep.total, 11_000 + 420 * 220);
        let oct = bill(&h, "2026-10", 520);
        assert_eq!((oct.plan, oct.hearing), (Plan::Sd500, true));
        assert_eq!(oct.included_calls, 500);
        assert_eq!(oct.total, 55_000 + 27_500 + 20 * 330);
    }

    #[test]
    fn cancellation_fee_follows_last_months_plan() {
        // Downgrade from legacy Premium to SD100 before the end: SD fee applies.
        let mut h = ContractHistory::new(d(2021, 4, 1), Plan::Premium, false);
        h.plan_changes.push(PlanChange {
            received: d(2026, 5, 1),
            plan: Plan::Sd100,
            hearing: false,
        });
        h.cancellation = Some(Cancellation {
            received: d(2026, 6, 10),
            end_month: None,
        });
        let s = bill(&h, "2026-06", 0);
        assert_eq!(s.plan, Plan::Sd100);
        assert_eq!(s.amount_of(LineKind::CancellationFee), 10_000);
    }

    #[test]
    fn company_termination_bills_last_month_in_full_and_nothing_after() {
        let mut h = example_1_history();
        h.terminated_on = Some(d(2027, 1, 10));
        let jan = bill(&h, "2027-01", 40);
        assert_eq!(jan.total, 11_000);
        assert_eq!(jan.non_taxable_total, 0); // no cancellation fee for a company termination
                                              // All unpaid amounts fall due at once (SPEC §6 line 114).
        assert_eq!(jan.due, d(2027, 1, 10));
        assert_eq!(bill(&h, "2026-12", 0).due, d(2027, 1, 10));
        assert_eq!(bill(&h, "2026-11", 0).due, d(2026, 12, 31));
        let paid_late = statement(&h, ym("2027-01"), &calls(40), Some(d(2027, 1, 20))).unwrap();
        assert_eq!(paid_late.days_late, Some(10));
        assert_eq!(paid_late.late_interest, Some(44)); // 11000 × 146 × 10 / 365000 = 44
        assert!(matches!(
            statement(&h, ym("2027-02"), &calls(0), None),
            Err(BillingError::MonthAfterEnd {
                end_month,
                ..
            }) if end_month == ym("2027-01")
        ));
    }

    #[test]
    fn month_before_start_names_the_month() {
        let err = statement(&example_1_history(), ym("2026-10"), &calls(0), None).unwrap_err();
        assert_eq!(
            err,
            BillingError::MonthBeforeStart {
                month: ym("2026-10"),
                start_month: ym("2026-11"),
            }
        );
        assert!(err.to_string().contains("2026-10"));
    }

    #[test]
    fn paid_on_time_has_no_interest() {
        let s = statement(
            &example_1_history(),
            ym("2026-11"),
            &calls(130),
            Some(d(2026, 12, 31)),
        )
        .unwrap();
        assert_eq!(s.days_late, Some(0));
        assert_eq!(s.late_interest, Some(0));
        assert_eq!(s.total_with_interest, Some(12_100));
    }

    #[test]
    fn json_field_names() {
        let mut usage = calls(130);
        usage.by_outcome.insert("answered".into(), 120);
        usage.by_outcome.insert("out_of_hours".into(), 10);
        let s = statement(&example_1_history(), ym("2026-11"), &usage, None).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "month": "2026-11",
                "plan": "SD100",
                "hearing": false,
                "calls": 130,
                "included_calls": 100,
                "prorated_days": { "days_used": 15, "days_in_month": 30 },
                "lines": [
                    { "kind": "base", "amount": 5500, "taxable": true },
                    { "kind": "overage", "amount": 6600, "taxable": true,
                      "quantity": 30, "unit_price": 220 }
                ],
                "taxable_total": 12100,
                "tax": 1100,
                "non_taxable_total": 0,
                "total": 12100,
                "due": "2026-12-31",
                "calls_by_outcome": { "answered": 120, "out_of_hours": 10 }
            })
        );
        let back: Statement = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);

        let paid = statement(
            &example_1_history(),
            ym("2026-11"),
            &usage,
            Some(d(2027, 1, 30)),
        )
        .unwrap();
        let v = serde_json::to_value(&paid).unwrap();
        assert_eq!(v["paid_on"], "2027-01-30");
        assert_eq!(v["days_late"], 30);
        assert_eq!(v["late_interest"], 145);
        assert_eq!(v["total_with_interest"], 12_245);
    }

    #[test]
    fn japanese_rendering() {
        let mut h = example_1_history();
        h.hearing = true;
        h.cancellation = Some(Cancellation {
            received: d(2026, 11, 20),
            end_month: None,
        });
        let mut usage = calls(130);
        usage.by_outcome.insert("answered\nforged".into(), 130);
        let s = statement(&h, ym("2026-11"), &usage, Some(d(2027, 1, 30))).unwrap();
        let text = s.render_ja();
        for needle in [
            "請求書",
            "対象月: 2026年11月",
            "プラン: SD100プラン（ヒアリングオプションあり）",
            "基本料金（日割 15/30日）",
            "5,500円",
            "ヒアリングオプション（日割 15/30日）",
            "2,750円",
            "超過通話 30件 × 330円",
            "9,900円",
            "解約手数料（不課税）",
            "10,000円",
            "課税対象計",
            "18,150円",
            "（うち消費税 10%）",
            "1,650円",
            "合計",
            "28,150円",
            "お支払期限: 2026年12月31日",
            "遅延 30日",
            "answered?forged: 130件",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Amounts line up in one column.
        let amount_ends: Vec<usize> = text
            .lines()
            .filter(|l| l.ends_with('円') && !l.contains(':'))
            .map(display_width)
            .collect();
        assert!(amount_ends.len() >= 7);
        assert!(amount_ends.iter().all(|w| *w == amount_ends[0]), "{text}");
    }

    #[test]
    fn csv_export() {
        let s = bill(&example_1_history(), "2026-11", 130);
        let header_cols = Statement::csv_header().split(',').count();
        let row = s.csv_row("C-0001", "株式会社ABC");
        assert_eq!(row.split(',').count(), header_cols);
        assert_eq!(
            row,
            "C-0001,株式会社ABC,2026-11,SD100,false,130,100,15,30,5500,0,30,220,6600,0,\
             12100,1100,0,12100,2026-12-31,,,,"
        );
        let quoted = s.csv_row("C-2", "Foo, \"Bar\"\nInc");
        assert!(
            quoted.starts_with("C-2,\"Foo, \"\"Bar\"\"\nInc\",2026-11,"),
            "{quoted}"
        );
        assert!(Statement::csv_header().starts_with("contractor_id,contractor_name,month,"));
        assert!(!Statement::csv_header().contains(' '));
    }

    fn arb_plan() -> impl Strategy<Value = Plan> {
        proptest::sample::select(Plan::ALL.to_vec())
    }

    prop_compose! {
        /// A valid history: start 2015–2034 (legacy plans moved before the cutoff), optional
        /// plan change and cancellation, optional company termination.
        fn arb_history()(
            plan in arb_plan(),
            hearing in any::<bool>(),
            start_off in 0u64..(20 * 366),
            change in proptest::option::of((0u64..900, arb_plan(), any::<bool>())),
            cancel in proptest::option::of((0u64..900, 0u32..14)),
            terminate in proptest::option::of(0u64..900),
        ) -> ContractHistory {
            let base = d(2015, 1, 1);
            let mut start = base + chrono::Days::new(start_off);
            if plan.is_legacy() && start > d(2022, 6, 30) {
                start = d(2022, 6, 30) - chrono::Days::new(start_off % 2000);
            }
            let mut h = ContractHistory::new(start, plan, hearing);
            if let Some((off, p, hr)) = change {
                let received = start + chrono::Days::new(off);
                let p = if p.is_legacy() && received > d(2022, 6, 30) { Plan::Sd300 } else { p };
                h.plan_changes.push(PlanChange { received, plan: p, hearing: hr });
            }
            if let Some((off, later)) = cancel {
                let received = start + chrono::Days::new(off);
                let earliest = YearMonth::of(crate::contract::cancellation_end(received, None).unwrap());
                h.cancellation = Some(Cancellation {
                    received,
                    end_month: (later > 0).then(|| earliest.plus_months(later).unwrap()),
                });
            }
            h.terminated_on = terminate.map(|off| start + chrono::Days::new(off));
            h
        }
    }

    proptest! {
        #[test]
        fn lines_sum_to_totals_and_tax_is_floor(
            h in arb_history(),
            month_off in 0u32..40,
            n in 0u32..2_000,
            paid_off in proptest::option::of(0u64..200),
        ) {
            let month = h.start_month().plus_months(month_off).unwrap();
            if let Some(end) = h.end_month().unwrap() {
                prop_assume!(month <= end);
            }
            let paid = paid_off.map(|o| month.last_day() + chrono::Days::new(o));
            let s = statement(&h, month, &calls(n), paid).unwrap();
            let taxable: i64 = s.lines.iter().filter(|l| l.taxable).map(|l| l.amount).sum();
            let non: i64 = s.lines.iter().filter(|l| !l.taxable).map(|l| l.amount).sum();
            prop_assert_eq!(s.taxable_total, taxable);
            prop_assert_eq!(s.non_taxable_total, non);
            prop_assert_eq!(s.total, taxable + non);
            prop_assert!(s.tax * 110 <= s.taxable_total * 10);
            prop_assert_eq!(s.tax, s.taxable_total * 10 / 110);
            prop_assert!(s.amount_of(LineKind::Base) <= s.plan.monthly_base());
            prop_assert!(s.amount_of(LineKind::HearingBase) <= s.plan.hearing_option_fee());
            prop_assert_eq!(s.lines.first().map(|l| l.kind), Some(LineKind::Base));
            prop_assert_eq!(s.hearing, s.lines.iter().any(|l| l.kind == LineKind::HearingBase));
            for l in &s.lines {
                prop_assert_eq!(l.taxable, l.kind != LineKind::CancellationFee);
                if let (Some(q), Some(u)) = (l.quantity, l.unit_price) {
                    prop_assert!(q > 0);
                    prop_assert_eq!(l.amount, i64::from(q) * u);
                }
            }
            if let Some(i) = s.late_interest {
                prop_assert_eq!(s.total_with_interest, Some(s.total + i));
            }
        }

        #[test]
        fn every_month_of_the_life_bills_and_none_outside(h in arb_history(), n in 0u32..1_000) {
            let start = h.start_month();
            let end = h.end_month().unwrap();
            let before = start.prev().unwrap();
            let is_before = matches!(
                statement(&h, before, &calls(n), None),
                Err(BillingError::MonthBeforeStart { .. })
            );
            prop_assert!(is_before);
            // Open-ended contracts: check the first four years.
            let last = end.unwrap_or_else(|| start.plus_months(47).unwrap());
            let mut m = start;
            let mut fees = 0;
            while m <= last {
                let s = statement(&h, m, &calls(n), None);
                prop_assert!(s.is_ok(), "{:?}: {:?}", m, s);
                if let Ok(s) = s {
                    if s.non_taxable_total > 0 {
                        fees += 1;
                        prop_assert_eq!(Some(m), end);
                    }
                    prop_assert_eq!(s.prorated_days.is_some(), m == start && h.start.day() > 1);
                }
                m = m.next().unwrap();
            }
            prop_assert!(fees <= 1);
            if let Some(end) = end {
                let is_after = matches!(
                    statement(&h, end.next().unwrap(), &calls(n), None),
                    Err(BillingError::MonthAfterEnd { .. })
                );
                prop_assert!(is_after);
            }
        }
    }
}
