//! Call admission: what happens to a call the trunk brought us, decided and recorded
//! before the caller hears anything beyond 100 Trying (SPEC §2–§3, issue #4 §7).
//!
//! ```text
//!  core ── (call, AdmitRequest) ──► batch ──► owner of the number (cached ≤ 1 s)
//!                                          ──► decide(): route / announce / reject
//!                                          ──► INSERT … ON CONFLICT DO NOTHING, one
//!                                              transaction per batch (group commit)
//!  core ◄── (call, Admission) ◄────────────────┘   (Unavailable if the write failed)
//! ```
//!
//! Group commit: every call waiting while the previous batch was being written goes into
//! the next transaction, so one disk flush (SQLite `synchronous=FULL`, PostgreSQL commit)
//! covers many calls under load and a lone call still gets its own flush at once.
//!
//! Freshness: the number → contract lookup is cached for [`OWNER_TTL`]; an admin's
//! `number assign`, `suspend` or `resume` reaches calls within that time.
//!
//! PostgreSQL away (issue #10 §2): with a [`Spool`], a failed row write puts the batch's
//! rows into the spool (durable too) and the calls go on with provisional ids. The owner of
//! a number is then taken from the last lookup however old (a stale contract beats refusing
//! a caller the contract would serve); a number not looked up since start gets 503, because
//! we cannot know whether it is assigned, to whom, or whether the call would be billable.
//! While the spool's flag says the ledger is unreachable, admission does not wait on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::contract::{ContractHistory, ContractStatus};
use crate::hours::Calendar;
use crate::ledger::{Contractor, Ledger, NewCall, Spool, SuspensionRow};
use crate::sip::b2bua::{Admission, AdmitRequest, Prompt};

use super::metrics::Metrics;
use super::{Clock, Swap};

/// How long a number's owner and contract are reused without asking the ledger.
pub const OWNER_TTL: Duration = Duration::from_secs(1);
/// PostgreSQL with a spool: a row write or owner lookup not answered within this goes to
/// the spool / stale cache. Far above a healthy commit (milliseconds), well below the
/// carrier's patience after 100 Trying (Timer C is minutes; callers hang up sooner).
pub const SPOOL_AFTER: Duration = Duration::from_secs(2);
/// Calls per transaction at most.
pub const MAX_BATCH: usize = 512;
/// Owners cached at most (distinct numbers called within [`OWNER_TTL`]).
const MAX_CACHED: usize = 100_000;

/// What the ledger knows about an assigned number's contract.
#[derive(Debug, Clone)]
pub struct Owner {
    pub contractor: Contractor,
    pub history: ContractHistory,
    pub suspensions: Vec<SuspensionRow>,
}

/// The rule's answer before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No live assignment: 404, no row (SPEC §3: not billable, rejected).
    Unassigned,
    /// A row is written with `billable` and `outcome` (`None` = in progress), then `then`.
    Record {
        billable: bool,
        outcome: Option<&'static str>,
        then: Then,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Route,
    Announce(Prompt),
    Reject(u16),
}

fn suspended_at(s: &[SuspensionRow], at: DateTime<Utc>) -> bool {
    s.iter()
        .any(|s| s.effective_from <= at && s.ended_at.is_none_or(|end| at < end))
}

/// SPEC §2–§3 for one call at instant `at`.
///
/// * contract not started or ended → recorded, not billable, `not_in_contract`, refused
///   with 404 (to the caller the number is not in service; the contractor's log shows it);
/// * suspended → recorded, not billable, `suspended`, the suspended announcement;
/// * in force, outside service hours → recorded, **billable**, `out_of_hours`, announcement;
/// * in force, open → recorded, billable, routed to an operator.
///
/// A contract whose history the rules cannot read (a data error) is treated as in force:
/// the call is answered and counted rather than lost, and the error is logged by the caller.
pub fn decide(owner: Option<&Owner>, at: DateTime<Utc>, calendar: &Calendar) -> Decision {
    let Some(owner) = owner else {
        return Decision::Unassigned;
    };
    let date = at.with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    let status = owner
        .history
        .status_on(date)
        .unwrap_or(ContractStatus::InForce);
    match status {
        ContractStatus::NotStarted | ContractStatus::Ended => Decision::Record {
            billable: false,
            outcome: Some("not_in_contract"),
            then: Then::Reject(404),
        },
        _ if suspended_at(&owner.suspensions, at) => Decision::Record {
            billable: false,
            outcome: Some("suspended"),
            then: Then::Announce(Prompt::Suspended),
        },
        _ if !calendar.is_open_at(at) => Decision::Record {
            billable: true,
            outcome: Some("out_of_hours"),
            then: Then::Announce(Prompt::OutOfHours),
        },
        _ => Decision::Record {
            billable: true,
            outcome: None,
            then: Then::Route,
        },
    }
}

