//! The admin CLI (issue #2 §5). Scripts outside this repository drive the daemon through
//! these exact command names and flags: add freely, never rename.
//!
//! Exit status: 0 success; 2 bad input (unknown plan, malformed date or number, duplicate,
//! unknown id — nothing was written); 3 a live command found no running daemon; 1 anything
//! else (database unreachable, I/O).

mod admin;
mod live;
mod money;
mod records;
mod web_users;

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigSource};
use crate::ledger::{Ledger, LedgerError};

#[derive(Debug, Parser)]
#[command(
    name = "smartdesk",
    version,
    about = "smartdesk: SIP trunk → operator seats for a phone-answering service (受電代行)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Configuration file (default: ./smartdesk.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides daemon.data_dir).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ledger URL: sqlite:PATH or postgres://… (overrides ledger.url).
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Load and validate the configuration and profiles; opens nothing.
    CheckConfig,
    /// Apply ledger migrations.
    Migrate,
    /// Contractors (契約者) and their contracts.
    #[command(subcommand)]
    Contractor(ContractorCmd),
    /// Assigned numbers (割当番号).
    #[command(subcommand)]
    Number(NumberCmd),
    /// Operator seats.
    #[command(subcommand)]
    Seat(SeatCmd),
    /// Calls recorded in the ledger.
    Calls(CallsArgs),
    /// Service level of a day from the queue log: offered, answer rate, speed of answer
    /// (average, 90th percentile), abandon rate; per contractor and overall.
    Stats(StatsArgs),
    /// Price a month of a contract without a database (sales and support).
    Quote(money::QuoteArgs),
    /// The monthly statement from the ledger.
    Bill(money::BillArgs),
    /// Is the service open at a moment, why, and when does that change?
    Hours(HoursArgs),
    /// What the running daemon is doing: hours, trunks, seats, calls, ledger, warnings.
    Status,
    /// A call in progress (live; asks the running daemon).
    #[command(subcommand)]
    Call(CallCmd),
    /// Callers waiting for a seat and every seat's state, time in state and calls handled
    /// today (live; asks the running daemon).
    Queue,
    /// Reload profiles, service hours and prompts in the running daemon (like SIGHUP);
    /// invalid files are refused with their errors and the running configuration is kept.
    Reload,
    /// First-response records (一次対応記録) with the delivery status of their reports;
    /// `records correct ID …` writes a correction.
    Records(records::RecordsArgs),
    /// The report outbox: failed reports and retrying them.
    #[command(subcommand)]
    Reports(records::ReportsCmd),
    /// Admin accounts of the web admin view (/admin).
    #[command(subcommand)]
    Admin(web_users::AdminCmd),
}

