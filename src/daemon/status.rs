//! `smartdesk status` and `calls --live` (issue #9 §1): what the daemon is doing, assembled
//! from one core snapshot, the service calendar and a few bounded ledger queries.
//!
//! Every ledger question has a time limit ([`LEDGER_QUERY_TIMEOUT`]): status must answer
//! while the ledger is down, and say so, rather than hang.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::control::{CommandError, Control};
use super::requests::CoreSnapshot;
use crate::cli::redact_url;

/// Each ledger query of a status has this long.
pub const LEDGER_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Contractors whose complaint rule is evaluated for the warnings, at most (one query each).
const MAX_COMPLAINT_CHECKS: usize = 200;

/// Calls in progress with their seat's name.
fn calls_json(snap: &CoreSnapshot) -> Value {
    let names: HashMap<i64, &str> = snap.seats.iter().map(|s| (s.id, s.name.as_str())).collect();
    Value::Array(
        snap.calls
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    let seat = c.seat_id.and_then(|id| names.get(&id)).copied();
                    m.insert("seat".into(), json!(seat));
                    m.insert("duration_s".into(), json!(c.duration_ms / 1000));
                }
                v
            })
            .collect(),
    )
}

pub async fn live_calls(c: &Control) -> Result<Value, CommandError> {
    let snap = c.core.snapshot().await?;
    Ok(calls_json(&snap))
}

async fn bounded<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(LEDGER_QUERY_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            LEDGER_QUERY_TIMEOUT.as_secs()
        )),
    }
}

