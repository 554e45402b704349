//! Contractor, number, seat, calls and hours commands.

use chrono::Utc;
use serde::Serialize;

use super::{
    parse_date, parse_id, parse_instant, print_json, today_tokyo, CallsArgs, CliError, CliResult,
    ContractorCmd, GlobalArgs, HoursArgs, NumberCmd, SeatCmd,
};
use crate::billing::YearMonth;
use crate::config::{Config, Profiles};
use crate::contract::{self, ContractHistory, Plan};
use crate::ledger::{CallFilter, CancellationRow, Contractor, Ledger, NewContractor, NewSeat};
use crate::number::E164;

pub(crate) fn parse_plan(s: &str) -> CliResult<Plan> {
    s.parse::<Plan>().map_err(|_| {
        CliError::field(
            "--plan",
            format!(
                "unknown plan {s:?} (one of {})",
                Plan::ALL
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

pub(crate) fn parse_month(field: &str, s: &str) -> CliResult<YearMonth> {
    s.parse::<YearMonth>()
        .map_err(|_| CliError::field(field, format!("{s:?} is not a month (YYYY-MM)")))
}

fn non_empty(field: &str, s: &str) -> CliResult<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(CliError::field(field, "must not be empty"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(CliError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

/// State on `today`: stored state, unless the contract has not started or has run out.
fn effective_state(c: &Contractor, h: &ContractHistory, today: chrono::NaiveDate) -> &'static str {
    match h.status_on(today) {
        Ok(contract::ContractStatus::Ended) => "ended",
        Ok(contract::ContractStatus::NotStarted) => "not_started",
        _ => c.state.as_str(),
    }
}

#[derive(Serialize)]
struct ContractorOut {
    #[serde(flatten)]
    c: Contractor,
    effective_state: &'static str,
    numbers: Vec<String>,
}

pub(crate) async fn contractor(
    g: &GlobalArgs,
    cfg: &Config,
    ledger: &Ledger,
    cmd: ContractorCmd,
) -> CliResult {
    let now = Utc::now();
    match cmd {
        ContractorCmd::Add {
            name,
            greeting,
            plan,
            hearing,
            hearing_items,
            start,
        } => {
            let name = non_empty("--name", &name)?;
            let greeting = non_empty("--greeting", &greeting)?;
            let plan = parse_plan(&plan)?;
            let start = parse_date("--start", &start)?;
            contract::check_plan_for_start(plan, start)
                .map_err(|e| CliError::field("--plan", e))?;
            let items = hearing_items
                .iter()
                .map(|i| non_empty("--hearing-item", i))
                .collect::<CliResult<Vec<_>>>()?;
            let c = ledger
                .add_contractor(
                    &NewContractor {
                        name,
                        greeting,
                        plan,
                        hearing,
                        hearing_items: items,
                        start_date: start,
                    },
                    now,
                )
                .await?;
            if g.json {
                print_json(&c)?;
            } else {
                println!("{}", c.id);
            }
        }
        ContractorCmd::List => {
            let today = today_tokyo();
            let numbers = ledger.numbers().await?;
            let mut out = Vec::new();
            for c in ledger.contractors().await? {
                let h = ledger.contract_history(&c).await?;
                out.push(ContractorOut {
                    effective_state: effective_state(&c, &h, today),
                    numbers: numbers
                        .iter()
                        .filter(|n| n.contractor_id == c.id)
                        .map(|n| n.number.clone())
                        .collect(),
                    c,
                });
            }
            if g.json {
                print_json(&out)?;
            } else {
                println!(
                    "{:>4}  {:<24} {:<10} {:<8} {:<10} {:<12} numbers",
                    "id", "name", "plan", "hearing", "start", "state"
                );
                for o in &out {
                    println!(
                        "{:>4}  {:<24} {:<10} {:<8} {:<10} {:<12} {}",
                        o.c.id,
                        o.c.name,
                        o.c.plan.to_string(),
                        if o.c.hearing { "yes" } else { "no" },
                        o.c.start_date,
                        o.effective_state,
                        o.numbers.join(" ")
                    );
                }
            }
        }
        ContractorCmd::Show { id } => {
            let id = parse_id("ID", &id)?;
            let c = ledger.contractor(id).await?;
            let h = ledger.contract_history(&c).await?;
            let today = today_tokyo();
            let numbers: Vec<String> = ledger
                .numbers()
                .await?
                .into_iter()
                .filter(|n| n.contractor_id == id)
                .map(|n| n.number)
                .collect();
            let plan_changes = ledger.plan_changes(id).await?;
            let cancellation = ledger.cancellation(id).await?;
            let suspensions = ledger.suspensions(id).await?;
            let (plan_now, hearing_now) = h.plan_on(today);
            let term = h.term_on(today);
            if g.json {
                print_json(&serde_json::json!({
                    "id": c.id,
                    "name": c.name,
                    "greeting": c.greeting,
                    "plan": c.plan,
                    "hearing": c.hearing,
                    "hearing_items": c.hearing_items,
                    "start_date": c.start_date,
                    "state": c.state,
                    "effective_state": effective_state(&c, &h, today),
                    "plan_today": plan_now,
                    "hearing_today": hearing_now,
                    "term": term.map(|t| serde_json::json!({"first_day": t.first_day, "last_day": t.last_day})),
                    "numbers": numbers,
                    "plan_changes": plan_changes,
                    "cancellation": cancellation,
                    "suspensions": suspensions,
                    "created_at": c.created_at,
                }))?;
            } else {
                println!("contractor {}: {}", c.id, c.name);
                println!("  greeting:  {}", c.greeting);
                println!(
                    "  plan:      {} (hearing option: {}) — today {}{}",
                    c.plan,
                    yn(c.hearing),
                    plan_now,
                    if hearing_now { " + hearing" } else { "" }
                );
                println!("  start:     {}", c.start_date);
                if let Some(t) = term {
                    println!("  term:      {} – {}", t.first_day, t.last_day);
                }
                println!("  state:     {}", effective_state(&c, &h, today));
                println!(
                    "  numbers:   {}",
                    if numbers.is_empty() {
                        "(none)".into()
                    } else {
                        numbers.join(", ")
                    }
                );
                if !c.hearing_items.is_empty() {
                    println!("  hearing items:");
                    for i in &c.hearing_items {
                        println!("    - {i}");
                    }
                }
                for p in &plan_changes {
                    println!(
                        "  plan change: {}{} received {} effective {}",
                        p.plan,
                        if p.hearing { " + hearing" } else { "" },
                        p.received_on,
                        p.effective_on
                    );
                }
                if let Some(cn) = &cancellation {
                    println!(
                        "  cancellation: received {} ends {} fee {}",
                        cn.received_on,
                        cn.effective_end,
                        if cn.fee_waived { "waived" } else { "due" }
                    );
                }
                for s in &suspensions {
                    println!(
                        "  suspension: from {} {} — {}",
                        s.effective_from,
                        s.ended_at
                            .map(|e| format!("to {e}"))
                            .unwrap_or_else(|| "(open)".into()),
                        s.reason
                    );
                }
            }
        }
        ContractorCmd::Plan {
            id,
            plan,
            hearing,
            no_hearing,
            received,
        } => {
            let id = parse_id("ID", &id)?;
            let plan = parse_plan(&plan)?;
            let received = match received {
                Some(r) => parse_date("--received", &r)?,
                None => today_tokyo(),
            };
            let c = ledger.contractor(id).await?;
            let mut h = ledger.contract_history(&c).await?;
            let effective = contract::plan_change_effective(received)
                .map_err(|e| CliError::field("--received", e))?;
            let (current, current_hearing) = h.plan_on(effective.pred_opt().unwrap_or(effective));
            contract::check_plan_change(current, plan, received)
                .map_err(|e| CliError::field("--plan", e))?;
            let new_hearing = if hearing {
                true
            } else if no_hearing {
                false
            } else {
                current_hearing
            };
            if let Some(end) = h.end_date().map_err(|e| CliError::Other(e.into()))? {
                if effective > end {
                    return Err(CliError::field(
                        "--received",
                        format!("the contract ends on {end}, before the change would take effect on {effective}"),
                    ));
                }
            }
            h.plan_changes.push(contract::PlanChange {
                received,
                plan,
                hearing: new_hearing,
            });
            h.validate().map_err(|e| CliError::field("--plan", e))?;
            let row = ledger
                .add_plan_change(id, plan, new_hearing, received, effective, Utc::now())
                .await?;
            if g.json {
                print_json(&row)?;
            } else {
                println!(
                    "contractor {id}: {plan}{} from {effective} (request received {received})",
                    if new_hearing { " + hearing" } else { "" }
                );
            }
        }
        ContractorCmd::Cancel {
            id,
            received,
            end_month,
        } => {
            let id = parse_id("ID", &id)?;
            let received = match received {
                Some(r) => parse_date("--received", &r)?,
                None => today_tokyo(),
            };
            let end_month = match end_month {
                Some(m) => Some(parse_month("--end-month", &m)?),
                None => None,
            };
            let c = ledger.contractor(id).await?;
            if ledger.cancellation(id).await?.is_some() {
                return Err(CliError::field(
                    "ID",
                    format!("contractor {id} already has a cancellation notice"),
                ));
            }
            let end = contract::cancellation_end(received, end_month)
                .map_err(|e| CliError::field("--end-month", e))?;
            if end < c.start_date {
                return Err(CliError::field(
                    "--end-month",
                    format!(
                        "the contract starts on {}; it cannot end on {end}",
                        c.start_date
                    ),
                ));
            }
            let mut h = ledger.contract_history(&c).await?;
            h.cancellation = Some(contract::Cancellation {
                received,
                end_month,
            });
            h.validate()
                .map_err(|e| CliError::field("--end-month", e))?;
            let fee = h
                .cancellation_fee_due()
                .map_err(|e| CliError::Other(e.into()))?;
            let row = CancellationRow {
                contractor_id: id,
                received_on: received,
                end_month: end_month.map(|m| m.to_string()),
                effective_end: end,
                fee_waived: fee.is_none(),
            };
            ledger.add_cancellation(&row, Utc::now()).await?;
            if g.json {
                print_json(&serde_json::json!({
                    "contractor_id": id,
                    "received": received,
                    "ends": end,
                    "cancellation_fee": fee,
                    "fee_month": YearMonth::of(end),
                }))?;
            } else {
                match fee {
                    Some(f) => println!(
                        "contractor {id}: contract ends {end}; cancellation fee {} (non-taxable) on the {} bill",
                        crate::billing::format_yen(f),
                        YearMonth::of(end)
                    ),
                    None => println!("contractor {id}: contract ends {end} at the end of its term; no cancellation fee"),
                }
            }
        }
        ContractorCmd::Suspend { id, reason, from } => {
            let id = parse_id("ID", &id)?;
            let reason = non_empty("--reason", &reason)?;
            let at = match from {
                Some(f) => {
                    let at = parse_instant("--from", &f)?;
                    if at > Utc::now() {
                        return Err(CliError::field(
                            "--from",
                            "a suspension cannot start in the future; run the command then",
                        ));
                    }
                    at
                }
                None => Utc::now(),
            };
            let s = ledger.suspend(id, &reason, today_tokyo(), at).await?;
            if g.json {
                print_json(&s)?;
            } else {
                println!("contractor {id} suspended: calls are no longer routed");
            }
        }
        ContractorCmd::Complaints { id } => {
            let id = parse_id("ID", &id)?;
            let v = crate::complaints::evaluate(
                ledger,
                id,
                cfg.billing.auto_suspend_on_complaints,
                now,
            )
            .await?;
            if g.json {
                print_json(&v)?;
            } else {
                match &v.flagged {
                    Some(w) => {
                        println!(
                        "contractor {id}: FLAGGED by the complaint rule — {} complaints {}..{}{}",
                        w.count,
                        w.first_day,
                        w.last_day,
                        if v.suspended_now { "; suspended now" } else { "" }
                    )
                    }
                    None => println!("contractor {id}: not flagged"),
                }
            }
        }
        ContractorCmd::Resume { id } => {
            let id = parse_id("ID", &id)?;
            ledger.resume(id, Utc::now()).await?;
            if g.json {
                print_json(&serde_json::json!({"contractor_id": id, "state": "active"}))?;
            } else {
                println!("contractor {id} resumed");
            }
        }
        ContractorCmd::Channels(_)
        | ContractorCmd::HearingItems { .. }
        | ContractorCmd::User(_) => {
            unreachable!("dispatched in cli::dispatch_db")
        }
    }
    Ok(())
}

fn yn(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub(crate) async fn hearing_items(
    g: &GlobalArgs,
    ledger: &Ledger,
    id: &str,
    items: &[String],
) -> CliResult {
    let id = parse_id("ID", id)?;
    let items = items
        .iter()
        .map(|i| non_empty("--item", i))
        .collect::<CliResult<Vec<_>>>()?;
    if items.len() > 20 || items.iter().any(|i| i.chars().count() > 200) {
        return Err(CliError::field(
            "--item",
            "at most 20 items of at most 200 characters",
        ));
    }
    ledger.set_hearing_items(id, &items).await?;
    if g.json {
        print_json(&items)?;
    } else {
        println!("{} hearing item(s) set", items.len());
    }
    Ok(())
}

pub(crate) async fn number(g: &GlobalArgs, ledger: &Ledger, cmd: NumberCmd) -> CliResult {
    match cmd {
        NumberCmd::Assign {
            contractor_id,
            number,
        } => {
            let id = parse_id("CONTRACTOR_ID", &contractor_id)?;
            let n = E164::parse_jp(&number).map_err(|e| CliError::field("NUMBER", e))?;
            ledger.assign_number(id, &n, Utc::now()).await?;
            if g.json {
                print_json(&serde_json::json!({"number": n, "contractor_id": id}))?;
            } else {
                println!("{n} → contractor {id}");
            }
        }
        NumberCmd::Release { number } => {
            let n = E164::parse_jp(&number).map_err(|e| CliError::field("NUMBER", e))?;
            ledger.release_number(&n, Utc::now()).await?;
            if g.json {
                print_json(&serde_json::json!({"number": n, "released": true}))?;
            } else {
                println!("{n} released");
            }
        }
        NumberCmd::List => {
            let rows = ledger.numbers().await?;
            if g.json {
                print_json(&rows)?;
            } else {
                for r in rows {
                    println!(
                        "{:<14} {:>4}  {}",
                        r.number, r.contractor_id, r.contractor_name
                    );
                }
            }
        }
    }
    Ok(())
}

/// Shortest SIP password accepted: digest secrets are brute-forced online by scanners.
const MIN_SIP_PASSWORD_LEN: usize = 8;

fn seat_secrets(name: &str, realm: &str, password: &str) -> CliResult<(String, String)> {
    if password.chars().count() < MIN_SIP_PASSWORD_LEN {
        return Err(CliError::field(
            "--password",
            format!("must be at least {MIN_SIP_PASSWORD_LEN} characters"),
        ));
    }
    Ok((
        crate::sip::auth::ha1_md5(name, realm, password)
            .as_str()
            .to_string(),
        crate::sip::auth::ha1_sha256(name, realm, password)
            .as_str()
            .to_string(),
    ))
}

fn seat_name(name: &str) -> CliResult<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(CliError::field(
            "NAME",
            format!("{name:?}: 1–64 of letters, digits, - _ . (it is the SIP user name)"),
        ))
    }
}

/// Skills are short tokens (`hearing`): 1–32 of a-z, 0-9, `_`, `-`; duplicates dropped.
fn seat_skills(skills: &[String]) -> CliResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in skills {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(CliError::field(
                "--skill",
                format!("{s:?}: 1–32 of a-z, 0-9, _ and -"),
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// `smartdesk stats --day`: service levels from the queue log (see [`crate::acd::stats`]).
pub(crate) async fn stats(g: &GlobalArgs, ledger: &Ledger, a: &crate::cli::StatsArgs) -> CliResult {
    let day = crate::cli::parse_date("--day", &a.day)?;
    let next = day
        .succ_opt()
        .ok_or_else(|| CliError::field("--day", "out of range"))?;
    let rows = ledger
        .queue_events(
            tokyo_midnight("--day", day)?,
            tokyo_midnight("--day", next)?,
        )
        .await?;
    let events: Vec<crate::acd::stats::LoggedEvent> = rows
        .iter()
        .map(|r| crate::acd::stats::LoggedEvent {
            contractor: r.contractor_id,
            kind: r.kind.clone(),
            wait_ms: r.wait_ms.and_then(|w| u64::try_from(w).ok()),
        })
        .collect();
    let s = crate::acd::stats::service_levels(&events);
    if g.json {
        return print_json(&serde_json::json!({
            "day": day.to_string(),
            "overall": s.overall,
            "contractors": s.contractors.iter().map(|(id, l)| {
                let mut v = serde_json::to_value(l).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("contractor_id".into(), (*id).into());
                }
                v
            }).collect::<Vec<_>>(),
        }));
    }
    let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let secs = |m: Option<u64>| m.map_or("-".to_owned(), |m| format!("{:.1}s", m as f64 / 1000.0));
    println!(
        "{:<12} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "contractor",
        "offered",
        "answered",
        "answer%",
        "ASA avg",
        "ASA p90",
        "abandon%",
        "overflow"
    );
    let line = |who: String, l: &crate::acd::stats::ServiceLevel| {
        println!(
            "{:<12} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}",
            who,
            l.offered,
            l.answered,
            pct(l.answer_rate),
            secs(l.asa_avg_ms),
            secs(l.asa_p90_ms),
            pct(l.abandon_rate),
            l.overflow
        )
    };
    for (id, l) in &s.contractors {
        line(id.to_string(), l);
    }
    line("overall".into(), &s.overall);
    Ok(())
}

pub(crate) async fn seat(g: &GlobalArgs, cfg: &Config, ledger: &Ledger, cmd: SeatCmd) -> CliResult {
    // Digest HA1 hashes are bound to the realm of the seat profile.
    let realm = || {
        Profiles::load_dir(&cfg.sip.profiles_dir)
            .map(|p| p.seats.realm)
            .map_err(crate::cli::profile_errors)
    };
    match cmd {
        SeatCmd::Add {
            name,
            password,
            web_password,
            skills,
        } => {
            let name = seat_name(&name)?;
            let skills = seat_skills(&skills)?;
            let realm = realm()?;
            let (ha1_md5, ha1_sha256) = seat_secrets(&name, &realm, &password)?;
            let web = match web_password {
                Some(w) => Some(
                    crate::password::hash(&w).map_err(|e| CliError::field("--web-password", e))?,
                ),
                None => None,
            };
            let s = ledger
                .add_seat(
                    &NewSeat {
                        name,
                        realm,
                        ha1_md5,
                        ha1_sha256,
                        web_password: web,
                    },
                    Utc::now(),
                )
                .await?;
            let mut s = s;
            if !skills.is_empty() {
                ledger.set_seat_skills(&s.name, &skills).await?;
                s.skills = skills;
            }
            if g.json {
                print_json(&s)?;
            } else {
                println!("seat {} added (realm {:?})", s.name, s.realm);
            }
        }
        SeatCmd::Skills {
            name,
            skills,
            clear,
        } => {
            let name = seat_name(&name)?;
            let existing = ledger
                .seat_by_name(&name)
                .await?
                .ok_or_else(|| CliError::field("NAME", format!("no seat {name:?}")))?;
            let skills = if clear || !skills.is_empty() {
                let skills = seat_skills(&skills)?;
                ledger.set_seat_skills(&name, &skills).await?;
                skills
            } else {
                existing.skills
            };
            if g.json {
                print_json(&serde_json::json!({"seat": name, "skills": skills}))?;
            } else {
                println!("{name}: {}", skills.join(", "));
            }
        }
        SeatCmd::Passwd {
            name,
            password,
            web_password,
        } => {
            let name = seat_name(&name)?;
            let existing = ledger
                .seat_by_name(&name)
                .await?
                .ok_or_else(|| CliError::field("NAME", format!("no seat {name:?}")))?;
            if password.is_none() && web_password.is_none() {
                return Err(CliError::field(
                    "--password",
                    "give --password and/or --web-password",
                ));
            }
            let (realm, ha1_md5, ha1_sha256) = match &password {
                Some(p) => {
                    let realm = realm()?;
                    let (md5, sha256) = seat_secrets(&name, &realm, p)?;
                    (realm, md5, sha256)
                }
                None => (
                    existing.realm.clone(),
                    existing.ha1_md5.clone(),
                    existing.ha1_sha256.clone(),
                ),
            };
            let web = match &web_password {
                Some(w) => Some(
                    crate::password::hash(w).map_err(|e| CliError::field("--web-password", e))?,
                ),
                None => None,
            };
            ledger
                .set_seat_secrets(&name, &realm, &ha1_md5, &ha1_sha256, web.as_deref())
                .await?;
            if g.json {
                print_json(&serde_json::json!({"seat": name, "updated": true}))?;
            } else {
                println!("seat {name} updated");
            }
        }
        // Live commands: `cli::run` sends them to the daemon before a ledger is opened.
        SeatCmd::Pause { .. } | SeatCmd::Resume { .. } | SeatCmd::Reset { .. } => {
            return Err(CliError::Other(anyhow::anyhow!(
                "seat pause/resume/reset go to the daemon"
            )))
        }
        SeatCmd::List => {
            let seats = ledger.seats().await?;
            // Bindings the registrar keeps in the ledger (the daemon writes them behind its
            // in-memory table, normally within milliseconds of the 200 OK).
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            let bindings = ledger.live_registrations(now).await?;
            let contacts_of = |id: i64| -> Vec<serde_json::Value> {
                bindings
                    .iter()
                    .filter(|b| b.seat_id == id)
                    .map(|b| {
                        let expires = i64::try_from(b.expires_at)
                            .ok()
                            .and_then(|t| chrono::DateTime::<Utc>::from_timestamp(t, 0));
                        serde_json::json!({
                            "contact": b.contact,
                            "source": b.source.to_string(),
                            "transport": b.transport.as_str(),
                            "expires_at": expires,
                        })
                    })
                    .collect()
            };
            if g.json {
                let mut out = Vec::new();
                for s in &seats {
                    let mut v =
                        serde_json::to_value(s).map_err(|e| CliError::Other(anyhow::anyhow!(e)))?;
                    let contacts = contacts_of(s.id);
                    if let Some(o) = v.as_object_mut() {
                        o.insert("registered".into(), (!contacts.is_empty()).into());
                        o.insert("contacts".into(), contacts.into());
                    }
                    out.push(v);
                }
                print_json(&out)?;
            } else {
                for s in seats {
                    let n = contacts_of(s.id).len();
                    println!(
                        "{:<16} realm {:<12} web login: {}  registered: {}",
                        s.name,
                        s.realm,
                        yn(s.web_login),
                        if n == 0 {
                            "no".to_string()
                        } else {
                            format!("yes ({n} contact{})", if n == 1 { "" } else { "s" })
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

/// `[from, to)` in UTC for a billing month in Asia/Tokyo (SPEC §5).
pub(crate) fn month_bounds(
    m: YearMonth,
) -> CliResult<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)> {
    crate::bills::month_bounds(m).ok_or_else(|| CliError::field("--month", "out of range"))
}

/// The instant (UTC) a day begins in Asia/Tokyo; `field` names the input on error.
fn tokyo_midnight(field: &str, d: chrono::NaiveDate) -> CliResult<chrono::DateTime<Utc>> {
    crate::bills::tokyo_midnight(d).ok_or_else(|| CliError::field(field, "out of range"))
}

pub(crate) async fn calls(g: &GlobalArgs, ledger: &Ledger, a: &CallsArgs) -> CliResult {
    let mut f = CallFilter::default();
    if let Some(m) = &a.month {
        let (from, to) = month_bounds(parse_month("--month", m)?)?;
        f.from = Some(from);
        f.to = Some(to);
    }
    if let Some(c) = &a.contractor {
        let id = parse_id("--contractor", c)?;
        ledger.contractor(id).await?;
        f.contractor_id = Some(id);
    }
    let rows = ledger.calls(&f).await?;
    if g.json {
        print_json(&rows)?;
    } else {
        let tokyo = chrono_tz::Asia::Tokyo;
        println!("started (JST)        number         caller           outcome        billable  seat       call-id");
        for r in &rows {
            println!(
                "{:<20} {:<14} {:<16} {:<14} {:<9} {:<10} {}",
                r.started_at
                    .with_timezone(&tokyo)
                    .format("%Y-%m-%d %H:%M:%S"),
                r.number,
                r.caller.as_deref().unwrap_or("非通知"),
                r.outcome.as_deref().unwrap_or("in_progress"),
                yn(r.billable),
                r.seat.as_deref().unwrap_or("-"),
                r.call_id
            );
        }
        println!(
            "{} call(s), {} billable",
            rows.len(),
            rows.iter().filter(|r| r.billable).count()
        );
    }
    Ok(())
}

pub(crate) fn hours(g: &GlobalArgs, a: &HoursArgs) -> CliResult {
    let cfg = super::load_config(g)?;
    let at = match &a.at {
        Some(s) => parse_instant("--at", s)?,
        None => Utc::now(),
    };
    let cal = crate::hours::Calendar::try_new(cfg.hours.clone())
        .map_err(|e| CliError::field("hours", e))?;
    let ex = cal.explain(at);
    if g.json {
        print_json(&ex)?;
    } else {
        let v = serde_json::to_value(&ex).map_err(|e| CliError::Other(e.into()))?;
        let open = v["open"].as_bool().unwrap_or(false);
        let reason = v["reason"].as_str().unwrap_or("");
        let holiday = v["holiday_name"]
            .as_str()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!(
            "{}: {} — {reason}{holiday}",
            v["at"].as_str().unwrap_or(""),
            if open {
                "OPEN 営業中"
            } else {
                "CLOSED 営業時間外"
            }
        );
        if let Some(n) = v["next_change"].as_str() {
            println!("changes at {n}");
        }
        if let Some(w) = cal.coverage_warning(today_tokyo()) {
            println!("warning: {w}");
        }
    }
    Ok(())
}
