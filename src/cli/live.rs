//! Live commands: they ask the running daemon over its control socket
//! ([`crate::daemon::control`]) and open no database themselves.
//!
//! `status`, `calls --live`, `call hangup ID`, `reload`, `seat pause|resume|reset NAME`,
//! `queue`. When no daemon answers on the data
//! directory's socket they say so and exit 3.

use serde_json::{json, Value};

use super::{load_config, print_json, CallsArgs, CliError, CliResult, GlobalArgs};
use crate::daemon::control::{self, ControlError};

fn ask(g: &GlobalArgs, cmd: &str, args: Value) -> CliResult<Value> {
    let cfg = load_config(g)?;
    let path = control::socket_path(cfg.data_dir());
    control::request(&path, cmd, args).map_err(|e| match e {
        ControlError::NotRunning(_) => CliError::NotRunning(e.to_string()),
        ControlError::Input(m) => CliError::Input(m),
        ControlError::Failed(m) => CliError::Other(anyhow::anyhow!(m)),
    })
}

fn mmss(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_calls(calls: &[Value]) {
    for c in calls {
        println!(
            "  {:<8} {:<11} {:<20} {:<16} → {:<10} {:>8}",
            c["id"].as_i64().map_or("-".into(), |i| format!("#{i}")),
            s(&c["state"]),
            s(&c["contractor"]),
            s(&c["caller"]),
            s(&c["seat"]),
            mmss(c["duration_s"].as_u64().unwrap_or(0)),
        );
    }
}

pub fn status(g: &GlobalArgs) -> CliResult {
    let st = ask(g, "status", Value::Null)?;
    if g.json {
        return print_json(&st);
    }
    let up = st["uptime_s"].as_u64().unwrap_or(0);
    println!(
        "smartdesk {} — {}, up {} (pid {})",
        s(&st["version"]),
        s(&st["state"]),
        mmss(up),
        s(&st["pid"])
    );
    let h = &st["hours"];
    println!(
        "hours:    {} ({}{}) until {}",
        if h["open"].as_bool() == Some(true) {
            "OPEN"
        } else {
            "CLOSED"
        },
        s(&h["reason"]),
        h["holiday"]
            .as_str()
            .map(|n| format!(": {n}"))
            .unwrap_or_default(),
        s(&h["next_change"])
    );
    let listeners: Vec<String> = st["sip"]["listeners"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| format!("{} {}", s(&x["transport"]), s(&x["address"])))
                .collect()
        })
        .unwrap_or_default();
    println!("sip:      {}", listeners.join(", "));
    for t in st["trunks"].as_array().into_iter().flatten() {
        println!(
            "trunk:    {} [{}] last OPTIONS {}",
            s(&t["name"]),
            t["sources"]
                .as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            t["last_options_s"]
                .as_u64()
                .map_or("never (since start)".into(), |x| format!("{x} s ago")),
        );
    }
    let seats = st["seats"].as_array().cloned().unwrap_or_default();
    println!(
        "seats:    {} registered{}{}",
        seats.len(),
        if seats.is_empty() { "" } else { ": " },
        seats
            .iter()
            .map(|x| format!("{} {}", s(&x["name"]), s(&x["state"])))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let calls = st["calls"].as_array().cloned().unwrap_or_default();
    println!(
        "calls:    {} in progress, queue {}",
        calls.len(),
        s(&st["queue_depth"])
    );
    print_calls(&calls);
    let t = &st["today"];
    match t.get("error") {
        Some(e) => println!("today:    {} ({})", s(&t["date"]), s(e)),
        None => println!(
            "today:    {}: {} calls, {} billable",
            s(&t["date"]),
            s(&t["calls"]),
            s(&t["billable"])
        ),
    }
    let l = &st["ledger"];
    println!(
        "ledger:   {} {} ({} ms)",
        s(&l["backend"]),
        if l["healthy"].as_bool() == Some(true) {
            "healthy"
        } else {
            "UNREACHABLE"
        },
        s(&l["latency_ms"])
    );
    println!(
        "outbox:   {}",
        st["outbox_backlog"]
            .as_u64()
            .map_or("-".into(), |n| format!("{n} waiting"))
    );
    for w in st["warnings"].as_array().into_iter().flatten() {
        println!("warning:  {}", s(w));
    }
    Ok(())
}