#[derive(Debug, Subcommand)]
pub enum CallCmd {
    /// End a call in progress cleanly (BYE / CANCEL to both sides; the outcome is recorded).
    Hangup {
        /// The call id (`calls --live` lists it).
        call_id: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// SIP listen address for UDP and TCP (overrides sip.listen).
    #[arg(long, value_name = "IP:PORT")]
    pub sip_listen: Option<std::net::SocketAddr>,
    /// FOR TESTS AND DEMOS ONLY: start the daemon's clock at this instant (RFC 3339); it
    /// then runs in real time. Lets service hours be exercised at any moment.
    #[arg(long, value_name = "RFC3339")]
    pub clock: Option<String>,
    /// Web console listen address (overrides web.listen).
    #[arg(long, value_name = "IP:PORT")]
    pub http_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum ContractorCmd {
    /// Add a contractor; prints its id alone (or, with --json, the stored object).
    Add {
        #[arg(long)]
        name: String,
        /// What the operator says on answering, e.g. 「はい、株式会社ABCでございます」.
        #[arg(long)]
        greeting: String,
        /// SD100, SD200, SD300, SD500, or legacy Standard, Business, Enterprise, Premium.
        #[arg(long)]
        plan: String,
        /// With the hearing option (ヒアリングオプション).
        #[arg(long)]
        hearing: bool,
        /// A hearing item (question); repeat for several.
        #[arg(long = "hearing-item", value_name = "TEXT")]
        hearing_items: Vec<String>,
        /// Contract start date, YYYY-MM-DD.
        #[arg(long)]
        start: String,
    },
    /// List contractors.
    List,
    /// Show one contractor with its contract history and numbers.
    Show { id: String },
    /// Change plan (takes effect per SPEC §6: the 25th rule).
    Plan {
        id: String,
        #[arg(long)]
        plan: String,
        #[arg(long, conflicts_with = "no_hearing")]
        hearing: bool,
        #[arg(long)]
        no_hearing: bool,
        /// Date the request was received, YYYY-MM-DD (default: today, Tokyo).
        #[arg(long)]
        received: Option<String>,
    },
    /// Record a cancellation notice (SPEC §6).
    Cancel {
        id: String,
        /// Date the notice was received, YYYY-MM-DD (default: today, Tokyo).
        #[arg(long)]
        received: Option<String>,
        /// A later end month the contractor named, YYYY-MM.
        #[arg(long)]
        end_month: Option<String>,
    },
    /// Suspend: calls are no longer routed (base fees keep running).
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
        /// When the suspension took effect (RFC 3339; default now). For recording a
        /// suspension decided earlier; it cannot lie in the future.
        #[arg(long)]
        from: Option<String>,
    },
    /// End a suspension.
    Resume { id: String },
    /// Apply the complaint rule (SPEC §6: 5+ complaint records in 3 consecutive days):
    /// report the flag, and suspend when billing.auto_suspend_on_complaints is true.
    Complaints { id: String },
    /// Where reports go: with no flag, list; with flags, replace the channels
    /// (e.g. `--email a@b --webhook URL --webhook-secret S --slack URL`).
    Channels(records::ChannelsArgs),
    /// Portal logins (contractor portal at /portal): `user add ID --email EMAIL`.
    #[command(subcommand)]
    User(web_users::ContractorUserCmd),
    /// Replace the hearing items (questions the operator asks when the contract has the
    /// hearing option).
    HearingItems {
        id: String,
        /// A hearing item; repeat for several; none clears them.
        #[arg(long = "item", value_name = "TEXT")]
        items: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NumberCmd {
    /// Assign a number (03-1234-5678, 0312345678 or +81312345678) to a contractor.
    Assign {
        contractor_id: String,
        number: String,
    },
    /// Release a number.
    Release { number: String },
    /// List assigned numbers.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SeatCmd {
    /// Add an operator seat with its SIP digest password (stored only as HA1 hashes).
    Add {
        name: String,
        /// SIP digest password for the softphone.
        #[arg(long)]
        password: String,
        /// Web console password (argon2-hashed).
        #[arg(long)]
        web_password: Option<String>,
        /// A skill of this seat, e.g. `hearing` (preferred for contractors with the hearing
        /// option); repeat for several.
        #[arg(long = "skill", value_name = "SKILL")]
        skills: Vec<String>,
    },
    /// Show a seat's skills, or replace them with the --skill list (--clear: none).
    Skills {
        name: String,
        #[arg(long = "skill", value_name = "SKILL")]
        skills: Vec<String>,
        #[arg(long, conflicts_with = "skills")]
        clear: bool,
    },
    /// Reset a seat's SIP and/or web password.
    Passwd {
        name: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        web_password: Option<String>,
    },
    /// List seats.
    List,
    /// Pause a seat in the running daemon: no new calls are offered to it (a call ringing
    /// now rings on). Live: asks the daemon.
    Pause {
        name: String,
        /// Why, e.g. 休憩 or 研修 (shown in status and queue).
        #[arg(long)]
        reason: String,
    },
    /// End a seat's pause (also one the daemon set after unanswered calls). Live.
    Resume { name: String },
    /// Force a seat back to available: no pause, no retry delay; a ringing offer is
    /// withdrawn and what the call path really holds is re-read. Live.
    Reset { name: String },
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The day, YYYY-MM-DD (Asia/Tokyo).
    #[arg(long)]
    pub day: String,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// Billing month YYYY-MM (Asia/Tokyo boundaries).
    #[arg(long)]
    pub month: Option<String>,
    #[arg(long)]
    pub contractor: Option<String>,
    /// Calls in progress now, from the running daemon (instead of the ledger).
    #[arg(long, conflicts_with_all = ["month", "contractor"])]
    pub live: bool,
}

#[derive(Debug, Args)]
pub struct HoursArgs {
    /// The instant to ask about (RFC 3339; default: now).
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

/// Errors the CLI reports; the variant decides the exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: exit 2, nothing written.
    #[error("{0}")]
    Input(String),
    /// Anything else: exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// A live command found no daemon: exit 3.
    #[error("{0}")]
    NotRunning(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Other(_) => 1,
            CliError::NotRunning(_) => 3,
        }
    }
    pub(crate) fn field(field: &str, msg: impl std::fmt::Display) -> CliError {
        CliError::Input(format!("{field}: {msg}"))
    }
}

impl From<LedgerError> for CliError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound { .. } | LedgerError::Conflict(_) => {
                CliError::Input(e.to_string())
            }
            other => CliError::Other(other.into()),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Configuration as the global flags amend it.
pub fn load_config(g: &GlobalArgs) -> CliResult<Config> {
    let (mut cfg, _) = Config::load(&ConfigSource {
        file: g.config.clone(),
        env: None,
    })
    .map_err(|e| CliError::Input(e.to_string()))?;
    if let Some(d) = &g.data_dir {
        cfg.daemon.data_dir = d.clone();
    }
    if let Some(u) = &g.database {
        cfg.ledger.url = u.clone();
        let problems = cfg.validate();
        if let Some(p) = problems.iter().find(|p| p.key == "ledger.url") {
            return Err(CliError::field("--database", &p.message));
        }
    }
    Ok(cfg)
}

pub async fn open_ledger(cfg: &Config) -> CliResult<Ledger> {
    let url = cfg.ledger_url();
    let ledger = Ledger::connect(&url, cfg.ledger.max_connections)
        .await
        .map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot open ledger {}: {e}",
                redact_url(&url)
            ))
        })?;
    ledger
        .migrate()
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
    Ok(ledger)
}

