//! The tokio edge: sockets, timers, signals, systemd. Everything here feeds inputs to the
//! pure cores and carries their outputs out; no rule is decided here.

pub mod admission;
pub mod browser_seat;
pub mod control;
pub mod media;
pub mod metrics;
mod notify;
pub mod prompts;
pub mod reload;
pub mod requests;
pub mod seat_feed;
mod sip;
pub mod status;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::net::{TcpListener, UdpSocket};

use crate::cli::{
    load_config, open_ledger, parse_instant, redact_url, CliError, CliResult, GlobalArgs, ServeArgs,
};
use crate::config::{Config, LogFormat, Profiles};
use crate::hours::Calendar;

use requests::CoreHandle;

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
    // Colours only on a terminal: a file, the journal or fail2ban must see plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// A value replaced whole by a reload. Readers take an `Arc` and keep one consistent
/// version for as long as they hold it; a reload never blocks them for more than a pointer
/// swap.
#[derive(Debug)]
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Swap<T> {
        Swap(RwLock::new(Arc::new(value)))
    }

    pub fn load(&self) -> Arc<T> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn store(&self, value: T) {
        let value = Arc::new(value);
        match self.0.write() {
            Ok(mut g) => *g = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

/// Everything the running daemon shares between its tasks.
pub struct Daemon {
    /// The configuration at start (`[hours]` is reloadable: read [`Self::calendar`]).
    pub config: Config,
    /// The SIP profiles in force (reloadable).
    pub profiles: Swap<Profiles>,
    /// The service calendar in force (reloadable); admission reads it for every batch.
    pub calendar: Arc<Swap<Calendar>>,
    pub clock: Clock,
    pub ledger: crate::ledger::Ledger,
    /// With PostgreSQL: where call rows go while it is away (`ledger::spool`).
    pub spool: Option<Arc<crate::ledger::Spool>>,
    pub metrics: Arc<metrics::Metrics>,
    /// Where the configuration came from, to read it again on reload.
    pub source: GlobalArgs,
    pub reload_lock: tokio::sync::Mutex<()>,
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
    let source = g.clone();
    rt.block_on(async move {
        let (ledger, spool) = open_ledger_and_spool(&cfg).await?;
        let daemon = Arc::new(Daemon {
            config: cfg,
            profiles: Swap::new(profiles),
            calendar: Arc::new(Swap::new(calendar)),
            clock,
            ledger,
            spool,
            metrics: Arc::default(),
            source,
            reload_lock: tokio::sync::Mutex::new(()),
        });
        serve(daemon).await
    })
}

/// How long a start waits for PostgreSQL when a spool with calls could be replayed later.
const START_LEDGER_WAIT: Duration = Duration::from_secs(5);

/// The ledger, and with PostgreSQL its spool. PostgreSQL away at start is an error, unless
/// the spool holds calls of a previous run: then the daemon starts with the ledger marked
/// unreachable (every number is unknown since start, so new calls get 503) and replays the
/// spool when PostgreSQL returns. The schema was migrated by the run that spooled.
async fn open_ledger_and_spool(
    cfg: &Config,
) -> CliResult<(crate::ledger::Ledger, Option<Arc<crate::ledger::Spool>>)> {
    let url = cfg.ledger_url();
    if url.starts_with("sqlite:") {
        return Ok((open_ledger(cfg).await?, None));
    }
    let path = cfg.data_dir().join(crate::ledger::spool::SPOOL_FILE);
    let spool = crate::ledger::Spool::open(&path, cfg.ledger.spool_max_calls)
        .await
        .map_err(|e| CliError::Other(anyhow::anyhow!("cannot open {}: {e}", path.display())))?;
    let spool = Arc::new(spool);
    let opened = match tokio::time::timeout(START_LEDGER_WAIT, open_ledger(cfg)).await {
        Ok(r) => r,
        Err(_) => Err(other(format!(
            "cannot open ledger {}: no answer within {} s",
            redact_url(&url),
            START_LEDGER_WAIT.as_secs()
        ))),
    };
    match opened {
        Ok(ledger) => Ok((ledger, Some(spool))),
        Err(e) if !spool.is_empty() => {
            tracing::error!(error = %e, backlog = ?spool.backlog(),
                "ledger unreachable at start; starting on the spool (new calls get 503 until it returns)");
            spool.set_ledger_unreachable(true);
            let ledger =
                crate::ledger::Ledger::connect_postgres_lazy(&url, cfg.ledger.max_connections)
                    .map_err(other)?;
            Ok((ledger, Some(spool)))
        }
        Err(e) => Err(e),
    }
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(anyhow::anyhow!("{e}"))
}

async fn serve(d: Arc<Daemon>) -> CliResult {
    let started = Instant::now();
    let cfg = &d.config;
    let local = sip::advertised(cfg).map_err(other)?;
    let prompts = prompts::Prompts::load(&cfg.media.prompts_dir).map_err(other)?;
    // Started on the spool with PostgreSQL away: nothing to sweep or replay yet.
    let ledger_away = d.spool.as_ref().is_some_and(|s| s.ledger_unreachable());
    if let Some(spool) = &d.spool {
        // Calls spooled by a previous run go in before the orphan sweep closes open rows.
        if !spool.is_empty() && !ledger_away {
            let backlog = spool.backlog();
            match spool.drain(&d.ledger, STARTUP_DRAIN).await {
                Ok(()) => {
                    tracing::warn!(?backlog, left = ?spool.backlog(), "spool of a previous run replayed")
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool replay at start failed; retrying in the background")
                }
            }
        }
        d.metrics.set_spool(spool.clone());
    }
    match close_orphans(&d, ledger_away).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(calls = n, "calls left open by the previous run closed"),
        Err(e) => {
            tracing::error!(error = %e, "could not close calls left open by the previous run")
        }
    }
    let control_path = control::socket_path(cfg.data_dir());
    let control_listener = control::bind(&control_path).await.map_err(other)?;
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
    let metrics_listener = match cfg.metrics.listen_addr() {
        Some(a) => Some(
            metrics::bind(a, cfg.metrics.allow_non_loopback)
                .await
                .map_err(other)?,
        ),
        None => None,
    };
    if let Some(w) = d.calendar.load().coverage_warning(
        d.clock
            .now()
            .with_timezone(&chrono_tz::Asia::Tokyo)
            .date_naive(),
    ) {
        tracing::warn!("{w}");
    }
    let web_listener = TcpListener::bind(cfg.web.listen).await.map_err(|e| {
        CliError::Other(anyhow::anyhow!(
            "cannot bind the web console {}: {e}",
            cfg.web.listen
        ))
    })?;
    let web_addr = web_listener.local_addr().ok();
    // Handed to the control socket, the metrics endpoint and the web console.
    let (core, core_requests) = requests::channel();
    let (seat_feed_tx, seat_feed_rx) = seat_feed::channel();
    let (stop_sip, sip_stopped) = tokio::sync::oneshot::channel();
    let mut sip = tokio::spawn(sip::run(
        d.clone(),
        local,
        prompts,
        udp,
        tcp,
        core_requests,
        sip_stopped,
        seat_feed_tx,
    ));
    // Only worth a query every few seconds when someone scrapes the gauges.
    let outbox_gauges = metrics_listener.is_some().then(|| {
        let (ledger, metrics) = (d.ledger.clone(), d.metrics.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(metrics::OUTBOX_REFRESH);
            loop {
                tick.tick().await;
                if let Ok(c) = ledger.outbox_counts().await {
                    metrics.set_outbox(c.pending, c.failed);
                }
            }
        })
    });
    let replay = d
        .spool
        .clone()
        .map(|spool| tokio::spawn(admission::run_replay(spool, d.ledger.clone(), d.clock)));
    let reports_wake = Arc::new(tokio::sync::Notify::new());
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
    let control_task = tokio::spawn(control::serve(
        control_listener,
        Arc::new(control::Control {
            daemon: d.clone(),
            core: core.clone(),
            started,
        }),
    ));
    let metrics_task = metrics_listener.map(|l| {
        tracing::info!(listen = %cfg.metrics.listen, "metrics at /metrics");
        tokio::spawn(metrics::serve(l, d.metrics.clone(), core.clone(), started))
    });
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        sip = %cfg.sip.listen,
        udp = cfg.sip.udp,
        tcp = cfg.sip.tcp,
        ledger = %redact_url(&cfg.ledger_url()),
        backend = %d.ledger.backend(),
        trunks = d.profiles.load().trunks.len(),
        open_now = d.calendar.load().is_open_at(d.clock.now()),
        control = %control_path.display(),
        "smartdesk ready"
    );
    // Sockets are bound and the ledger migrated (open_ledger): systemd may start dependants.
    // WATCHDOG=1 comes from the call core's own loop (sip::core_task).
    notify::notify("READY=1\nSTATUS=taking calls");

    let signals = Signals::new();
    let mut signals = match signals {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return Err(other(e));
        }
    };
    let mut sip_failed = false;
    loop {
        tokio::select! {
            _ = signals.term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading profiles, hours and prompts");
                // Errors are logged by reload itself; the old configuration stays.
                let _ = reload::reload(&d, &core).await;
            }
            _ = &mut sip => {
                tracing::error!("the SIP edge stopped; shutting down");
                sip_failed = true;
                break;
            }
        }
    }
    notify::notify("STOPPING=1\nSTATUS=draining: finishing calls in progress");
    let grace = Duration::from_secs(cfg.daemon.shutdown_grace_s);
    if !sip_failed {
        drain(&core, grace).await;
        let _ = stop_sip.send(());
        let _ = sip.await;
    }
    control_task.abort();
    web.abort();
    // Reports are durable in the outbox; one cut mid-delivery is sent again at the next
    // start with the same idempotency key.
    reports.abort();
    if let Some(t) = outbox_gauges {
        t.abort();
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    if let Some(t) = replay {
        t.abort();
    }
    let _ = std::fs::remove_file(&control_path);
    d.ledger.close().await;
    if let Some(s) = &d.spool {
        s.close().await;
    }
    tracing::info!(calls = ?d.metrics.calls_by_outcome().iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>(), "smartdesk stopped");
    if sip_failed {
        return Err(other("the SIP edge stopped unexpectedly"));
    }
    Ok(())
}

