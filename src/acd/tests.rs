//! The distribution rules with fake time (issue #6 §9).

use super::*;
use proptest::prelude::*;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

struct T {
    acd: Acd,
    t0: Instant,
    now: Instant,
}

impl T {
    fn new(cfg: AcdConfig, seats: &[(SeatId, &str, &[&str])]) -> T {
        let t0 = Instant::now();
        let mut acd = Acd::new(cfg);
        let list: Vec<_> = seats
            .iter()
            .map(|(id, n, sk)| {
                (
                    *id,
                    n.to_string(),
                    sk.iter().map(|x| x.to_string()).collect(),
                )
            })
            .collect();
        acd.set_seats(t0, &list);
        for (id, n, _) in seats {
            acd.set_online(t0, *id, n, true);
        }
        T { acd, t0, now: t0 }
    }

    fn default(seats: &[(SeatId, &str)]) -> T {
        let v: Vec<(SeatId, &str, &[&str])> =
            seats.iter().map(|(i, n)| (*i, *n, &[][..])).collect();
        T::new(AcdConfig::default(), &v)
    }

    fn at(&mut self, secs: u64) {
        self.now = self.t0 + s(secs);
        // Fire every deadline up to now, in order.
        for _ in 0..1000 {
            match self.acd.poll_timeout() {
                Some(d) if d <= self.now => self.acd.handle_timeout(d),
                _ => break,
            }
        }
        self.acd.handle_timeout(self.now);
    }

    fn decisions(&mut self) -> Vec<Decision> {
        std::iter::from_fn(|| self.acd.poll_decision()).collect()
    }

    fn events(&mut self) -> Vec<QueueEventKind> {
        std::iter::from_fn(|| self.acd.poll_event())
            .map(|e| e.kind)
            .collect()
    }

    fn state(&self, seat: SeatId) -> SeatState {
        self.acd.seat_state(seat).unwrap()
    }
}

fn offer(call: CallKey, seat: SeatId) -> Decision {
    Decision::Offer { call, seat }
}

#[test]
fn a_caller_gets_the_longest_idle_seat_and_the_queue_serves_the_longest_waiter() {
    let mut t = T::default(&[(1, "op1"), (2, "op2")]);
    t.acd.enqueue(t.now, 10, 100, None);
    assert_eq!(
        t.decisions(),
        [offer(10, 1)],
        "never used seats: lowest id first"
    );
    t.acd.answered(t.now, 10, 1);
    t.at(1);
    t.acd.enqueue(t.now, 11, 100, None);
    assert_eq!(t.decisions(), [offer(11, 2)]);
    t.acd.answered(t.now, 11, 2);
    // op2 finishes first, then op1: op2 has been idle longer.
    t.at(5);
    t.acd.call_ended(t.now, 11, 2);
    t.at(6);
    t.acd.call_ended(t.now, 10, 1);
    assert_eq!(t.state(1), SeatState::WrapUp);
    // Callers from two contractors wait while both seats wrap up.
    t.at(7);
    t.acd.enqueue(t.now, 20, 200, None);
    t.at(8);
    t.acd.enqueue(t.now, 21, 100, None);
    assert!(t.decisions().is_empty(), "nobody free during wrap-up");
    t.acd.wrap_up_done(t.now, 1);
    assert_eq!(
        t.decisions(),
        [offer(20, 1)],
        "the longest waiter, whatever the contractor"
    );
    t.acd.answered(t.now, 20, 1);
    t.at(5 + 30);
    assert_eq!(
        t.state(2),
        SeatState::Ringing { call: 21 },
        "wrap-up maximum ended op2's"
    );
    let ev = t.events();
    assert!(ev.contains(&QueueEventKind::Connected {
        seat: 1,
        wait_ms: 0
    }));
}