/// The admission worker's state.
pub struct Admitter {
    ledger: Ledger,
    /// Swapped whole by a reload; each batch decides with one calendar.
    calendar: Arc<Swap<Calendar>>,
    clock: Clock,
    cache: HashMap<String, (Instant, Option<Arc<Owner>>)>,
    metrics: Option<Arc<Metrics>>,
    spool: Option<Arc<Spool>>,
}

impl Admitter {
    pub fn new(ledger: Ledger, calendar: Arc<Swap<Calendar>>, clock: Clock) -> Admitter {
        Admitter {
            ledger,
            calendar,
            clock,
            cache: HashMap::new(),
            metrics: None,
            spool: None,
        }
    }

    /// Rows that PostgreSQL cannot take go to `spool` (see the module doc).
    pub fn with_spool(mut self, spool: Option<Arc<Spool>>) -> Admitter {
        self.spool = spool;
        self
    }

    /// With a spool, a ledger answer is waited for at most [`SPOOL_AFTER`]: a PostgreSQL
    /// gone away would otherwise hold the batch for the pool's whole acquire timeout. A
    /// write cut off this way may still have committed; the spool's replay then finds the
    /// row (same unique key) and counts nothing twice.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, crate::ledger::LedgerError>>,
    ) -> Result<T, crate::ledger::LedgerError> {
        if self.spool.is_none() {
            return f.await;
        }
        tokio::time::timeout(SPOOL_AFTER, f)
            .await
            .unwrap_or_else(|_| {
                Err(crate::ledger::LedgerError::Conflict(format!(
                    "no answer from the ledger within {} ms",
                    SPOOL_AFTER.as_millis()
                )))
            })
    }

    fn ledger_down(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.ledger_unreachable())
    }

    /// The last known owner however old, when a spool can take the row.
    fn stale_owner(&self, number: &crate::number::E164) -> Result<Option<Arc<Owner>>, ()> {
        match (&self.spool, self.cache.get(number.as_str())) {
            (Some(_), Some((_, o))) => Ok(o.clone()),
            _ => Err(()),
        }
    }

    /// Row-insert latency and failures go to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Admitter {
        self.metrics = Some(metrics);
        self
    }

    async fn owner(&mut self, number: &crate::number::E164) -> Result<Option<Arc<Owner>>, ()> {
        let now = Instant::now();
        if let Some((at, o)) = self.cache.get(number.as_str()) {
            if now.duration_since(*at) < OWNER_TTL {
                return Ok(o.clone());
            }
        }
        if self.ledger_down() {
            return self.stale_owner(number);
        }
        let fetched = self
            .bounded(async {
                let Some(id) = self.ledger.number_owner(number).await? else {
                    return Ok::<_, crate::ledger::LedgerError>(None);
                };
                let contractor = self.ledger.contractor(id).await?;
                let history = self.ledger.contract_history(&contractor).await?;
                let suspensions = self.ledger.suspensions(id).await?;
                Ok(Some(Arc::new(Owner {
                    contractor,
                    history,
                    suspensions,
                })))
            })
            .await;
        match fetched {
            Ok(o) => {
                if self.cache.len() >= MAX_CACHED {
                    self.cache
                        .retain(|_, (at, _)| now.duration_since(*at) < OWNER_TTL);
                    if self.cache.len() >= MAX_CACHED {
                        self.cache.clear();
                    }
                }
                self.cache
                    .insert(number.as_str().to_owned(), (now, o.clone()));
                Ok(o)
            }
            Err(e) => {
                tracing::error!(error = %e, "ledger lookup for an incoming call failed");
                if let Some(s) = &self.spool {
                    s.set_ledger_unreachable(true);
                }
                self.stale_owner(number)
            }
        }
    }

    /// Decides and records one batch; one answer per request, in order.
    pub async fn admit(&mut self, batch: &[(u64, AdmitRequest)]) -> Vec<(u64, Admission)> {
        let at = self.clock.now();
        let calendar = self.calendar.load();
        let mut plans = Vec::with_capacity(batch.len());
        let mut rows = Vec::new();
        for (call, req) in batch {
            let owner = match self.owner(&req.number).await {
                Ok(o) => o,
                Err(()) => {
                    plans.push((*call, None, None));
                    continue;
                }
            };
            let decision = decide(owner.as_deref(), at, &calendar);
            match decision {
                Decision::Unassigned => {
                    tracing::info!(trunk = %req.trunk, "call to an unassigned number refused (404)");
                    plans.push((*call, Some((decision, owner)), None));
                }
                Decision::Record {
                    billable, outcome, ..
                } => {
                    rows.push(NewCall {
                        trunk: req.trunk.clone(),
                        sip_call_id: req.sip_call_id.clone(),
                        from_tag: req.from_tag.clone(),
                        contractor_id: owner.as_ref().map(|o| o.contractor.id),
                        number: req.number.as_str().to_owned(),
                        caller: req.caller.clone(),
                        caller_withheld: req.withheld,
                        billable,
                        outcome: outcome.map(str::to_owned),
                        started_at: at,
                    });
                    plans.push((*call, Some((decision, owner)), Some(rows.len() - 1)));
                }
            }
        }
        let written = self.write(&rows, at).await;
        plans
            .into_iter()
            .map(|(call, plan, row_index)| {
                let admission = match (plan, row_index) {
                    (None, _) => Admission::Unavailable,
                    (Some((Decision::Unassigned, _)), _) => Admission::Reject {
                        row: None,
                        status: 404,
                        outcome: None,
                    },
                    (Some((Decision::Record { outcome, then, .. }, owner)), Some(i)) => {
                        match written.as_ref().and_then(|w| w.get(i)) {
                            None => Admission::Unavailable,
                            Some(&(row, _)) => match then {
                                Then::Reject(status) => Admission::Reject {
                                    row: Some(row),
                                    status,
                                    outcome,
                                },
                                Then::Announce(prompt) => Admission::Announce {
                                    row,
                                    prompt,
                                    outcome: outcome.unwrap_or("failed"),
                                },
                                Then::Route => {
                                    let c = owner.map(|o| o.contractor.clone());
                                    // Contractors with the hearing option prefer seats
                                    // trained for it (issue #6 §2).
                                    let skill = c
                                        .as_ref()
                                        .filter(|c| c.hearing)
                                        .map(|_| "hearing".to_owned());
                                    Admission::Route {
                                        skill,
                                        row,
                                        contractor_id: c.as_ref().map_or(0, |c| c.id),
                                        name: c
                                            .as_ref()
                                            .map(|c| c.name.clone())
                                            .unwrap_or_default(),
                                        greeting: c.map(|c| c.greeting).unwrap_or_default(),
                                    }
                                }
                            },
                        }
                    }
                    (Some(_), None) => Admission::Unavailable,
                };
                (call, admission)
            })
            .collect()
    }
}

