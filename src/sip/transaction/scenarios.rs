//! Scenario tests with fake time: one per timer (RFC 3261 §A Table 4), checking the exact
//! retransmission schedule and the terminal state, plus matching and bounds.

use std::sync::Arc;

use super::testkit::{drain, layer, request, response_to, Clock};
use super::*;

const UDP: Reliability = Reliability::Unreliable;
const TCP: Reliability = Reliability::Reliable;
const PEER: PeerId = PeerId(9);

/// A layer under test plus everything it emitted, stamped with fake milliseconds.
struct Harness {
    clock: Clock,
    layer: TransactionLayer,
    transmits: Vec<(u64, Arc<[u8]>)>,
    events: Vec<(u64, TsxEvent)>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(LayerConfig::default())
    }

    fn with(config: LayerConfig) -> Harness {
        Harness {
            clock: Clock::new(),
            layer: layer(config),
            transmits: Vec::new(),
            events: Vec::new(),
        }
    }

    fn collect(&mut self, t: u64) {
        let (transmits, events) = drain(&mut self.layer);
        self.transmits
            .extend(transmits.into_iter().map(|tx| (t, tx.bytes)));
        self.events.extend(events.into_iter().map(|e| (t, e)));
    }

    /// Fires timers in order up to and including `until` ms.
    fn run_until(&mut self, until: u64) {
        while let Some(at) = self.layer.poll_timeout() {
            let t = self.clock.ms_of(at);
            if t > until {
                break;
            }
            self.layer.handle_timeout(at);
            self.collect(t);
        }
    }

    fn run_to_end(&mut self) {
        self.run_until(u64::MAX);
    }

    fn send_request(&mut self, t: u64, msg: TsxMessage, rel: Reliability) -> TsxKey {
        self.run_until(t);
        let key = self.layer.send_request(self.clock.at(t), msg, PEER, rel);
        self.collect(t);
        match key {
            Ok(key) => key,
            Err(e) => panic!("send_request failed: {e}"),
        }
    }

    fn incoming(&mut self, t: u64, msg: TsxMessage, rel: Reliability) {
        self.run_until(t);
        self.layer.handle_incoming(self.clock.at(t), msg, rel, PEER);
        self.collect(t);
    }

    fn respond(&mut self, t: u64, key: &TsxKey, msg: TsxMessage) {
        self.run_until(t);
        let sent = self.layer.send_response(self.clock.at(t), key, msg);
        assert_eq!(sent, Ok(()));
        self.collect(t);
    }

    fn sent_times(&self, bytes: &Arc<[u8]>) -> Vec<u64> {
        self.transmits
            .iter()
            .filter(|(_, b)| b == bytes)
            .map(|(t, _)| *t)
            .collect()
    }

    fn event_times(&self, pred: impl Fn(&TsxEvent) -> bool) -> Vec<u64> {
        self.events
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(t, _)| *t)
            .collect()
    }

    fn timeouts(&self, key: &TsxKey) -> Vec<(u64, Timer)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                TsxEvent::Timeout { key: k, timer } if k == key => Some((*t, *timer)),
                _ => None,
            })
            .collect()
    }

    fn terminated_at(&self, key: &TsxKey) -> Vec<u64> {
        self.event_times(|e| matches!(e, TsxEvent::Terminated { key: k } if k == key))
    }

    fn responses(&self, key: &TsxKey) -> Vec<(u64, u16)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                TsxEvent::Response { key: k, msg } if k == key => {
                    msg.status().map(|status| (*t, status))
                }
                _ => None,
            })
            .collect()
    }

    fn new_request_key(&self) -> TsxKey {
        let key = self.events.iter().find_map(|(_, e)| match e {
            TsxEvent::NewRequest { key, .. } => Some(key.clone()),
            _ => None,
        });
        match key {
            Some(key) => key,
            None => panic!("no NewRequest event in {:?}", self.events),
        }
    }

    fn assert_empty(&mut self) {
        assert!(self.layer.is_empty(), "live: {:?}", self.layer);
        assert_eq!(self.layer.poll_timeout(), None);
    }
}

// ---- INVITE client: Timers A, B, C, D (§17.1.1.2) ----