/// Never print a password from a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn parse_date(field: &str, s: &str) -> CliResult<NaiveDate> {
    let ok_shape =
        s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') && s.as_bytes().get(7) == Some(&b'-');
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(d) if ok_shape => Ok(d),
        _ => Err(CliError::field(
            field,
            format!("{s:?} is not a date (YYYY-MM-DD)"),
        )),
    }
}

pub(crate) fn parse_id(field: &str, s: &str) -> CliResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CliError::field(field, format!("{s:?} is not a contractor id")))
}

pub(crate) fn parse_instant(field: &str, s: &str) -> CliResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            CliError::field(
                field,
                format!("{s:?} is not an RFC 3339 instant (e.g. 2026-11-25T10:00:00+09:00)"),
            )
        })
}

/// Today in Asia/Tokyo: the date the terms reason in (SPEC §5, §6).
pub(crate) fn today_tokyo() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive()
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> CliResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::Other(e.into()))?;
    println!("{s}");
    Ok(())
}

/// Run one CLI invocation (the daemon included) and return its exit status.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Serve(args) => crate::daemon::run(&cli.global, args),
        Command::CheckConfig => check_config(&cli.global),
        Command::Quote(args) => money::quote(&cli.global, &args),
        Command::Hours(args) => admin::hours(&cli.global, &args),
        Command::Status => live::status(&cli.global),
        Command::Calls(args) if args.live => live::calls(&cli.global, &args),
        Command::Call(CallCmd::Hangup { call_id }) => live::hangup(&cli.global, &call_id),
        Command::Reload => live::reload(&cli.global),
        Command::Queue => live::queue(&cli.global),
        Command::Seat(SeatCmd::Pause { name, reason }) => {
            live::seat(&cli.global, "pause", &name, Some(&reason))
        }
        Command::Seat(SeatCmd::Resume { name }) => live::seat(&cli.global, "resume", &name, None),
        Command::Seat(SeatCmd::Reset { name }) => live::seat(&cli.global, "reset", &name, None),
        other => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start runtime: {e}");
                    return 1;
                }
            };
            rt.block_on(dispatch_db(&cli.global, other))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            if let CliError::Other(inner) = &e {
                for cause in inner.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            }
            e.exit_code()
        }
    }
}

