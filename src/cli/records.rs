//! First-response records, report channels, the report outbox and `status` (issue #7).

use chrono::{TimeZone, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{parse_date, parse_id, print_json, CliError, CliResult, GlobalArgs};
use crate::config::Config;
use crate::ledger::{Ledger, OutboxRow, RecordFilter, RecordView};
use crate::reports::{self, Author, RecordInput, SubmitError};

#[derive(Debug, Args)]
pub struct RecordsArgs {
    #[command(subcommand)]
    pub cmd: Option<RecordsCmd>,
    /// Only this contractor's records.
    #[arg(long)]
    pub contractor: Option<String>,
    /// Only records of calls that came in on this day (YYYY-MM-DD, Asia/Tokyo).
    #[arg(long)]
    pub day: Option<String>,
    /// Every version, corrected ones included (default: current versions only).
    #[arg(long)]
    pub all_versions: bool,
    /// CSV export (UTF-8, header row).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecordsCmd {
    /// Correct a record as an admin: writes a new version (the old one is kept) and reports
    /// it to the contractor. Fields not given keep the old value.
    Correct {
        id: String,
        /// Who corrects (recorded as `admin:NAME`).
        #[arg(long)]
        by: String,
        #[arg(long)]
        caller_name: Option<String>,
        #[arg(long)]
        callback_number: Option<String>,
        /// yes or no.
        #[arg(long)]
        callback_wanted: Option<String>,
        #[arg(long)]
        purpose: Option<String>,
        /// normal, wrong_number, silent, sales, complaint or other.
        #[arg(long)]
        category: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportsCmd {
    /// Reports that failed for good (after the retry budget).
    Failed,
    /// Queue a failed report again (after fixing its channel).
    Retry { id: String },
}

/// A record with the delivery status of its reports.
#[derive(Serialize)]
struct RecordOut {
    #[serde(flatten)]
    r: RecordView,
    reports: Vec<OutboxRow>,
}

pub(crate) async fn records(
    g: &GlobalArgs,
    cfg: &Config,
    ledger: &Ledger,
    a: RecordsArgs,
) -> CliResult {
    if let Some(RecordsCmd::Correct {
        id,
        by,
        caller_name,
        callback_number,
        callback_wanted,
        purpose,
        category,
    }) = a.cmd
    {
        let id = parse_id("ID", &id)?;
        let by = by.trim();
        if by.is_empty() || by.chars().any(char::is_control) {
            return Err(CliError::field("--by", "must name who corrects"));
        }
        let old = ledger
            .first_responses(&RecordFilter {
                id: Some(id),
                ..RecordFilter::default()
            })
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::field("ID", format!("no record {id}")))?;
        let answers: Vec<String> = old
            .hearing_answers
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| h["answer"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let input = RecordInput {
            caller_name: caller_name.unwrap_or(old.caller_name.clone()),
            callback_number: callback_number
                .unwrap_or(old.callback_number.clone().unwrap_or_default()),
            callback_wanted: callback_wanted
                .unwrap_or(if old.callback_wanted { "yes" } else { "no" }.into()),
            purpose: purpose.unwrap_or(old.purpose.clone()),
            category: category.unwrap_or(old.category.clone()),
            hearing_answers: answers,
        };
        let author = Author {
            seat_id: None,
            name: format!("admin:{by}"),
        };
        let (new_id, queued) = reports::submit(
            ledger,
            old.call_id,
            Some(id),
            &input,
            &author,
            cfg.billing.auto_suspend_on_complaints,
            Utc::now(),
        )
        .await
        .map_err(|e| match e {
            SubmitError::Invalid(errs) => CliError::Input(
                errs.iter()
                    .map(|e| format!("--{}: {}", e.field.replace('_', "-"), e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            SubmitError::Ledger(l) => l.into(),
        })?;
        if g.json {
            print_json(
                &serde_json::json!({"id": new_id, "supersedes": id, "reports_queued": queued}),
            )?;
        } else {
            println!("{new_id}");
        }
        return Ok(());
    }
    let mut f = RecordFilter::default();
    if let Some(c) = &a.contractor {
        let id = parse_id("--contractor", c)?;
        ledger.contractor(id).await?;
        f.contractor_id = Some(id);
    }
    if let Some(d) = &a.day {
        let day = parse_date("--day", d)?;
        let tokyo = chrono_tz::Asia::Tokyo;
        let start = |d: chrono::NaiveDate| {
            tokyo
                .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
                .single()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| CliError::field("--day", "out of range"))
        };
        f.from = Some(start(day)?);
        f.to = Some(start(day.succ_opt().unwrap_or(day))?);
    }
    let mut list = ledger.first_responses(&f).await?;
    list.reverse(); // oldest first for listing and export
    if !a.all_versions {
        list.retain(|r| r.superseded_by.is_none());
    }
    let ids: Vec<i64> = list.iter().map(|r| r.id).collect();
    let outbox = ledger.reports_of_records(&ids).await?;
    let out: Vec<RecordOut> = list
        .into_iter()
        .map(|r| {
            let reports = outbox
                .iter()
                .filter(|o| o.record_id == Some(r.id))
                .cloned()
                .collect();
            RecordOut { r, reports }
        })
        .collect();
    if g.json {
        print_json(&out)?;
    } else if a.csv {
        print_csv(&out);
    } else {
        let tokyo = chrono_tz::Asia::Tokyo;
        println!("id    ver  call (JST)        contractor       caller          name             category      callback  reports");
        for o in &out {
            let r = &o.r;
            println!(
                "{:<5} {:<4} {:<17} {:<16} {:<15} {:<16} {:<13} {:<9} {}",
                r.id,
                r.version,
                r.call_started_at
                    .with_timezone(&tokyo)
                    .format("%Y-%m-%d %H:%M"),
                r.contractor_name,
                reports::display_number(r.caller.as_deref()),
                r.caller_name,
                r.category,
                if r.callback_wanted { "要" } else { "不要" },
                delivery_summary(&o.reports)
            );
        }
        println!("{} record(s)", out.len());
    }
    Ok(())
}

fn delivery_summary(rows: &[OutboxRow]) -> String {
    if rows.is_empty() {
        return "-".into();
    }
    rows.iter()
        .map(|o| format!("{}:{}", o.channel_kind, o.state))
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 4180 field.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn print_csv(out: &[RecordOut]) {
    let tokyo = chrono_tz::Asia::Tokyo;
    println!(
        "id,version,supersedes,call_id,call_started_jst,contractor_id,contractor_name,number,caller,\
         caller_name,callback_wanted,callback_number,category,purpose,hearing_answers,written_by,\
         written_at_utc,reports"
    );
    for o in out {
        let r = &o.r;
        let hearing = r
            .hearing_answers
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| {
                        format!(
                            "{}: {}",
                            h["item"].as_str().unwrap_or(""),
                            h["answer"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        let fields = [
            r.id.to_string(),
            r.version.to_string(),
            r.supersedes.map(|s| s.to_string()).unwrap_or_default(),
            r.call_id.to_string(),
            r.call_started_at
                .with_timezone(&tokyo)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            r.contractor_id.to_string(),
            r.contractor_name.clone(),
            r.number.clone(),
            r.caller.clone().unwrap_or_else(|| "非通知".into()),
            r.caller_name.clone(),
            if r.callback_wanted { "yes" } else { "no" }.into(),
            r.callback_number.clone().unwrap_or_default(),
            r.category.clone(),
            r.purpose.clone(),
            hearing,
            r.written_by.clone(),
            r.created_at.to_rfc3339(),
            delivery_summary(&o.reports),
        ];
        println!(
            "{}",
            fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
}

/// `contractor channels ID …`: show, or replace, where the contractor's reports go.
#[derive(Debug, Args)]
pub struct ChannelsArgs {
    pub id: String,
    /// E-mail address; repeat for several.
    #[arg(long)]
    pub email: Vec<String>,
    /// Webhook URL (JSON POST signed with --webhook-secret).
    #[arg(long)]
    pub webhook: Option<String>,
    /// HMAC-SHA256 key for the webhook signature (16+ characters).
    #[arg(long)]
    pub webhook_secret: Option<String>,
    /// Slack-compatible incoming webhook URL.
    #[arg(long)]
    pub slack: Option<String>,
    /// Remove every channel (reports are no longer sent).
    #[arg(long, conflicts_with_all = ["email", "webhook", "slack"])]
    pub clear: bool,
}

pub(crate) async fn channels(g: &GlobalArgs, ledger: &Ledger, a: ChannelsArgs) -> CliResult {
    let id = parse_id("ID", &a.id)?;
    ledger.contractor(id).await?;
    let field = |e: reports::FieldError| CliError::field(e.field, e.message);
    let changing = a.clear || !a.email.is_empty() || a.webhook.is_some() || a.slack.is_some();
    if a.webhook_secret.is_some() && a.webhook.is_none() {
        return Err(CliError::field("--webhook-secret", "needs --webhook"));
    }
    let list = if changing {
        let mut new = Vec::new();
        for e in &a.email {
            new.push(reports::parse_channel("email", e, None).map_err(field)?);
        }
        if let Some(w) = &a.webhook {
            new.push(
                reports::parse_channel("webhook", w, a.webhook_secret.as_deref()).map_err(field)?,
            );
        }
        if let Some(s) = &a.slack {
            new.push(reports::parse_channel("slack", s, None).map_err(field)?);
        }
        ledger.set_report_channels(id, &new, Utc::now()).await?
    } else {
        ledger.report_channels(id).await?
    };
    if g.json {
        print_json(&list)?;
    } else {
        for c in &list {
            println!("{:<8} {}", c.kind, c.target);
        }
        if list.is_empty() {
            println!("no report channels");
        }
    }
    Ok(())
}

pub(crate) async fn reports_cmd(g: &GlobalArgs, ledger: &Ledger, cmd: ReportsCmd) -> CliResult {
    match cmd {
        ReportsCmd::Failed => {
            let rows = ledger.failed_reports(1000).await?;
            if g.json {
                print_json(&rows)?;
            } else {
                for r in &rows {
                    println!(
                        "{:<6} contractor {:<4} record {:<6} {:<8} attempts {:<3} {}",
                        r.id,
                        r.contractor_id,
                        r.record_id.map(|x| x.to_string()).unwrap_or("-".into()),
                        r.channel_kind,
                        r.attempts,
                        r.last_error.as_deref().unwrap_or("")
                    );
                }
                println!("{} failed report(s)", rows.len());
            }
        }
        ReportsCmd::Retry { id } => {
            let id = id
                .parse::<i64>()
                .map_err(|_| CliError::field("ID", format!("{id:?} is not a report id")))?;
            ledger.retry_report(id, Utc::now()).await?;
            if !g.json {
                println!("report {id} queued again");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