#[test]
fn timer_a_doubles_without_cap_and_timer_b_times_out_at_64_t1() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKa", 1);
    let key = h.send_request(0, invite.clone(), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Calling));
    h.run_to_end();
    assert_eq!(
        h.sent_times(&invite.bytes),
        vec![0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::B)]);
    assert_eq!(h.terminated_at(&key), vec![32_000]);
    assert_eq!(h.layer.state(&key), None);
    h.assert_empty();
}

#[test]
fn timer_b_alone_over_reliable_transport() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKb", 1);
    let key = h.send_request(0, invite.clone(), TCP);
    h.run_to_end();
    assert_eq!(h.sent_times(&invite.bytes), vec![0]);
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::B)]);
    assert_eq!(h.terminated_at(&key), vec![32_000]);
    h.assert_empty();
}

#[test]
fn provisional_stops_timer_a_and_b_and_timer_c_bounds_proceeding() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKc", 1);
    let key = h.send_request(0, invite.clone(), UDP);
    h.incoming(1_000, response_to(&invite, 180, Some("t")), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Proceeding));
    // A second 1xx is passed up too and restarts Timer C.
    h.incoming(61_000, response_to(&invite, 183, Some("t")), UDP);
    h.run_to_end();
    assert_eq!(h.sent_times(&invite.bytes), vec![0, 500]);
    assert_eq!(h.responses(&key), vec![(1_000, 180), (61_000, 183)]);
    assert_eq!(
        h.timeouts(&key),
        vec![(61_000 + DEFAULT_TIMER_C.as_millis() as u64, Timer::C)]
    );
    h.assert_empty();
}

#[test]
fn timer_d_absorbs_retransmitted_finals_with_the_same_ack() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKd", 1);
    let key = h.send_request(0, invite.clone(), UDP);
    let busy = response_to(&invite, 486, Some("t"));
    h.incoming(700, busy.clone(), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Completed));
    h.incoming(2_000, busy.clone(), UDP);
    h.incoming(3_000, busy, UDP);
    h.run_to_end();
    let ack = h
        .transmits
        .iter()
        .find(|(t, _)| *t == 700)
        .map(|(_, b)| b.clone());
    let ack = ack.and_then(|b| testkit::decode(&b));
    let Some(ack) = ack else {
        panic!("no ACK sent")
    };
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(
        ack.branch, invite.branch,
        "§17.1.1.3: same branch as INVITE"
    );
    assert_eq!(ack.to_tag.as_deref(), Some("t"));
    assert_eq!(h.sent_times(&ack.bytes), vec![700, 2_000, 3_000]);
    assert_eq!(h.sent_times(&invite.bytes), vec![0, 500]);
    assert_eq!(h.responses(&key), vec![(700, 486)]);
    assert_eq!(h.layer.stats().absorbed_retransmissions, 2);
    assert!(h.timeouts(&key).is_empty());
    assert_eq!(h.terminated_at(&key), vec![700 + 32_000]);
    h.assert_empty();
}

#[test]
fn timer_d_is_zero_over_reliable_transport() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKd2", 1);
    let key = h.send_request(0, invite.clone(), TCP);
    h.incoming(700, response_to(&invite, 603, Some("t")), TCP);
    assert_eq!(h.terminated_at(&key), vec![700]);
    assert_eq!(h.transmits.len(), 2, "INVITE and ACK");
    h.assert_empty();
}

#[test]
fn invite_2xx_ends_the_client_transaction_and_later_2xx_go_to_the_tu() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bK2xx", 1);
    let key = h.send_request(0, invite.clone(), UDP);
    let ok = response_to(&invite, 200, Some("t"));
    h.incoming(300, ok.clone(), UDP);
    assert_eq!(h.responses(&key), vec![(300, 200)]);
    assert_eq!(h.terminated_at(&key), vec![300]);
    h.incoming(800, ok, UDP);
    let stray = h.event_times(|e| matches!(e, TsxEvent::StrayResponse { .. }));
    assert_eq!(stray, vec![800]);
    assert_eq!(
        h.sent_times(&invite.bytes),
        vec![0],
        "no ACK from the transaction"
    );
    h.assert_empty();
}

// ---- non-INVITE client: Timers E, F, K (§17.1.2.2) ----

