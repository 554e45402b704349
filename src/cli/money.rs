//! `quote` (no database) and `bill` (from the ledger): issue #3 §2–§4.

use std::collections::BTreeMap;

use clap::Args;

use super::admin::{parse_month, parse_plan};
use super::{parse_date, parse_id, print_json, CliError, CliResult, GlobalArgs};
use crate::billing::{statement, BillingError, Statement, Usage, YearMonth};
use crate::bills::{ContractorStatement, StatementError};
use crate::contract::{self, ContractHistory};
use crate::ledger::{Contractor, Ledger};

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// SD100, SD200, SD300, SD500, or legacy Standard, Business, Enterprise, Premium.
    #[arg(long)]
    pub plan: String,
    /// With the hearing option.
    #[arg(long)]
    pub hearing: bool,
    /// Contract start date, YYYY-MM-DD.
    #[arg(long)]
    pub start: String,
    /// The month to price, YYYY-MM.
    #[arg(long)]
    pub month: String,
    /// Billable calls in that month.
    #[arg(long)]
    pub calls: String,
    /// A cancellation notice received on this date (YYYY-MM-DD).
    #[arg(long)]
    pub cancel_received: Option<String>,
    /// The later end month the contractor named (YYYY-MM); needs --cancel-received.
    #[arg(long, requires = "cancel_received")]
    pub end_month: Option<String>,
    /// Payment date (YYYY-MM-DD): adds late-payment interest if after the due date.
    #[arg(long)]
    pub paid_on: Option<String>,
}

#[derive(Debug, Args)]
pub struct BillArgs {
    /// Billing month YYYY-MM (Asia/Tokyo).
    #[arg(long)]
    pub month: String,
    /// Only this contractor (default: every contractor whose contract covers the month).
    #[arg(long)]
    pub contractor: Option<String>,
    /// Payment date (YYYY-MM-DD): adds late-payment interest if after the due date.
    #[arg(long)]
    pub paid_on: Option<String>,
    /// CSV for the collection agent: one row per contractor per month.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

fn billing_input_error(e: BillingError) -> CliError {
    match e {
        BillingError::MonthBeforeStart { .. } | BillingError::MonthAfterEnd { .. } => {
            CliError::field("--month", e)
        }
        BillingError::Contract(c) => CliError::field("--cancel-received", c),
        other => CliError::Input(other.to_string()),
    }
}

pub(crate) fn quote(g: &GlobalArgs, a: &QuoteArgs) -> CliResult {
    let plan = parse_plan(&a.plan)?;
    let start = parse_date("--start", &a.start)?;
    let month = parse_month("--month", &a.month)?;
    let calls: u32 = a.calls.parse().map_err(|_| {
        CliError::field(
            "--calls",
            format!("{:?} is not a whole number of calls", a.calls),
        )
    })?;
    contract::check_plan_for_start(plan, start).map_err(|e| CliError::field("--plan", e))?;
    let mut h = ContractHistory::new(start, plan, a.hearing);
    if let Some(r) = &a.cancel_received {
        let received = parse_date("--cancel-received", r)?;
        let end_month = match &a.end_month {
            Some(m) => Some(parse_month("--end-month", m)?),
            None => None,
        };
        contract::cancellation_end(received, end_month)
            .map_err(|e| CliError::field("--end-month", e))?;
        h.cancellation = Some(contract::Cancellation {
            received,
            end_month,
        });
    }
    let paid_on = match &a.paid_on {
        Some(p) => Some(parse_date("--paid-on", p)?),
        None => None,
    };
    let usage = Usage {
        billable_calls: calls,
        by_outcome: BTreeMap::new(),
    };
    let st = statement(&h, month, &usage, paid_on).map_err(billing_input_error)?;
    if g.json {
        print_json(&st)
    } else {
        print!("{}", st.render_ja());
        Ok(())
    }
}

/// The statement of one contractor for one month, from the ledger (the library's, shared
/// with the portal); `None` when the contract does not cover the month.
async fn contractor_statement(
    ledger: &Ledger,
    c: &Contractor,
    month: YearMonth,
    paid_on: Option<chrono::NaiveDate>,
) -> CliResult<Option<ContractorStatement>> {
    crate::bills::contractor_statement(ledger, c, month, paid_on)
        .await
        .map_err(|e| match e {
            StatementError::Ledger(l) => l.into(),
            StatementError::OutOfRange => CliError::field("--month", "out of range"),
            other => CliError::Other(anyhow::anyhow!("{other}")),
        })
}

pub(crate) async fn bill(g: &GlobalArgs, ledger: &Ledger, a: &BillArgs) -> CliResult {
    let month = parse_month("--month", &a.month)?;
    let paid_on = match &a.paid_on {
        Some(p) => Some(parse_date("--paid-on", p)?),
        None => None,
    };
    if let Some(c) = &a.contractor {
        let id = parse_id("--contractor", c)?;
        let contractor = ledger.contractor(id).await?;
        let st = contractor_statement(ledger, &contractor, month, paid_on)
            .await?
            .ok_or_else(|| {
                CliError::field(
                    "--month",
                    format!("contractor {id}'s contract does not cover {month}"),
                )
            })?;
        return emit(g, a, &[st], true);
    }
    let mut all = Vec::new();
    for c in ledger.contractors().await? {
        if let Some(st) = contractor_statement(ledger, &c, month, paid_on).await? {
            all.push(st);
        }
    }
    emit(g, a, &all, false)
}

fn emit(g: &GlobalArgs, a: &BillArgs, sts: &[ContractorStatement], single: bool) -> CliResult {
    if a.csv {
        println!("{}", Statement::csv_header());
        for s in sts {
            println!(
                "{}",
                s.statement
                    .csv_row(&s.contractor_id.to_string(), &s.contractor_name)
            );
        }
        Ok(())
    } else if g.json {
        match (single, sts.first()) {
            (true, Some(s)) => print_json(s),
            _ => print_json(&sts),
        }
    } else {
        for s in sts {
            println!("━━ {} (契約者ID {}) ━━", s.contractor_name, s.contractor_id);
            print!("{}", s.statement.render_ja());
            println!();
        }
        if sts.is_empty() {
            println!("no contract covers this month");
        }
        Ok(())
    }
}
