//! The tokio edge: sockets, timers, signals, systemd. Everything here feeds inputs to the
//! pure cores and carries their outputs out; no rule is decided here.

pub mod admission;
pub mod media;
mod notify;
pub mod prompts;
pub mod requests;
pub mod seat_feed;
mod sip;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::net::{TcpListener, UdpSocket};

use crate::cli::{
    load_config, open_ledger, parse_instant, redact_url, CliError, CliResult, GlobalArgs, ServeArgs,
};
use crate::config::{Config, LogFormat, Profiles};
use crate::hours::Calendar;

/// The daemon's clock: wall time shifted by a fixed offset. `serve --clock` sets the offset
/// so that tests and demos can place the daemon at any instant while time still runs.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: chrono::Duration,
}

impl Clock {
    pub fn real() -> Clock {
        Clock {
            offset: chrono::Duration::zero(),
        }
    }
    pub fn starting_at(at: DateTime<Utc>) -> Clock {
        Clock {
            offset: at - Utc::now(),
        }
    }
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

pub fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMARTDESK_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Everything the running daemon shares between its tasks.
pub struct Daemon {
    pub config: Config,
    pub profiles: Profiles,
    pub calendar: Arc<Calendar>,
    pub clock: Clock,
    pub ledger: crate::ledger::Ledger,
}

pub fn run(g: &GlobalArgs, args: ServeArgs) -> CliResult {
    let mut cfg = load_config(g)?;
    if let Some(l) = args.sip_listen {
        cfg.sip.listen = l;
    }
    if let Some(l) = args.http_listen {
        cfg.web.listen = l;
    }
    let clock = match &args.clock {
        Some(s) => Clock::starting_at(parse_instant("--clock", s)?),
        None => Clock::real(),
    };
    let profiles = Profiles::load_dir(&cfg.sip.profiles_dir).map_err(crate::cli::profile_errors)?;
    let calendar = Calendar::try_new(cfg.hours.clone()).map_err(|e| CliError::field("hours", e))?;
    init_logging(&cfg);
    std::fs::create_dir_all(cfg.data_dir()).map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "cannot create data dir {}: {e}",
            cfg.data_dir().display()
        ))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("smartdesk")
        .build()
        .map_err(|e| CliError::Other(e.into()))?;
    rt.block_on(async move {
        let ledger = open_ledger(&cfg).await?;
        let daemon = Arc::new(Daemon {
            config: cfg,
            profiles,
            calendar: Arc::new(calendar),
            clock,
            ledger,
        });
        serve(daemon).await
    })
}

async fn serve(d: Arc<Daemon>) -> CliResult {
    let cfg = &d.config;
    let local = sip::advertised(cfg).map_err(|e| CliError::Other(anyhow::anyhow!(e)))?;
    let prompts = prompts::Prompts::load(&cfg.media.prompts_dir)
        .map_err(|e| CliError::Other(anyhow::anyhow!(e)))?;
    match d.ledger.close_orphaned_calls(d.clock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(calls = n, "calls left open by the previous run closed"),
        Err(e) => {
            tracing::error!(error = %e, "could not close calls left open by the previous run")
        }
    }
    let udp = if cfg.sip.udp {
        Some(UdpSocket::bind(cfg.sip.listen).await.map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot bind SIP UDP {}: {e}",
                cfg.sip.listen
            ))
        })?)
    } else {
        None
    };
    let tcp = if cfg.sip.tcp {
        Some(TcpListener::bind(cfg.sip.listen).await.map_err(|e| {
            CliError::Other(anyhow::anyhow!(
                "cannot bind SIP TCP {}: {e}",
                cfg.sip.listen
            ))
        })?)
    } else {
        None
    };
    if let Some(w) = d.calendar.coverage_warning(
        d.clock
            .now()
            .with_timezone(&chrono_tz::Asia::Tokyo)
            .date_naive(),
    ) {
        tracing::warn!("{w}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        sip = %cfg.sip.listen,
        udp = cfg.sip.udp,
        tcp = cfg.sip.tcp,
        ledger = %redact_url(&cfg.ledger_url()),
        backend = %d.ledger.backend(),
        trunks = d.profiles.trunks.len(),
        open_now = d.calendar.is_open_at(d.clock.now()),
        "smartdesk ready"
    );
    notify::notify("READY=1\nSTATUS=taking calls");
    let watchdog = notify::watchdog_interval().map(|iv| {
        tokio::spawn(async move {
            let mut t = tokio::time::interval(iv);
            loop {
                t.tick().await;
                notify::notify("WATCHDOG=1");
            }
        })
    });
    // Handed to the control socket and the web console as they start.
    let (core, core_requests) = requests::channel();
    let (seat_feed_tx, seat_feed_rx) = seat_feed::channel();
    let web_listener = TcpListener::bind(cfg.web.listen).await.map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "cannot bind the web console {}: {e}",
            cfg.web.listen
        ))
    })?;
    let web_addr = web_listener.local_addr().ok();
    let reports_wake = Arc::new(tokio::sync::Notify::new());
    let sip = tokio::spawn(sip::run(
        d.clone(),
        local,
        prompts,
        udp,
        tcp,
        core_requests,
        seat_feed_tx,
    ));
    let web = tokio::spawn(crate::web::serve(
        web_listener,
        crate::web::AppState::new(d.clone(), core.clone(), seat_feed_rx, reports_wake.clone()),
    ));
    let clock = d.clock;
    let reports = tokio::spawn(
        crate::reports::worker::Worker::new(
            d.ledger.clone(),
            cfg.reports.clone(),
            Arc::new(move || clock.now()),
            reports_wake,
        )
        .run(),
    );
    if let Some(a) = web_addr {
        tracing::info!(web = %a, "operator console at http://{a}/console");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    notify::notify("STOPPING=1");
    sip.abort();
    web.abort();
    reports.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    d.ledger.close().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