#[test]
fn timer_e_doubles_capped_at_t2_and_timer_f_times_out() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKe", 1);
    let key = h.send_request(0, options.clone(), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Trying));
    h.run_to_end();
    assert_eq!(
        h.sent_times(&options.bytes),
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::F)]);
    assert_eq!(h.terminated_at(&key), vec![32_000]);
    h.assert_empty();
}

#[test]
fn timer_e_runs_at_t2_in_proceeding() {
    let mut h = Harness::new();
    let bye = request(Method::Bye, "z9hG4bKe2", 2);
    let key = h.send_request(0, bye.clone(), UDP);
    h.incoming(1_000, response_to(&bye, 100, None), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Proceeding));
    h.run_to_end();
    assert_eq!(
        h.sent_times(&bye.bytes),
        vec![0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
    );
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::F)]);
    h.assert_empty();
}

#[test]
fn timer_f_alone_over_reliable_transport() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKf", 1);
    let key = h.send_request(0, options.clone(), TCP);
    h.run_to_end();
    assert_eq!(h.sent_times(&options.bytes), vec![0]);
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::F)]);
    h.assert_empty();
}

#[test]
fn timer_k_absorbs_retransmitted_responses_for_t4() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKk", 1);
    let key = h.send_request(0, options.clone(), UDP);
    let ok = response_to(&options, 200, Some("t"));
    h.incoming(800, ok.clone(), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Completed));
    h.incoming(1_000, ok, UDP);
    h.run_to_end();
    assert_eq!(h.sent_times(&options.bytes), vec![0, 500]);
    assert_eq!(h.responses(&key), vec![(800, 200)]);
    assert_eq!(h.layer.stats().absorbed_retransmissions, 1);
    assert_eq!(h.terminated_at(&key), vec![800 + 5_000]);
    h.assert_empty();
}

#[test]
fn timer_k_is_zero_over_reliable_transport() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKk2", 1);
    let key = h.send_request(0, options.clone(), TCP);
    h.incoming(800, response_to(&options, 404, Some("t")), TCP);
    assert_eq!(h.terminated_at(&key), vec![800]);
    h.assert_empty();
}

// ---- INVITE server: Timers G, H, I and the 100 Trying rule (§17.2.1) ----

#[test]
fn timer_g_doubles_capped_at_t2_and_timer_h_times_out_without_ack() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKg", 1);
    h.incoming(0, invite.clone(), UDP);
    let key = h.new_request_key();
    let busy = response_to(&invite, 486, Some("t"));
    h.respond(0, &key, busy.clone());
    assert_eq!(h.layer.state(&key), Some(TsxState::Completed));
    h.run_to_end();
    assert_eq!(
        h.sent_times(&busy.bytes),
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(h.timeouts(&key), vec![(32_000, Timer::H)]);
    assert_eq!(h.terminated_at(&key), vec![32_000]);
    h.assert_empty();
}

#[test]
fn timer_h_alone_over_reliable_transport() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKh", 1);
    h.incoming(0, invite.clone(), TCP);
    let key = h.new_request_key();
    let busy = response_to(&invite, 486, Some("t"));
    h.respond(100, &key, busy.clone());
    h.run_to_end();
    assert_eq!(h.sent_times(&busy.bytes), vec![100]);
    assert_eq!(h.timeouts(&key), vec![(32_100, Timer::H)]);
    h.assert_empty();
}

#[test]
fn timer_i_absorbs_acks_after_confirmation() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKi", 1);
    h.incoming(0, invite.clone(), UDP);
    let key = h.new_request_key();
    let busy = response_to(&invite, 486, Some("t"));
    h.respond(0, &key, busy.clone());
    h.incoming(2_000, invite.clone(), UDP); // retransmitted INVITE: final resent
    let ack = testkit::ToyBuilder
        .ack_for_non_2xx(&invite, &busy)
        .unwrap_or_else(|| panic!("toy ACK"));
    h.incoming(2_200, ack.clone(), UDP);
    assert_eq!(h.layer.state(&key), Some(TsxState::Confirmed));
    h.incoming(2_500, ack, UDP); // absorbed
    h.incoming(3_000, invite, UDP); // absorbed, nothing resent
    h.run_to_end();
    assert_eq!(h.sent_times(&busy.bytes), vec![0, 500, 1500, 2000]);
    assert!(h.timeouts(&key).is_empty());
    assert_eq!(h.terminated_at(&key), vec![2_200 + 5_000]);
    assert_eq!(h.layer.stats().absorbed_retransmissions, 3);
    assert!(h
        .events
        .iter()
        .all(|(_, e)| !matches!(e, TsxEvent::AckFor2xx { .. })));
    h.assert_empty();
}