#[test]
fn no_answer_moves_the_caller_on_and_the_seat_waits_its_retry_delay() {
    let mut t = T::default(&[(1, "op1"), (2, "op2")]);
    t.acd.enqueue(t.now, 10, 100, None);
    assert_eq!(t.decisions(), [offer(10, 1)]);
    t.at(14);
    assert!(t.decisions().is_empty());
    t.at(15);
    assert_eq!(
        t.decisions(),
        [Decision::Withdraw { call: 10, seat: 1 }, offer(10, 2)],
        "ring timeout 15 s, next seat at once"
    );
    assert_eq!(
        t.state(1),
        SeatState::Ringing { call: 10 },
        "until its INVITE ends"
    );
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    assert_eq!(t.state(1), SeatState::Available);
    // op2 declines: op1 is still in its no-answer retry delay (10 s from 15 s).
    t.at(16);
    t.acd.offer_ended(t.now, 10, 2, OfferEnd::Declined);
    assert!(t.decisions().is_empty());
    t.at(25);
    assert_eq!(t.decisions(), [offer(10, 1)]);
    let ev = t.events();
    assert!(ev.contains(&QueueEventKind::NoAnswer { seat: 1 }));
    assert!(ev.contains(&QueueEventKind::Declined { seat: 2 }));
}

#[test]
fn busy_and_decline_move_at_once_with_their_own_delays() {
    let cfg = AcdConfig {
        retry_busy: s(30),
        retry_decline: s(5),
        ..AcdConfig::default()
    };
    let mut t = T::new(cfg, &[(1, "op1", &[]), (2, "op2", &[])]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.decisions();
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::Busy);
    assert_eq!(t.decisions(), [offer(10, 2)]);
    t.acd.offer_ended(t.now, 10, 2, OfferEnd::Declined);
    assert!(t.decisions().is_empty());
    t.at(5);
    assert_eq!(t.decisions(), [offer(10, 2)], "decline delay 5 s");
    t.acd.offer_ended(t.now, 10, 2, OfferEnd::Declined);
    t.at(10);
    assert_eq!(t.decisions(), [offer(10, 2)]);
    t.acd.offer_ended(t.now, 10, 2, OfferEnd::Declined);
    t.at(29);
    assert!(!t.decisions().contains(&offer(10, 1)));
    t.at(30);
    assert!(t.decisions().contains(&offer(10, 1)), "busy delay 30 s");
    assert_eq!(t.events().iter().filter(|e| e.name() == "busy").count(), 1);
}