impl Admitter {
    /// The durable "these calls exist" write: the ledger, else (PostgreSQL) the spool.
    /// `None` = neither took them: the calls get 503.
    async fn write(&self, rows: &[NewCall], at: DateTime<Utc>) -> Option<Vec<(i64, bool)>> {
        if rows.is_empty() {
            return Some(Vec::new());
        }
        let failed = if self.ledger_down() {
            None
        } else {
            let started = Instant::now();
            let written = self.bounded(self.ledger.insert_calls(rows)).await;
            if let Some(m) = &self.metrics {
                m.ledger_write.observe(started.elapsed());
                if written.is_err() {
                    m.ledger_write_failed();
                }
            }
            match written {
                Ok(w) => return Some(w),
                Err(e) => Some(e),
            }
        };
        let Some(spool) = &self.spool else {
            if let Some(e) = failed {
                tracing::error!(error = %e, calls = rows.len(), "call rows could not be written; answering 503");
            }
            return None;
        };
        if let Some(e) = failed {
            tracing::error!(error = %e, calls = rows.len(), "call rows could not be written to the ledger; spooling them");
            spool.set_ledger_unreachable(true);
        }
        match spool.put_calls(rows, at).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, calls = rows.len(), "call rows could not be spooled; answering 503");
                None
            }
        }
    }
}