async fn dispatch_db(g: &GlobalArgs, cmd: Command) -> CliResult {
    let cfg = load_config(g)?;
    let ledger = open_ledger(&cfg).await?;
    let r = match cmd {
        Command::Migrate => {
            if !g.json {
                println!("ledger migrated ({})", ledger.backend());
            }
            Ok(())
        }
        Command::Contractor(ContractorCmd::Channels(a)) => records::channels(g, &ledger, a).await,
        Command::Contractor(ContractorCmd::HearingItems { id, items }) => {
            admin::hearing_items(g, &ledger, &id, &items).await
        }
        Command::Contractor(ContractorCmd::User(c)) => {
            web_users::contractor_user(g, &ledger, c).await
        }
        Command::Admin(c) => web_users::admin(g, &ledger, c).await,
        Command::Contractor(c) => admin::contractor(g, &cfg, &ledger, c).await,
        Command::Records(a) => records::records(g, &cfg, &ledger, a).await,
        Command::Reports(c) => records::reports_cmd(g, &ledger, c).await,
        Command::Number(c) => admin::number(g, &ledger, c).await,
        Command::Seat(c) => admin::seat(g, &cfg, &ledger, c).await,
        Command::Calls(a) => admin::calls(g, &ledger, &a).await,
        Command::Stats(a) => admin::stats(g, &ledger, &a).await,
        Command::Bill(a) => money::bill(g, &ledger, &a).await,
        Command::Serve(_)
        | Command::CheckConfig
        | Command::Quote(_)
        | Command::Hours(_)
        | Command::Status
        | Command::Call(_)
        | Command::Queue
        | Command::Reload => {
            unreachable!("handled without a ledger")
        }
    };
    ledger.close().await;
    r
}

/// All profile problems as one bad-input error (exit 2), one line each.
pub fn profile_errors(ps: Vec<crate::config::ConfigProblem>) -> CliError {
    CliError::Input(format!(
        "{} profile error(s):\n{}",
        ps.len(),
        ps.iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

fn check_config(g: &GlobalArgs) -> CliResult {
    let cfg = load_config(g)?;
    let profiles =
        crate::config::Profiles::load_dir(&cfg.sip.profiles_dir).map_err(profile_errors)?;
    let warning = crate::hours::Calendar::new(cfg.hours.clone()).coverage_warning(today_tokyo());
    if g.json {
        print_json(&serde_json::json!({
            "ok": true,
            "ledger": redact_url(&cfg.ledger_url()),
            "sip_listen": cfg.sip.listen.to_string(),
            "trunks": profiles.trunks.iter().map(|t| &t.name).collect::<Vec<_>>(),
            "seat_realm": profiles.seats.realm,
            "profile_files": profiles.files,
            "warnings": warning.iter().collect::<Vec<_>>(),
        }))?;
    } else {
        println!("configuration OK");
        println!("  ledger:   {}", redact_url(&cfg.ledger_url()));
        println!(
            "  sip:      {} (udp={}, tcp={})",
            cfg.sip.listen, cfg.sip.udp, cfg.sip.tcp
        );
        println!("  web:      {}", cfg.web.listen);
        println!(
            "  trunks:   {}",
            profiles
                .trunks
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  seats:    realm {:?}, expires {}..{} s",
            profiles.seats.realm, profiles.seats.min_expires, profiles.seats.max_expires
        );
        if let Some(w) = warning {
            println!("warning: {w}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:./data/x.db"), "sqlite:./data/x.db");
    }

    #[test]
    fn dates_are_strict() {
        assert!(parse_date("--start", "2026-11-16").is_ok());
        for bad in ["2026-11-31", "2026-1-16", "16/11/2026", "", "2026-11-16x"] {
            let e = parse_date("--start", bad).expect_err(bad);
            assert!(e.to_string().starts_with("--start: "), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