#[test]
fn timer_i_is_zero_over_reliable_transport() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKi2", 1);
    h.incoming(0, invite.clone(), TCP);
    let key = h.new_request_key();
    let busy = response_to(&invite, 486, Some("t"));
    h.respond(0, &key, busy.clone());
    let ack = testkit::ToyBuilder
        .ack_for_non_2xx(&invite, &busy)
        .unwrap_or_else(|| panic!("toy ACK"));
    h.incoming(50, ack, TCP);
    assert_eq!(h.terminated_at(&key), vec![50]);
    h.assert_empty();
}

#[test]
fn layer_sends_100_trying_when_the_tu_is_silent_for_200_ms() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKtry", 1);
    h.incoming(0, invite.clone(), UDP);
    let key = h.new_request_key();
    h.run_until(1_000);
    let trying = response_to(&invite, 100, None);
    assert_eq!(h.sent_times(&trying.bytes), vec![200]);
    h.incoming(1_000, invite.clone(), UDP); // retransmission: last provisional resent
    assert_eq!(h.sent_times(&trying.bytes), vec![200, 1_000]);
    let ok = response_to(&invite, 200, Some("t"));
    h.respond(1_500, &key, ok.clone());
    assert_eq!(h.terminated_at(&key), vec![1_500], "§17.2.1: 2xx ends it");
    assert_eq!(h.sent_times(&ok.bytes), vec![1_500]);
    h.assert_empty();
}

#[test]
fn no_100_trying_when_the_tu_answers_in_time() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKtry2", 1);
    h.incoming(0, invite.clone(), UDP);
    let key = h.new_request_key();
    let ringing = response_to(&invite, 180, Some("t"));
    h.respond(150, &key, ringing.clone());
    h.run_until(10_000);
    assert_eq!(
        h.sent_times(&response_to(&invite, 100, None).bytes),
        Vec::<u64>::new()
    );
    assert_eq!(h.sent_times(&ringing.bytes), vec![150]);
    assert_eq!(h.layer.state(&key), Some(TsxState::Proceeding));
    assert_eq!(h.layer.poll_timeout(), None, "no timers while the TU rings");
}

#[test]
fn ack_for_2xx_never_matches_and_goes_to_the_tu() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKack", 1);
    h.incoming(0, invite.clone(), UDP);
    let key = h.new_request_key();
    h.respond(10, &key, response_to(&invite, 200, Some("t")));
    let ack = testkit::in_dialog(&invite, Method::Ack, "z9hG4bKack2", 1, Some("t".into()));
    h.incoming(100, ack, UDP);
    assert_eq!(
        h.event_times(|e| matches!(e, TsxEvent::AckFor2xx { .. })),
        vec![100]
    );
    h.assert_empty();
}

// ---- non-INVITE server: Timer J (§17.2.2) ----

#[test]
fn timer_j_resends_the_final_response_for_64_t1() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKj", 1);
    h.incoming(0, options.clone(), UDP);
    let key = h.new_request_key();
    assert_eq!(h.layer.state(&key), Some(TsxState::Trying));
    h.incoming(300, options.clone(), UDP); // Trying: absorbed, nothing to resend
    let ok = response_to(&options, 200, Some("t"));
    h.respond(400, &key, ok.clone());
    assert_eq!(h.layer.state(&key), Some(TsxState::Completed));
    h.incoming(1_000, options.clone(), UDP);
    h.incoming(9_000, options, UDP);
    h.run_to_end();
    assert_eq!(h.sent_times(&ok.bytes), vec![400, 1_000, 9_000]);
    assert_eq!(h.terminated_at(&key), vec![400 + 32_000]);
    let news = h.event_times(|e| matches!(e, TsxEvent::NewRequest { .. }));
    assert_eq!(news, vec![0], "retransmissions never reach the TU");
    assert_eq!(h.layer.stats().absorbed_retransmissions, 3);
    h.assert_empty();
}