pub async fn status(c: &Control) -> Result<Value, CommandError> {
    let d = &c.daemon;
    let cfg = &d.config;
    let snap = c.core.snapshot().await?;
    let now = d.clock.now();
    let tokyo = chrono_tz::Asia::Tokyo;
    let today = now.with_timezone(&tokyo).date_naive();
    let calendar = d.calendar.load();
    let hours = calendar.explain(now);
    let mut warnings: Vec<String> = Vec::new();
    if let Some(w) = calendar.coverage_warning(today) {
        warnings.push(w);
    }
    if snap.draining {
        warnings.push("shutting down: new calls are refused (503)".into());
    }
    if snap.registration_writes_dropped > 0 {
        warnings.push(format!(
            "{} seat registration writes were dropped (ledger too slow)",
            snap.registration_writes_dropped
        ));
    }

    // The ledger: health first, then today's counts and the complaint rule.
    let ping_started = Instant::now();
    let health = bounded(d.ledger.ping()).await;
    let latency_ms = ping_started.elapsed().as_secs_f64() * 1000.0;
    let healthy = health.is_ok();
    if let Err(e) = &health {
        warnings.push(format!("ledger unreachable: {e}"));
    }
    let spool = d.spool.as_ref().map(|s| {
        let b = s.backlog();
        let (spooled, replayed) = s.totals();
        if b.calls > 0 || b.updates > 0 {
            warnings.push(format!(
                "spool backlog: {} call(s) and {} update(s) waiting for the ledger{}",
                b.calls,
                b.updates,
                if s.ledger_unreachable() {
                    " (ledger unreachable)"
                } else {
                    " (replaying)"
                }
            ));
        }
        json!({
            "calls": b.calls,
            "updates": b.updates,
            "ledger_unreachable": s.ledger_unreachable(),
            "spooled_since_start": spooled,
            "replayed_since_start": replayed,
            "max_calls": cfg.ledger.spool_max_calls,
        })
    });
    let day_start = tokyo
        .from_local_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    let day_end = day_start + chrono::Duration::days(1);
    let today_counts = if healthy {
        match bounded(d.ledger.call_totals(day_start, day_end)).await {
            Ok((calls, billable)) => json!({
                "date": today.to_string(), "calls": calls, "billable": billable,
            }),
            Err(e) => json!({ "date": today.to_string(), "error": e }),
        }
    } else {
        json!({ "date": today.to_string(), "error": "ledger unreachable" })
    };
    if healthy {
        complaint_warnings(c, now, &mut warnings).await;
    }
    // The report outbox (issue #7): counts, and reports that failed for good as alerts.
    let reports = bounded(d.ledger.outbox_counts()).await.ok();
    let failed = bounded(d.ledger.failed_reports(20))
        .await
        .unwrap_or_default();
    let alerts: Vec<Value> = failed
        .iter()
        .map(|r| {
            json!({
                "kind": "report_failed",
                "outbox_id": r.id,
                "contractor_id": r.contractor_id,
                "record_id": r.record_id,
                "channel": r.channel_kind,
                "attempts": r.attempts,
                "error": r.last_error,
            })
        })
        .collect();
    if !failed.is_empty() {
        warnings.push(format!(
            "{} report(s) failed after their retry budget: `reports failed` lists them, `reports retry ID` queues one again",
            failed.len()
        ));
    }

    let mut listeners = Vec::new();
    if cfg.sip.udp {
        listeners.push(json!({ "transport": "udp", "address": cfg.sip.listen.to_string() }));
    }
    if cfg.sip.tcp {
        listeners.push(json!({ "transport": "tcp", "address": cfg.sip.listen.to_string() }));
    }
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_s": c.started.elapsed().as_secs(),
        "state": if snap.draining { "draining" } else { "running" },
        "now": now.with_timezone(&tokyo).to_rfc3339(),
        "hours": {
            "open": hours.open,
            "reason": hours.reason,
            "holiday": hours.holiday_name,
            "next_change": hours.next_change,
        },
        "sip": {
            "listeners": listeners,
            "transactions": snap.transactions,
            "refused_acl": snap.stats.refused_acl,
            "refused_draining": snap.stats.refused_draining,
            "auth_failures": snap.auth_failures,
        },
        "trunks": snap.trunks,
        "seats": snap.seats,
        "calls": calls_json(&snap),
        // Leak checks (bench/soak.sh): call-table entries (calls still closing a leg
        // included), relay port pairs and outstanding BYE/CANCEL.
        "media": {
            "rtp_ports_in_use": snap.stats.rtp_ports_in_use,
            "rtp_ports_capacity": snap.stats.rtp_ports_capacity,
        },
        "call_table": snap.stats.calls,
        "requests_outstanding": snap.requests_outstanding,
        "queue_depth": snap.queue_depth,
        "today": today_counts,
        "ledger": {
            "backend": d.ledger.backend().to_string(),
            "url": redact_url(&cfg.ledger_url()),
            "healthy": healthy,
            "latency_ms": (latency_ms * 10.0).round() / 10.0,
            "error": health.err(),
            // PostgreSQL only: calls and updates waiting in the local spool.
            "spool": spool,
        },
        // Reports waiting for delivery (retrying included); `reports` has every state.
        "outbox_backlog": reports.as_ref().map(|r| r.pending),
        "reports": reports,
        "alerts": alerts,
        "metrics": d.config.metrics.listen_addr().map(|a| format!("http://{a}/metrics")),
        "warnings": warnings,
    }))
}

/// SPEC §6 complaint rule, flag only (never suspends from here): one warning per flagged
/// active contractor.
async fn complaint_warnings(c: &Control, now: chrono::DateTime<Utc>, warnings: &mut Vec<String>) {
    let d = &c.daemon;
    let Ok(contractors) = bounded(d.ledger.contractors()).await else {
        return;
    };
    for k in contractors
        .iter()
        .filter(|k| k.state == crate::ledger::ContractorState::Active)
        .take(MAX_COMPLAINT_CHECKS)
    {
        if let Ok(v) = bounded(crate::complaints::evaluate(&d.ledger, k.id, false, now)).await {
            if let Some(w) = v.flagged {
                warnings.push(format!(
                    "contractor {} ({}): complaint rule reached — {} complaints {}..{}",
                    k.id, k.name, w.count, w.first_day, w.last_day
                ));
            }
        }
    }
}