#[test]
fn consecutive_no_answers_pause_the_seat_until_resumed() {
    let cfg = AcdConfig {
        max_no_answer: 2,
        retry_no_answer: s(1),
        max_wait: s(600),
        ..AcdConfig::default()
    };
    let mut t = T::new(cfg, &[(1, "op1", &[])]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.at(15);
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    t.at(16);
    assert_eq!(t.state(1), SeatState::Ringing { call: 10 });
    t.at(31);
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    assert_eq!(
        t.state(1),
        SeatState::Paused {
            reason: PAUSE_NO_ANSWER.into()
        }
    );
    t.decisions();
    t.at(60);
    assert!(
        t.decisions().is_empty(),
        "a paused seat is not offered calls"
    );
    assert!(t.acd.is_queued(10), "still waiting");
    t.acd.resume(t.now, "op1").unwrap();
    assert_eq!(t.decisions(), [offer(10, 1)]);
    assert_eq!(
        t.acd.resume(t.now, "nobody"),
        Err(AcdError::UnknownSeat("nobody".into()))
    );
}

#[test]
fn an_answer_clears_the_no_answer_count() {
    let cfg = AcdConfig {
        max_no_answer: 2,
        retry_no_answer: s(1),
        wrap_up_max: Duration::ZERO,
        ..AcdConfig::default()
    };
    let mut t = T::new(cfg, &[(1, "op1", &[])]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.at(15);
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    t.at(16);
    t.acd.answered(t.now, 10, 1);
    t.acd.call_ended(t.now, 10, 1);
    assert_eq!(
        t.state(1),
        SeatState::Available,
        "no wrap-up when its maximum is 0"
    );
    t.acd.enqueue(t.now, 11, 1, None);
    t.at(31);
    t.acd.offer_ended(t.now, 11, 1, OfferEnd::AfterWithdraw);
    assert_eq!(
        t.state(1),
        SeatState::Available,
        "one no-answer since the last answer"
    );
}

#[test]
fn max_wait_and_nobody_registered_overflow_to_message_taking() {
    let mut t = T::default(&[(1, "op1")]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.acd.answered(t.now, 10, 1);
    t.acd.enqueue(t.now, 11, 1, None);
    t.at(59);
    assert!(t
        .decisions()
        .iter()
        .all(|d| !matches!(d, Decision::Overflow { .. })));
    t.at(60);
    assert_eq!(t.decisions(), [Decision::Overflow { call: 11 }]);
    assert!(t
        .events()
        .contains(&QueueEventKind::Overflow { wait_ms: 60_000 }));
    // op1 logs out: a new caller overflows at once.
    t.acd.set_online(t.now, 1, "op1", false);
    assert_eq!(
        t.state(1),
        SeatState::OnCall { call: 10 },
        "its call goes on"
    );
    t.acd.enqueue(t.now, 12, 1, None);
    assert_eq!(t.decisions(), [Decision::Overflow { call: 12 }]);
    t.acd.call_ended(t.now, 10, 1);
    t.acd.wrap_up_done(t.now, 1);
    assert_eq!(t.state(1), SeatState::Offline);
}

#[test]
fn losing_the_registration_withdraws_the_ringing_offer() {
    let mut t = T::default(&[(1, "op1"), (2, "op2")]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.decisions();
    t.acd.set_online(t.now, 1, "op1", false);
    assert_eq!(
        t.decisions(),
        [Decision::Withdraw { call: 10, seat: 1 }, offer(10, 2)]
    );
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    assert_eq!(t.state(1), SeatState::Offline);
    // The last seat going away leaves nobody: the waiting caller leaves a message.
    t.acd.set_online(t.now, 2, "op2", false);
    assert_eq!(
        t.decisions(),
        [
            Decision::Withdraw { call: 10, seat: 2 },
            Decision::Overflow { call: 10 }
        ]
    );
}

#[test]
fn abandon_logs_wait_and_position_and_frees_the_seat_without_penalty() {
    let mut t = T::default(&[(1, "op1")]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.at(2);
    t.acd.enqueue(t.now, 11, 2, None);
    t.at(3);
    t.acd.enqueue(t.now, 12, 2, None);
    t.at(7);
    t.acd.abandon(t.now, 12);
    t.acd.abandon(t.now, 10);
    let d = t.decisions();
    assert!(d.contains(&Decision::Withdraw { call: 10, seat: 1 }));
    t.acd.offer_ended(t.now, 10, 1, OfferEnd::AfterWithdraw);
    assert_eq!(
        t.decisions(),
        [offer(11, 1)],
        "no retry delay after an abandon"
    );
    let ev = t.events();
    assert!(ev.contains(&QueueEventKind::Abandoned {
        wait_ms: 4000,
        position: 3
    }));
    assert!(ev.contains(&QueueEventKind::Abandoned {
        wait_ms: 7000,
        position: 1
    }));
}

#[test]
fn skilled_callers_prefer_skilled_seats_then_fall_back() {
    let cfg = AcdConfig {
        skill_fallback: s(20),
        ..AcdConfig::default()
    };
    let mut t = T::new(cfg, &[(1, "plain", &[]), (2, "hear", &["hearing"])]);
    // The skilled seat is busy; a hearing caller waits rather than take the plain seat, and
    // does not block a plain caller behind it.
    t.acd.enqueue(t.now, 9, 1, None);
    assert_eq!(
        t.decisions(),
        [offer(9, 1)],
        "plain caller, longest idle (lower id)"
    );
    t.acd.answered(t.now, 9, 1);
    t.acd.enqueue(t.now, 10, 5, Some("hearing".into()));
    assert_eq!(t.decisions(), [offer(10, 2)]);
    t.acd.answered(t.now, 10, 2);
    t.acd.call_ended(t.now, 9, 1);
    t.acd.wrap_up_done(t.now, 1);
    t.acd.enqueue(t.now, 11, 5, Some("hearing".into()));
    t.at(1);
    t.acd.enqueue(t.now, 12, 6, None);
    assert_eq!(
        t.decisions(),
        [offer(12, 1)],
        "the plain seat goes to the plain caller"
    );
    t.acd.answered(t.now, 12, 1);
    t.at(19);
    t.acd.call_ended(t.now, 12, 1);
    t.acd.wrap_up_done(t.now, 1);
    assert!(t.decisions().iter().all(|d| *d != offer(11, 1)));
    t.at(20);
    assert!(
        t.decisions().contains(&offer(11, 1)),
        "after skill_fallback any seat"
    );
}

#[test]
fn pause_reset_and_snapshot() {
    let mut t = T::default(&[(1, "op1"), (2, "op2")]);
    t.acd.pause(t.now, "op1", "lunch").unwrap();
    assert_eq!(t.acd.pause(t.now, "op1", "  "), Err(AcdError::EmptyReason));
    t.acd.enqueue(t.now, 10, 7, None);
    assert_eq!(t.decisions(), [offer(10, 2)]);
    t.at(3);
    let snap = t.acd.snapshot(t.now);
    assert_eq!(snap.waiting.len(), 1);
    assert_eq!(snap.waiting[0].wait_ms, 3000);
    assert_eq!(snap.waiting[0].ringing_seat, Some(2));
    assert_eq!(
        snap.seats[0].state,
        SeatState::Paused {
            reason: "lunch".into()
        }
    );
    assert_eq!(snap.seats[0].in_state_ms, 3000);
    let json = serde_json::to_value(&snap).unwrap();
    assert_eq!(json["seats"][1]["state"], "ringing");
    // A reset of the ringing seat withdraws its offer; the seat is free once its INVITE ends.
    t.acd.reset(t.now, "op2").unwrap();
    assert_eq!(t.decisions(), [Decision::Withdraw { call: 10, seat: 2 }]);
    t.acd.offer_ended(t.now, 10, 2, OfferEnd::AfterWithdraw);
    assert_eq!(t.decisions(), [offer(10, 2)]);
    t.acd.reset(t.now, "op1").unwrap();
    assert_eq!(t.state(1), SeatState::Available);
}

#[test]
fn reconcile_repairs_stuck_seats_and_lost_callers() {
    let mut t = T::default(&[(1, "op1"), (2, "op2"), (3, "op3")]);
    t.acd.enqueue(t.now, 10, 1, None);
    t.acd.answered(t.now, 10, 1);
    t.acd.enqueue(t.now, 11, 1, None);
    t.decisions();
    // The call path lost call 10 (a BYE we never saw) and call 11; op3 is on a call the ACD
    // never heard of.
    let calls: HashSet<CallKey> = [12].into();
    let live = [LiveLeg::OnCall { call: 12, seat: 3 }];
    let n = t.acd.reconcile(t.now, &live, &calls);
    assert_eq!(n, 4, "op1 on call, op2 ringing, op3 not on call, caller 11");
    assert_eq!(t.state(1), SeatState::Available);
    assert_eq!(t.state(2), SeatState::Available);
    assert_eq!(t.state(3), SeatState::OnCall { call: 12 });
    assert!(!t.acd.is_queued(11));
    assert_eq!(
        t.acd.reconcile(t.now, &live, &calls),
        0,
        "nothing left to repair"
    );
}

// ---------------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Op {
    Enqueue { contractor: i64, skilled: bool },
    Answer(usize),
    NoResponse,
    Busy(usize),
    Decline(usize),
    EndOffer(usize),
    EndCall(usize),
    WrapDone(SeatId),
    Abandon(usize),
    Online(SeatId, bool),
    Pause(SeatId),
    Resume(SeatId),
    Reset(SeatId),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1i64..4, any::<bool>()).prop_map(|(contractor, skilled)| Op::Enqueue { contractor, skilled }),
        3 => (0usize..8).prop_map(Op::Answer),
        1 => Just(Op::NoResponse),
        1 => (0usize..8).prop_map(Op::Busy),
        1 => (0usize..8).prop_map(Op::Decline),
        2 => (0usize..8).prop_map(Op::EndOffer),
        2 => (0usize..8).prop_map(Op::EndCall),
        1 => (1i64..5).prop_map(Op::WrapDone),
        1 => (0usize..8).prop_map(Op::Abandon),
        1 => (1i64..5, any::<bool>()).prop_map(|(s, o)| Op::Online(s, o)),
        1 => (1i64..5).prop_map(Op::Pause),
        1 => (1i64..5).prop_map(Op::Resume),
        1 => (1i64..5).prop_map(Op::Reset),
        3 => (0u64..20).prop_map(Op::Advance),
    ]
}

/// A model of the call path: which INVITEs are outstanding, which calls are connected.
#[derive(Default)]
struct Path {
    ringing: Vec<(CallKey, SeatId)>,
    on_call: Vec<(CallKey, SeatId)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens: a seat holds at most one offer or call; every offer goes to a seat
    /// that was free; the caller offered is the longest waiter that seat could take.
    #[test]
    fn no_seat_holds_two_offers_and_the_longest_waiter_is_served_first(ops in proptest::collection::vec(op(), 1..120)) {
        let names = ["op1", "op2", "op3", "op4"];
        let cfg = AcdConfig { skill_fallback: s(8), max_wait: s(45), ..AcdConfig::default() };
        let seats: Vec<(SeatId, &str, &[&str])> = vec![
            (1, names[0], &[]), (2, names[1], &["hearing"]), (3, names[2], &[]), (4, names[3], &["hearing"]),
        ];
        let mut t = T::new(cfg, &seats);
        let mut path = Path::default();
        let mut next_call: CallKey = 0;
        // Callers in arrival order, still waiting (from the test's view).
        let mut queue: Vec<(CallKey, Instant, bool)> = Vec::new();
        for op in ops {
            let before = t.acd.snapshot(t.now);
            match op {
                Op::Enqueue { contractor, skilled } => {
                    next_call += 1;
                    queue.push((next_call, t.now, skilled));
                    t.acd.enqueue(t.now, next_call, contractor, skilled.then(|| "hearing".to_owned()));
                }
                Op::Answer(i) => if let Some(&(c, s)) = path.ringing.get(i) {
                    if t.acd.seat_state(s) == Some(SeatState::Ringing { call: c }) && t.acd.is_queued(c) {
                        let offered = before.waiting.iter().any(|w| w.call == c && w.ringing_seat == Some(s));
                        if offered {
                            path.ringing.remove(i);
                            t.acd.answered(t.now, c, s);
                            path.on_call.push((c, s));
                        }
                    }
                },
                Op::NoResponse => {
                    // Unreachable seat (Timer B): the first outstanding INVITE.
                    if !path.ringing.is_empty() {
                        let (c, s) = path.ringing.remove(0);
                        t.acd.offer_ended(t.now, c, s, OfferEnd::Unreachable);
                    }
                }
                Op::Busy(i) => if i < path.ringing.len() {
                    let (c, s) = path.ringing.remove(i);
                    t.acd.offer_ended(t.now, c, s, OfferEnd::Busy);
                },
                Op::Decline(i) => if i < path.ringing.len() {
                    let (c, s) = path.ringing.remove(i);
                    t.acd.offer_ended(t.now, c, s, OfferEnd::Declined);
                },
                Op::EndOffer(i) => if i < path.ringing.len() {
                    let (c, s) = path.ringing.remove(i);
                    t.acd.offer_ended(t.now, c, s, OfferEnd::AfterWithdraw);
                },
                Op::EndCall(i) => if i < path.on_call.len() {
                    let (c, s) = path.on_call.remove(i);
                    t.acd.call_ended(t.now, c, s);
                },
                Op::WrapDone(s) => { t.acd.wrap_up_done(t.now, s); }
                Op::Abandon(i) => if let Some(&(c, _, _)) = queue.get(i) {
                    t.acd.abandon(t.now, c);
                },
                Op::Online(s, o) => t.acd.set_online(t.now, s, names[(s - 1) as usize], o),
                Op::Pause(s) => { let _ = t.acd.pause(t.now, names[(s - 1) as usize], "test"); }
                Op::Resume(s) => { let _ = t.acd.resume(t.now, names[(s - 1) as usize]); }
                Op::Reset(s) => {
                    let _ = t.acd.reset(t.now, names[(s - 1) as usize]);
                    let live: Vec<LiveLeg> = path.ringing.iter().map(|&(call, seat)| LiveLeg::Ringing { call, seat })
                        .chain(path.on_call.iter().map(|&(call, seat)| LiveLeg::OnCall { call, seat })).collect();
                    let calls: HashSet<CallKey> = queue.iter().map(|q| q.0).chain(path.on_call.iter().map(|q| q.0)).collect();
                    t.acd.reconcile(t.now, &live, &calls);
                }
                Op::Advance(secs) => {
                    let until = t.now + s(secs);
                    for _ in 0..1000 {
                        match t.acd.poll_timeout() {
                            Some(d) if d <= until => {
                                t.now = t.now.max(d);
                                t.acd.handle_timeout(t.now);
                                check(&mut t, &mut path, &names)?;
                            }
                            _ => break,
                        }
                    }
                    t.now = until;
                }
            }
            let _ = before;
            check(&mut t, &mut path, &names)?;
            queue.retain(|(c, _, _)| t.acd.is_queued(*c));
        }
    }
}

/// After one input: every offer went to a seat holding nothing else, and nobody who waited
/// longer and could take that seat was left unoffered; seats with an INVITE out show it.
fn check(t: &mut T, path: &mut Path, names: &[&str; 4]) -> Result<(), TestCaseError> {
    // Offers: each to a seat that holds nothing else.
    let snapshot = t.acd.snapshot(t.now);
    for d in t.decisions() {
        match d {
            Decision::Offer { call, seat } => {
                prop_assert!(
                    !path.ringing.iter().any(|(_, s)| *s == seat),
                    "seat {seat} offered twice"
                );
                prop_assert!(
                    !path.on_call.iter().any(|(_, s)| *s == seat),
                    "seat {seat} rung while on a call"
                );
                // Nobody who waited longer and could take this seat is still unoffered.
                let me = snapshot.waiting.iter().find(|w| w.call == call);
                if let Some(me) = me {
                    let skilled = ["op2", "op4"].contains(&names[(seat - 1) as usize]);
                    for w in snapshot.waiting.iter().filter(|w| w.position < me.position) {
                        let could = w.skill.is_none() || skilled;
                        prop_assert!(
                            !(could && w.ringing_seat.is_none()),
                            "call {} (pos {}) was skipped for {call} on seat {seat}",
                            w.call,
                            w.position
                        );
                    }
                }
                path.ringing.push((call, seat));
            }
            Decision::Withdraw { call, seat } => {
                prop_assert!(
                    path.ringing.contains(&(call, seat)),
                    "withdraw of an offer not out"
                );
            }
            Decision::Overflow { .. } => {}
        }
    }
    // A seat with an outstanding INVITE shows ringing for that call; one on a call
    // shows on_call; no seat appears twice.
    let mut seen = HashSet::new();
    for (c, s) in &path.ringing {
        prop_assert!(seen.insert(*s), "two INVITEs out to seat {s}");
        let st = t.acd.seat_state(*s);
        prop_assert_eq!(
            st,
            Some(SeatState::Ringing { call: *c }),
            "seat {} with an INVITE out",
            s
        );
    }
    for (_, s) in &path.on_call {
        prop_assert!(seen.insert(*s), "seat {s} on a call and rung");
    }
    Ok(())
}