#[test]
fn timer_j_is_zero_over_reliable_transport() {
    let mut h = Harness::new();
    let options = request(Method::Options, "z9hG4bKj2", 1);
    h.incoming(0, options.clone(), TCP);
    let key = h.new_request_key();
    h.respond(5, &key, response_to(&options, 200, Some("t")));
    assert_eq!(h.terminated_at(&key), vec![5]);
    h.assert_empty();
}

#[test]
fn non_invite_server_resends_the_last_provisional_in_proceeding() {
    let mut h = Harness::new();
    let register = request(Method::Register, "z9hG4bKp", 1);
    h.incoming(0, register.clone(), UDP);
    let key = h.new_request_key();
    let trying = response_to(&register, 100, None);
    h.respond(10, &key, trying.clone());
    h.incoming(500, register, UDP);
    assert_eq!(h.sent_times(&trying.bytes), vec![10, 500]);
    assert_eq!(h.layer.state(&key), Some(TsxState::Proceeding));
}

// ---- matching, errors and bounds ----

#[test]
fn cancel_is_its_own_transaction_and_finds_the_invite() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKcan", 1);
    h.incoming(0, invite.clone(), UDP);
    let invite_key = h.new_request_key();
    let cancel = testkit::in_dialog(&invite, Method::Cancel, "z9hG4bKcan", 1, None);
    assert_eq!(
        h.layer.find_invite_server_for_cancel(&cancel),
        Some(invite_key.clone())
    );
    h.incoming(100, cancel.clone(), UDP);
    let news = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, TsxEvent::NewRequest { .. }))
        .count();
    assert_eq!(news, 2, "CANCEL creates its own server transaction (§9.2)");
    assert_eq!(h.layer.len(), 2);
    h.respond(110, &invite_key, response_to(&invite, 200, Some("t")));
    assert_eq!(h.layer.find_invite_server_for_cancel(&cancel), None);
    let mut other = cancel;
    other.sent_by = "elsewhere:5060".into();
    assert_eq!(h.layer.find_invite_server_for_cancel(&other), None);
}

#[test]
fn legacy_branches_get_stateless_handling() {
    let mut h = Harness::new();
    h.incoming(0, request(Method::Invite, "1234abcd", 1), UDP);
    assert!(matches!(
        h.events.as_slice(),
        [(
            0,
            TsxEvent::NoTransactionMatch {
                reason: Unmatchable::LegacyBranch,
                ..
            }
        )]
    ));
    assert!(h.layer.is_empty());
}

#[test]
fn table_is_bounded_and_overload_asks_for_a_stateless_503() {
    let mut h = Harness::with(LayerConfig {
        max_transactions: 2,
        ..LayerConfig::default()
    });
    h.incoming(0, request(Method::Options, "z9hG4bKo1", 1), UDP);
    h.incoming(0, request(Method::Options, "z9hG4bKo2", 1), UDP);
    h.incoming(0, request(Method::Options, "z9hG4bKo3", 1), UDP);
    assert_eq!(h.layer.len(), 2);
    assert!(matches!(
        h.events.last(),
        Some((_, TsxEvent::Overloaded { .. }))
    ));
    assert_eq!(h.layer.stats().overloaded, 1);
    let refused = h.layer.send_request(
        h.clock.at(0),
        request(Method::Options, "z9hG4bKo4", 1),
        PEER,
        UDP,
    );
    assert_eq!(refused, Err(TsxError::CapacityReached));
    assert_eq!(TsxError::CapacityReached.status_code(), Some(503));
    // A retransmission of a live transaction is still absorbed at capacity.
    h.incoming(10, request(Method::Options, "z9hG4bKo1", 1), UDP);
    assert_eq!(h.layer.stats().absorbed_retransmissions, 1);
}

#[test]
fn transport_error_terminates_and_informs_the_tu() {
    let mut h = Harness::new();
    let key = h.send_request(0, request(Method::Options, "z9hG4bKte", 1), TCP);
    h.layer.handle_transport_error(&key);
    h.collect(0);
    assert_eq!(
        h.event_times(|e| matches!(e, TsxEvent::TransportError { .. })),
        vec![0]
    );
    assert_eq!(h.terminated_at(&key), vec![0]);
    h.assert_empty();
}