/// Runs the admission worker: batches whatever is queued, answers on `out`.
pub async fn run(
    mut admitter: Admitter,
    mut rx: mpsc::Receiver<(u64, AdmitRequest)>,
    out: mpsc::Sender<(u64, Admission)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        for answer in admitter.admit(&batch).await {
            if out.send(answer).await.is_err() {
                return;
            }
        }
    }
}

/// Pending row updates kept while the ledger is unreachable; beyond this the oldest are
/// dropped (logged). Their rows exist and are counted already; at the next start the
/// orphan sweep closes them.
pub const MAX_PENDING_UPDATES: usize = 100_000;

/// Writes answered/finished updates in batches; on a ledger error keeps them and retries
/// with a capped backoff, so a database outage delays the outcome, never the call.
///
/// When the core is gone (shutdown) the queue closes: what is pending is still written, and
/// the task ends once it is (the edge bounds that wait).
///
/// With a spool (PostgreSQL): updates of spooled calls (provisional ids), and every update
/// while the ledger is unreachable or older updates wait in the spool, go to the spool, in
/// order; the replayer applies them after their calls.
pub async fn run_updates(
    ledger: Ledger,
    mut rx: mpsc::Receiver<crate::ledger::CallUpdate>,
    metrics: Option<Arc<Metrics>>,
    spool: Option<Arc<Spool>>,
) {
    let mut pending: std::collections::VecDeque<crate::ledger::CallUpdate> =
        std::collections::VecDeque::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(u) => pending.push_back(u),
                None => return,
            }
        }
        while let Ok(u) = rx.try_recv() {
            pending.push_back(u);
        }
        if pending.len() > MAX_PENDING_UPDATES {
            let dropped = pending.len() - MAX_PENDING_UPDATES;
            pending.drain(..dropped);
            tracing::error!(
                dropped,
                "call-row updates dropped while the ledger is unreachable"
            );
        }
        let n = pending.len().min(MAX_BATCH);
        let batch: Vec<_> = pending.iter().take(n).cloned().collect();
        if let Some(spool) = &spool {
            if spool.ledger_unreachable()
                || spool.backlog().updates > 0
                || batch.iter().any(|u| u.call_id() < 0)
            {
                match spool.put_updates(&batch).await {
                    Ok(()) => {
                        pending.drain(..n);
                        backoff = Duration::from_millis(100);
                    }
                    Err(e @ crate::ledger::SpoolError::Full(_)) => {
                        tracing::error!(error = %e, dropped = n, "call-row updates dropped: spool full");
                        pending.drain(..n);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, pending = pending.len(), "call-row updates could not be spooled; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                continue;
            }
        }
        let started = Instant::now();
        let result = ledger.apply_call_updates(&batch).await;
        if let Some(m) = &metrics {
            m.ledger_write.observe(started.elapsed());
            if result.is_err() {
                m.ledger_write_failed();
            }
        }
        match result {
            Ok(()) => {
                pending.drain(..n);
                backoff = Duration::from_millis(100);
            }
            Err(e) if !e.is_transient() && ledger.ping().await.is_ok() => {
                // The ledger is up, so one update is bad (it cannot become good by waiting):
                // apply them one by one and drop only what fails.
                for u in pending.drain(..n) {
                    if let Err(e1) = ledger.apply_call_updates(std::slice::from_ref(&u)).await {
                        tracing::error!(error = %e1, batch_error = %e, update = ?u, "call-row update dropped");
                    }
                }
            }
            Err(e) if spool.is_some() => {
                // Spooled at the next turn, in order.
                tracing::error!(error = %e, pending = pending.len(), "call-row updates failed; spooling them");
                if let Some(s) = &spool {
                    s.set_ledger_unreachable(true);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, pending = pending.len(), "call-row updates failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How often the replayer looks at an idle spool, and probes an unreachable ledger.
pub const REPLAY_POLL: Duration = Duration::from_millis(250);
/// A probe of the ledger that takes longer than this counts as "still away".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Replays the spool into the ledger whenever the ledger answers: probes it while it is
/// marked unreachable, clears the mark when it answers, and drains the backlog in batches.
pub async fn run_replay(spool: Arc<Spool>, ledger: Ledger, clock: Clock) {
    let mut last_prune = Instant::now();
    let mut drain_started: Option<(Instant, crate::ledger::SpoolBacklog)> = None;
    loop {
        if spool.is_empty() && !spool.ledger_unreachable() {
            if let Some((t, b)) = drain_started.take() {
                tracing::info!(
                    drained_calls = b.calls,
                    drained_updates = b.updates,
                    ms = t.elapsed().as_millis() as u64,
                    "spool drained into the ledger"
                );
            }
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = Instant::now();
                let _ = spool.prune(clock.now()).await;
            }
            tokio::time::sleep(REPLAY_POLL).await;
            continue;
        }
        match tokio::time::timeout(PROBE_TIMEOUT, ledger.ping()).await {
            Ok(Ok(())) => spool.set_ledger_unreachable(false),
            _ => {
                spool.set_ledger_unreachable(true);
                tokio::time::sleep(REPLAY_POLL).await;
                continue;
            }
        }
        if drain_started.is_none() {
            drain_started = Some((Instant::now(), spool.backlog()));
        }
        match spool.replay_step(&ledger).await {
            Ok(0) => tokio::time::sleep(REPLAY_POLL).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, backlog = ?spool.backlog(), "spool replay failed; retrying");
                tokio::time::sleep(REPLAY_POLL).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Plan;
    use crate::hours::CalendarConfig;
    use crate::ledger::ContractorState;

    fn owner(start: &str) -> Owner {
        let start = start.parse().unwrap();
        Owner {
            contractor: Contractor {
                id: 1,
                name: "ABC".into(),
                greeting: "g".into(),
                plan: Plan::Sd100,
                hearing: false,
                hearing_items: vec![],
                start_date: start,
                state: ContractorState::Active,
                created_at: Utc::now(),
            },
            history: ContractHistory::new(start, Plan::Sd100, false),
            suspensions: vec![],
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn rules_of_spec_2_and_3() {
        let cal = Calendar::try_new(CalendarConfig::default()).unwrap();
        let o = owner("2026-11-01");
        // Wednesday 2026-11-25 10:00 JST: open.
        let open = at("2026-11-25T01:00:00Z");
        assert_eq!(
            decide(Some(&o), open, &cal),
            Decision::Record {
                billable: true,
                outcome: None,
                then: Then::Route
            }
        );
        assert_eq!(decide(None, open, &cal), Decision::Unassigned);
        // 19:00:00 JST is closed, and still billable.
        assert_eq!(
            decide(Some(&o), at("2026-11-25T10:00:00Z"), &cal),
            Decision::Record {
                billable: true,
                outcome: Some("out_of_hours"),
                then: Then::Announce(Prompt::OutOfHours)
            }
        );
        // 2026-11-23 is 勤労感謝の日 (a Monday): closed.
        assert!(matches!(
            decide(Some(&o), at("2026-11-23T01:00:00Z"), &cal),
            Decision::Record {
                outcome: Some("out_of_hours"),
                ..
            }
        ));
        // Not started yet.
        assert_eq!(
            decide(Some(&owner("2026-12-01")), open, &cal),
            Decision::Record {
                billable: false,
                outcome: Some("not_in_contract"),
                then: Then::Reject(404)
            }
        );
        // Suspended from an instant; resumed later.
        let mut s = o.clone();
        s.suspensions.push(SuspensionRow {
            id: 1,
            contractor_id: 1,
            reason: "r".into(),
            received_on: "2026-11-24".parse().unwrap(),
            effective_from: at("2026-11-25T00:30:00Z"),
            ended_at: Some(at("2026-11-25T02:00:00Z")),
        });
        assert_eq!(
            decide(Some(&s), open, &cal),
            Decision::Record {
                billable: false,
                outcome: Some("suspended"),
                then: Then::Announce(Prompt::Suspended)
            }
        );
        assert!(matches!(
            decide(Some(&s), at("2026-11-25T02:00:00Z"), &cal),
            Decision::Record {
                then: Then::Route,
                ..
            }
        ));
    }
}