async fn close_orphans(d: &Daemon, ledger_away: bool) -> Result<u64, crate::ledger::LedgerError> {
    if ledger_away {
        return Ok(0);
    }
    d.ledger.close_orphaned_calls(d.clock.now()).await
}

/// At start, a spool left by a previous run is replayed for at most this long before calls
/// are taken (the rest replays in the background).
const STARTUP_DRAIN: Duration = Duration::from_secs(30);

/// How often a shutdown looks at the calls still in progress.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// After the grace period: how long hung-up calls get for their BYEs to be answered.
pub const HANGUP_FLUSH: Duration = Duration::from_secs(5);

/// SIGTERM: refuse new calls, wait for the calls in progress to end (up to `grace`), then
/// hang up the rest and give their BYEs [`HANGUP_FLUSH`] to be answered.
async fn drain(core: &CoreHandle, grace: Duration) {
    if core.drain().await.is_err() {
        return;
    }
    let settled = |s: &requests::CoreSnapshot| s.calls.is_empty() && s.requests_outstanding == 0;
    let deadline = Instant::now() + grace;
    let mut logged = None;
    loop {
        let Ok(snap) = core.snapshot().await else {
            return;
        };
        if settled(&snap) {
            tracing::info!("no call in progress; stopping");
            return;
        }
        if logged != Some(snap.calls.len()) {
            logged = Some(snap.calls.len());
            tracing::info!(
                calls = snap.calls.len(),
                grace_left_s = deadline.saturating_duration_since(Instant::now()).as_secs(),
                "shutting down: new calls refused, waiting for calls in progress"
            );
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    // From here a call whose outcome is recorded and whose carrier leg has its answer only
    // waits for a seat that never answered our INVITE (no CANCEL before a provisional,
    // RFC 3261 §9.1): nothing is lost by not waiting for its Timer B.
    let done = |s: &requests::CoreSnapshot| s.calls_unfinished == 0 && s.requests_outstanding == 0;
    let flush_deadline = Instant::now() + HANGUP_FLUSH;
    match core.hangup_all().await {
        Ok(left) => tracing::warn!(
            left,
            "grace period over: calls in progress hung up (their outcomes are recorded)"
        ),
        Err(_) => return,
    }
    while Instant::now() < flush_deadline {
        match core.snapshot().await {
            Ok(s) if done(&s) => return,
            Ok(s) if s.calls_unfinished > 0 => {
                // Calls still being admitted when the grace ended can be hung up now.
                let _ = core.hangup_all().await;
            }
            Ok(_) => {}
            Err(_) => return,
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    tracing::warn!("some hang-ups were not confirmed by the peers before exit");
}

struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}
