//! Service level from the queue log (issue #6 §7): what `smartdesk stats` prints.
//!
//! Definitions (those of Asterisk's queue_log reports and most ACD dashboards):
//! - **offered**: callers that entered the queue;
//! - **answered**: callers connected to a seat; **answer rate** = answered / offered;
//! - **speed of answer**: the wait of answered callers, from entering to connection; its
//!   average and 90th percentile (nearest-rank: the smallest wait at or below which 90 % of
//!   the answered waits lie);
//! - **abandoned**: callers who hung up while waiting; **abandon rate** = abandoned / offered;
//! - **overflow**: callers sent to message taking (too long a wait, or nobody logged in).

use std::collections::BTreeMap;

use serde::Serialize;

/// One logged event as the ledger returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub contractor: i64,
    pub kind: String,
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceLevel {
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub overflow: u64,
    /// answered / offered; `None` with nothing offered.
    pub answer_rate: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub asa_avg_ms: Option<u64>,
    pub asa_p90_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayStats {
    pub overall: ServiceLevel,
    /// Per contractor id.
    pub contractors: BTreeMap<i64, ServiceLevel>,
}

#[derive(Default)]
struct Acc {
    offered: u64,
    abandoned: u64,
    overflow: u64,
    waits: Vec<u64>,
}

impl Acc {
    fn add(&mut self, e: &LoggedEvent) {
        match e.kind.as_str() {
            "entered" => self.offered += 1,
            "connected" => self.waits.push(e.wait_ms.unwrap_or(0)),
            "abandoned" => self.abandoned += 1,
            "overflow" => self.overflow += 1,
            _ => {}
        }
    }

    fn finish(mut self) -> ServiceLevel {
        self.waits.sort_unstable();
        let answered = self.waits.len() as u64;
        let rate = |n: u64| (self.offered > 0).then(|| n as f64 / self.offered as f64);
        let avg = (answered > 0).then(|| self.waits.iter().sum::<u64>() / answered);
        let p90 = (answered > 0)
            .then(|| {
                // Nearest rank: ceil(0.9 · n), 1-based.
                let rank = (answered * 9).div_ceil(10).max(1);
                self.waits.get(usize::try_from(rank - 1).ok()?).copied()
            })
            .flatten();
        ServiceLevel {
            offered: self.offered,
            answered,
            abandoned: self.abandoned,
            overflow: self.overflow,
            answer_rate: rate(answered),
            abandon_rate: rate(self.abandoned),
            asa_avg_ms: avg,
            asa_p90_ms: p90,
        }
    }
}

/// Service levels of a set of events (one day's, as the CLI selects them).
pub fn service_levels(events: &[LoggedEvent]) -> DayStats {
    let mut overall = Acc::default();
    let mut per: BTreeMap<i64, Acc> = BTreeMap::new();
    for e in events {
        overall.add(e);
        per.entry(e.contractor).or_default().add(e);
    }
    DayStats {
        overall: overall.finish(),
        contractors: per.into_iter().map(|(k, a)| (k, a.finish())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(contractor: i64, kind: &str, wait_ms: Option<u64>) -> LoggedEvent {
        LoggedEvent {
            contractor,
            kind: kind.into(),
            wait_ms,
        }
    }

    #[test]
    fn rates_average_and_p90() {
        let mut events = Vec::new();
        for i in 0..10u64 {
            events.push(ev(1, "entered", None));
            events.push(ev(1, "offered", None));
            events.push(ev(1, "connected", Some((i + 1) * 1000)));
        }
        events.push(ev(1, "entered", None));
        events.push(ev(1, "abandoned", Some(4000)));
        events.push(ev(2, "entered", None));
        events.push(ev(2, "overflow", Some(60_000)));
        let s = service_levels(&events);
        let c1 = &s.contractors[&1];
        assert_eq!((c1.offered, c1.answered, c1.abandoned), (11, 10, 1));
        assert_eq!(c1.asa_avg_ms, Some(5500));
        assert_eq!(c1.asa_p90_ms, Some(9000));
        assert!((c1.answer_rate.unwrap() - 10.0 / 11.0).abs() < 1e-9);
        let c2 = &s.contractors[&2];
        assert_eq!((c2.offered, c2.answered, c2.overflow), (1, 0, 1));
        assert_eq!((c2.asa_avg_ms, c2.asa_p90_ms), (None, None));
        assert_eq!(s.overall.offered, 12);
        assert_eq!(s.overall.answer_rate, Some(10.0 / 12.0));
        assert_eq!(service_levels(&[]).overall.answer_rate, None);
    }

    #[test]
    fn p90_of_one_wait_is_that_wait() {
        let s = service_levels(&[ev(1, "entered", None), ev(1, "connected", Some(700))]);
        assert_eq!(s.overall.asa_p90_ms, Some(700));
    }
}