#[test]
fn tu_misuse_is_reported_as_errors() {
    let mut h = Harness::new();
    let now = h.clock.at(0);
    let ack = request(Method::Ack, "z9hG4bKm1", 1);
    assert_eq!(
        h.layer.send_request(now, ack, PEER, UDP),
        Err(TsxError::AckIsNotATransaction)
    );
    let legacy = request(Method::Options, "nocookie", 1);
    assert_eq!(
        h.layer.send_request(now, legacy, PEER, UDP),
        Err(TsxError::InvalidBranch)
    );
    let options = request(Method::Options, "z9hG4bKm2", 1);
    let key = h.send_request(0, options.clone(), UDP);
    assert_eq!(
        h.layer.send_request(now, options.clone(), PEER, UDP),
        Err(TsxError::DuplicateTransaction)
    );
    assert_eq!(
        h.layer
            .send_response(now, &key, response_to(&options, 200, None)),
        Err(TsxError::NotAServerTransaction)
    );
    let mut mismatched = request(Method::Bye, "z9hG4bKm3", 1);
    mismatched.cseq_method = Method::Invite;
    assert!(matches!(
        h.layer.send_request(now, mismatched, PEER, UDP),
        Err(TsxError::CSeqMethodMismatch { .. })
    ));

    h.incoming(0, request(Method::Options, "z9hG4bKm4", 1), UDP);
    let server = h.new_request_key();
    let req = request(Method::Options, "z9hG4bKm4", 1);
    assert_eq!(
        h.layer
            .send_response(now, &server, response_to(&req, 42, None)),
        Err(TsxError::InvalidStatus(42))
    );
    h.respond(0, &server, response_to(&req, 200, None));
    assert_eq!(
        h.layer
            .send_response(now, &server, response_to(&req, 500, None)),
        Err(TsxError::ResponseAfterFinal)
    );
    let gone = TsxKey::server("z9hG4bKnone", "x", Method::Options);
    assert_eq!(
        h.layer
            .send_response(now, &gone, response_to(&req, 200, None)),
        Err(TsxError::UnknownTransaction)
    );
}

#[test]
fn cancelled_deadlines_do_not_accumulate() {
    let mut h = Harness::new();
    // Each INVITE arms A and B and is then ended by a 2xx: both deadlines go stale.
    for i in 0..10_000u32 {
        let invite = request(Method::Invite, &format!("z9hG4bKq{i}"), 1);
        h.send_request(0, invite.clone(), UDP);
        h.incoming(0, response_to(&invite, 200, Some("t")), UDP);
        h.transmits.clear();
        h.events.clear();
    }
    assert!(h.layer.is_empty());
    assert!(h.layer.queued_deadlines() <= 64 + 2);
    h.assert_empty();
}

#[test]
fn late_2xx_from_another_fork_after_a_non_2xx_reaches_the_tu() {
    let mut h = Harness::new();
    let invite = request(Method::Invite, "z9hG4bKfork", 1);
    let key = h.send_request(0, invite.clone(), UDP);
    h.incoming(100, response_to(&invite, 486, Some("a")), UDP);
    h.incoming(200, response_to(&invite, 200, Some("b")), UDP);
    assert_eq!(h.responses(&key), vec![(100, 486)]);
    assert_eq!(
        h.event_times(|e| matches!(e, TsxEvent::StrayResponse { .. })),
        vec![200]
    );
}

#[test]
fn zero_trying_delay_sends_100_on_the_next_timeout() {
    let mut h = Harness::with(LayerConfig {
        timers: TimerConfig {
            trying_delay: std::time::Duration::ZERO,
            ..TimerConfig::default()
        },
        ..LayerConfig::default()
    });
    let invite = request(Method::Invite, "z9hG4bKnow", 1);
    h.incoming(0, invite.clone(), UDP);
    h.run_until(0);
    assert_eq!(
        h.sent_times(&response_to(&invite, 100, None).bytes),
        vec![0]
    );
}

#[test]
fn invalid_layer_config_is_rejected() {
    let zero = LayerConfig {
        max_transactions: 0,
        ..LayerConfig::default()
    };
    assert!(TransactionLayer::new(zero, Box::new(testkit::ToyBuilder)).is_err());
}
