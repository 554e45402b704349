//! SIGHUP and `smartdesk reload` (issue #9 §5): profiles, service hours and prompts are
//! loaded again without dropping a call.
//!
//! ```text
//!  config file ([hours]) ─┐
//!  sip-profiles/ ─────────┼─► validate everything ─► any error: log each, keep the old,
//!  prompts/ ──────────────┘                          answer the errors (reload exits 2)
//!                              │ all valid
//!                              ▼
//!          core: trunk ACLs, registrar policy, prompts   (one CoreRequest::Reload)
//!          daemon: calendar (admission reads it per batch), profiles
//! ```
//!
//! What a reload does not change: listen addresses, directories, the ledger, the seat realm
//! (seat passwords are stored for it) and the other sections of the configuration file; a
//! change there is reported as needing a restart. Calls in progress keep their dialogs and
//! media; the next call sees the new trunks, hours and prompts.

use serde::Serialize;

use super::prompts::Prompts;
use super::requests::{CoreHandle, Reload};
use super::Daemon;
use crate::config::Profiles;
use crate::hours::Calendar;

#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub trunks: Vec<String>,
    pub profile_files: Vec<String>,
    /// Settings that changed in the file but take effect only at the next restart.
    pub needs_restart: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads and validates everything, then swaps it in; on any error nothing changes and the
/// errors (also logged) are returned.
pub async fn reload(d: &Daemon, core: &CoreHandle) -> Result<ReloadReport, Vec<String>> {
    let _one_at_a_time = d.reload_lock.lock().await;
    let source = d.source.clone();
    let profiles_dir = d.config.sip.profiles_dir.clone();
    let prompts_dir = d.config.media.prompts_dir.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        let cfg = crate::cli::load_config(&source)
            .map_err(|e| errors.push(e.to_string()))
            .ok();
        let profiles = Profiles::load_dir(&profiles_dir)
            .map_err(|ps| errors.extend(ps.iter().map(ToString::to_string)))
            .ok();
        let calendar = cfg.as_ref().and_then(|c| {
            Calendar::try_new(c.hours.clone())
                .map_err(|e| errors.push(format!("hours: {e}")))
                .ok()
        });
        let prompts = Prompts::load(&prompts_dir)
            .map_err(|e| errors.push(format!("prompts: {e}")))
            .ok();
        (errors, cfg, profiles, calendar, prompts)
    })
    .await;
    let Ok((mut errors, cfg, profiles, calendar, prompts)) = loaded else {
        return Err(refused(vec!["reload task failed".into()]));
    };
    let registry = profiles.as_ref().and_then(|p| {
        super::sip::registry_config(p, &d.config.sip)
            .map_err(|e| errors.push(e))
            .ok()
    });
    if let Some(p) = &profiles {
        let realm = &d.profiles.load().seats.realm;
        if &p.seats.realm != realm {
            errors.push(format!(
                "seats.realm: cannot change from {realm:?} to {:?} without a restart \
                 (seat passwords are stored for the realm)",
                p.seats.realm
            ));
        }
    }
    let (Some(cfg), Some(profiles), Some(calendar), Some(prompts), Some(registry), true) = (
        cfg,
        profiles,
        calendar,
        prompts,
        registry,
        errors.is_empty(),
    ) else {
        return Err(refused(errors));
    };
    let reload = Reload {
        trunks: profiles.trunks.clone(),
        registry,
        prompts,
    };
    match core.reload(reload).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(refused(vec![e])),
        Err(e) => return Err(refused(vec![e.to_string()])),
    }
    let mut report = ReloadReport {
        trunks: profiles.trunks.iter().map(|t| t.name.clone()).collect(),
        profile_files: profiles
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect(),
        needs_restart: needs_restart(&d.config, &cfg),
        warnings: Vec::new(),
    };
    let today = d
        .clock
        .now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive();
    if let Some(w) = calendar.coverage_warning(today) {
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    d.calendar.store(calendar);
    d.profiles.store(profiles);
    tracing::info!(
        trunks = report.trunks.len(),
        needs_restart = ?report.needs_restart,
        "configuration reloaded: profiles, hours and prompts"
    );
    Ok(report)
}

fn refused(errors: Vec<String>) -> Vec<String> {
    for e in &errors {
        tracing::error!(error = %e, "reload refused; the running configuration is kept");
    }
    errors
}

/// Sections of the file that differ from the running configuration, other than `hours`.
fn needs_restart(running: &crate::config::Config, new: &crate::config::Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_owned());
        }
    };
    check("daemon", running.daemon != new.daemon);
    check("ledger", running.ledger != new.ledger);
    // `serve --sip-listen` may override the file's address.
    let mut sip = new.sip.clone();
    sip.listen = running.sip.listen;
    check("sip", running.sip != sip);
    check("media", running.media != new.media);
    check("log", running.log != new.log);
    check("billing", running.billing != new.billing);
    check("metrics", running.metrics != new.metrics);
    out
}