pub fn calls(g: &GlobalArgs, _args: &CallsArgs) -> CliResult {
    let calls = ask(g, "calls", Value::Null)?;
    if g.json {
        return print_json(&calls);
    }
    let list = calls.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no call in progress");
    } else {
        println!(
            "  {:<8} {:<11} {:<20} {:<16}   {:<10} {:>8}",
            "CALL", "STATE", "CONTRACTOR", "CALLER", "SEAT", "TIME"
        );
        print_calls(&list);
    }
    Ok(())
}

pub fn hangup(g: &GlobalArgs, id: &str) -> CliResult {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CliError::field("CALL_ID", format!("{id:?} is not a call id")))?;
    let r = ask(g, "hangup", json!({ "id": id }))?;
    if g.json {
        return print_json(&r);
    }
    println!("call {id} hung up");
    Ok(())
}

pub fn reload(g: &GlobalArgs) -> CliResult {
    let r = ask(g, "reload", Value::Null)?;
    if g.json {
        return print_json(&r);
    }
    println!(
        "reloaded: trunks {}",
        r["trunks"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    for n in r["needs_restart"].as_array().into_iter().flatten() {
        println!(
            "note: [{}] changed; it takes effect at the next restart",
            s(n)
        );
    }
    for w in r["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", s(w));
    }
    Ok(())
}

/// `seat pause NAME --reason TEXT`, `seat resume NAME`, `seat reset NAME`.
pub fn seat(g: &GlobalArgs, action: &str, name: &str, reason: Option<&str>) -> CliResult {
    if reason.is_some_and(|r| r.trim().is_empty()) {
        return Err(CliError::field("--reason", "must not be empty"));
    }
    let r = ask(
        g,
        "seat",
        json!({ "action": action, "name": name, "reason": reason }),
    )?;
    if g.json {
        return print_json(&r);
    }
    let state = &r["seat"];
    let shown = match state["reason"].as_str() {
        Some(why) => format!("{} ({why})", s(&state["state"])),
        None => s(&state["state"]),
    };
    println!("seat {name}: {shown}");
    Ok(())
}

/// `queue [--json]`.
pub fn queue(g: &GlobalArgs) -> CliResult {
    let q = ask(g, "queue", Value::Null)?;
    if g.json {
        return print_json(&q);
    }
    let waiting = q["waiting"].as_array().cloned().unwrap_or_default();
    if waiting.is_empty() {
        println!("no caller waiting");
    } else {
        println!(
            "  {:>3} {:<8} {:<20} {:<16} {:>8}  RINGING",
            "#", "CALL", "CONTRACTOR", "CALLER", "WAIT"
        );
        for w in &waiting {
            println!(
                "  {:>3} {:<8} {:<20} {:<16} {:>8}  {}",
                s(&w["position"]),
                w["call"].as_i64().map_or("-".into(), |i| format!("#{i}")),
                s(&w["contractor"]),
                s(&w["caller"]),
                mmss(w["wait_s"].as_u64().unwrap_or(0)),
                s(&w["ringing_seat"]),
            );
        }
    }
    let seats = q["seats"].as_array().cloned().unwrap_or_default();
    println!(
        "  {:<12} {:<22} {:>8} {:>6}",
        "SEAT", "STATE", "FOR", "TODAY"
    );
    for x in &seats {
        let state = match x["reason"].as_str() {
            Some(why) => format!("{} ({why})", s(&x["state"])),
            None => s(&x["state"]),
        };
        println!(
            "  {:<12} {:<22} {:>8} {:>6}",
            s(&x["name"]),
            state,
            mmss(x["in_state_s"].as_u64().unwrap_or(0)),
            s(&x["handled_today"]),
        );
    }
    Ok(())
}
