//! Ledger behaviour on both backends.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use super::testing::both_backends;
use super::*;
use crate::contract::Plan;
use crate::number::E164;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn abc() -> NewContractor {
    NewContractor {
        name: "株式会社ABC".into(),
        greeting: "はい、株式会社ABCでございます".into(),
        plan: "SD100".parse::<Plan>().expect("plan"),
        hearing: false,
        hearing_items: vec![],
        start_date: d("2026-11-16"),
    }
}

fn call(ledger_contractor: Option<i64>, call_id: &str, tag: &str, started: &str) -> NewCall {
    NewCall {
        trunk: "carrier".into(),
        sip_call_id: call_id.into(),
        from_tag: tag.into(),
        contractor_id: ledger_contractor,
        number: "+81312345678".into(),
        caller: Some("+819012345678".into()),
        caller_withheld: false,
        billable: true,
        outcome: None,
        started_at: at(started),
    }
}

both_backends!(sqlite_durability_or_pg, |l| {
    match l.backend() {
        Backend::Sqlite => {
            let (mode, sync) = l.sqlite_pragmas().await.expect("pragmas").expect("sqlite");
            assert_eq!(mode.to_ascii_lowercase(), "wal");
            assert_eq!(sync, 2, "synchronous=FULL");
        }
        Backend::Postgres => l.ping().await.expect("ping"),
    }
});

both_backends!(migrations_are_idempotent, |l| {
    l.migrate().await.expect("second migrate is a no-op");
});

both_backends!(contractor_round_trip, |l| {
    let now = at("2026-11-25T01:02:03Z");
    let c = l.add_contractor(&abc(), now).await.expect("add");
    assert!(c.id > 0);
    let back = l.contractor(c.id).await.expect("get");
    assert_eq!(back, c);
    assert_eq!(back.greeting, "はい、株式会社ABCでございます");
    assert_eq!(back.created_at, now);
    assert_eq!(back.state, ContractorState::Active);
    let all = l.contractors().await.expect("list");
    assert_eq!(all.len(), 1);
    assert!(matches!(
        l.contractor(c.id + 100).await,
        Err(LedgerError::NotFound { .. })
    ));
});

both_backends!(numbers_are_unique_and_released, |l| {
    let now = at("2026-11-25T00:00:00Z");
    let a = l.add_contractor(&abc(), now).await.expect("a");
    let b = l.add_contractor(&abc(), now).await.expect("b");
    let n = E164::parse_jp("03-1234-5678").expect("n");
    l.assign_number(a.id, &n, now).await.expect("assign");
    let dup = l.assign_number(b.id, &n, now).await;
    assert!(
        matches!(dup, Err(LedgerError::Conflict(ref m)) if m.contains("+81312345678")),
        "{dup:?}"
    );
    assert_eq!(l.number_owner(&n).await.expect("owner"), Some(a.id));
    assert_eq!(l.numbers().await.expect("list").len(), 1);
    l.release_number(&n, now).await.expect("release");
    assert_eq!(l.number_owner(&n).await.expect("owner"), None);
    assert!(matches!(
        l.release_number(&n, now).await,
        Err(LedgerError::NotFound { .. })
    ));
    l.assign_number(b.id, &n, now)
        .await
        .expect("reassign after release");
    assert_eq!(l.number_owner(&n).await.expect("owner"), Some(b.id));
    assert!(matches!(
        l.assign_number(999, &E164::parse_jp("0311112222").expect("n"), now)
            .await,
        Err(LedgerError::NotFound { .. })
    ));
});

both_backends!(suspension_and_resume, |l| {
    let now = at("2026-11-25T00:00:00Z");
    let c = l.add_contractor(&abc(), now).await.expect("add");
    l.suspend(c.id, "breach", d("2026-11-25"), now)
        .await
        .expect("suspend");
    assert_eq!(
        l.contractor(c.id).await.expect("c").state,
        ContractorState::Suspended
    );
    assert!(matches!(
        l.suspend(c.id, "again", d("2026-11-25"), now).await,
        Err(LedgerError::Conflict(_))
    ));
    l.resume(c.id, at("2026-11-26T00:00:00Z"))
        .await
        .expect("resume");
    assert_eq!(
        l.contractor(c.id).await.expect("c").state,
        ContractorState::Active
    );
    assert!(matches!(
        l.resume(c.id, now).await,
        Err(LedgerError::Conflict(_))
    ));
    let s = l.suspensions(c.id).await.expect("list");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].ended_at, Some(at("2026-11-26T00:00:00Z")));
});

both_backends!(plan_changes_and_cancellation, |l| {
    let now = at("2026-11-25T00:00:00Z");
    let c = l.add_contractor(&abc(), now).await.expect("add");
    let plan: Plan = "SD100".parse().expect("plan");
    l.add_plan_change(c.id, plan, true, d("2026-12-25"), d("2027-01-01"), now)
        .await
        .expect("change");
    let pcs = l.plan_changes(c.id).await.expect("list");
    assert_eq!(pcs.len(), 1);
    assert!(pcs[0].hearing);
    assert_eq!(pcs[0].effective_on, d("2027-01-01"));
    let cancel = CancellationRow {
        contractor_id: c.id,
        received_on: d("2027-01-20"),
        end_month: None,
        effective_end: d("2027-01-31"),
        fee_waived: false,
    };
    l.add_cancellation(&cancel, now).await.expect("cancel");
    assert!(matches!(
        l.add_cancellation(&cancel, now).await,
        Err(LedgerError::Conflict(_))
    ));
    assert_eq!(l.cancellation(c.id).await.expect("get"), Some(cancel));
});

both_backends!(a_call_is_counted_once, |l| {
    let c = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("add");
    let first = l
        .insert_call(&call(Some(c.id), "abc@host", "t1", "2026-11-20T01:00:00Z"))
        .await
        .expect("insert");
    assert!(first.1, "first INVITE creates the row");
    let again = l
        .insert_call(&call(Some(c.id), "abc@host", "t1", "2026-11-20T01:00:01Z"))
        .await
        .expect("dup");
    assert_eq!(
        again,
        (first.0, false),
        "a re-sent INVITE finds the same row"
    );
    let other_tag = l
        .insert_call(&call(Some(c.id), "abc@host", "t2", "2026-11-20T01:00:02Z"))
        .await
        .expect("other");
    assert!(other_tag.1, "a different From-tag is a different call");
    l.finish_call(
        first.0,
        "answered",
        None,
        Some(at("2026-11-20T01:00:05Z")),
        at("2026-11-20T01:03:00Z"),
    )
    .await
    .expect("finish");
    // A later, conflicting completion does not overwrite what was recorded.
    l.finish_call(first.0, "abandoned", None, None, at("2026-11-20T01:09:00Z"))
        .await
        .expect("finish again");
    l.add_call_event(
        first.0,
        "answered",
        None,
        &serde_json::json!({"wait_ms": 5000}),
        at("2026-11-20T01:00:05Z"),
    )
    .await
    .expect("event");
    let calls = l.calls(&CallFilter::default()).await.expect("calls");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].call_id, "abc@host");
    assert_eq!(calls[0].outcome.as_deref(), Some("answered"));
    assert_eq!(calls[0].ended_at, Some(at("2026-11-20T01:03:00Z")));
    let counts = l
        .billable_counts(c.id, at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        .await
        .expect("counts");
    let total: u32 = counts.iter().map(|c| c.count).sum();
    assert_eq!(total, 2);
});

both_backends!(concurrent_duplicate_inserts_make_one_row, |l| {
    let c = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("add");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let l = l.clone();
        let nc = call(Some(c.id), "race@host", "tag", "2026-11-20T01:00:00Z");
        tasks.push(tokio::spawn(async move {
            let _ = i;
            l.insert_call(&nc).await.expect("insert")
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (id, new) = t.await.expect("join");
        ids.insert(id);
        if new {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
});

both_backends!(call_filters_by_month_and_contractor, |l| {
    let a = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("a");
    let b = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("b");
    // 2026-11-30T15:00Z is 2026-12-01 00:00 in Tokyo: December by the billing month.
    l.insert_call(&call(Some(a.id), "1", "", "2026-11-30T14:59:59Z"))
        .await
        .expect("1");
    l.insert_call(&call(Some(a.id), "2", "", "2026-11-30T15:00:00Z"))
        .await
        .expect("2");
    l.insert_call(&call(Some(b.id), "3", "", "2026-11-10T00:00:00Z"))
        .await
        .expect("3");
    let tokyo = chrono_tz::Asia::Tokyo;
    let nov_from = tokyo
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("t")
        .with_timezone(&Utc);
    let dec_from = tokyo
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("t")
        .with_timezone(&Utc);
    let nov_a = l
        .calls(&CallFilter {
            from: Some(nov_from),
            to: Some(dec_from),
            contractor_id: Some(a.id),
        })
        .await
        .expect("calls");
    assert_eq!(
        nov_a.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        vec!["1"]
    );
    let all_nov = l
        .calls(&CallFilter {
            from: Some(nov_from),
            to: Some(dec_from),
            contractor_id: None,
        })
        .await
        .expect("calls");
    assert_eq!(all_nov.len(), 2);
});

both_backends!(first_responses_are_immutable, |l| {
    let c = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("a");
    let (call_id, _) = l
        .insert_call(&call(Some(c.id), "fr", "", "2026-11-10T00:00:00Z"))
        .await
        .expect("call");
    let id = l
        .raw_insert_first_response_for_test(call_id, c.id)
        .await
        .expect("insert");
    let upd = l.raw_update_first_response_for_test(id).await;
    assert!(upd.is_err(), "UPDATE must be refused by the ledger itself");
});

both_backends!(seats_keep_only_hashes, |l| {
    let s = l
        .add_seat(
            &NewSeat {
                name: "op1".into(),
                realm: "smartdesk".into(),
                ha1_md5: "a".repeat(32),
                ha1_sha256: "b".repeat(64),
                web_password: None,
            },
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .expect("add");
    assert_eq!(s.name, "op1");
    let json = serde_json::to_string(&s).expect("json");
    assert!(
        !json.contains("aaaa") && !json.contains("bbbb"),
        "secrets must not serialise: {json}"
    );
    assert!(matches!(
        l.add_seat(
            &NewSeat {
                name: "op1".into(),
                realm: "r".into(),
                ha1_md5: "x".into(),
                ha1_sha256: "y".into(),
                web_password: None
            },
            at("2026-11-01T00:00:00Z")
        )
        .await,
        Err(LedgerError::Conflict(_))
    ));
    assert_eq!(l.seats().await.expect("list").len(), 1);
    assert!(l.seat_by_name("op1").await.expect("get").is_some());
    assert!(l.seat_by_name("nobody").await.expect("get").is_none());
});

both_backends!(batched_calls_group_commit_and_orphans_close, |l| {
    let c = l
        .add_contractor(&abc(), at("2026-11-01T00:00:00Z"))
        .await
        .expect("add");
    let batch = vec![
        call(Some(c.id), "g1@host", "t1", "2026-11-20T01:00:00Z"),
        call(Some(c.id), "g2@host", "t1", "2026-11-20T01:00:00Z"),
        // The same call twice in one batch (a re-sent INVITE) is one row.
        call(Some(c.id), "g1@host", "t1", "2026-11-20T01:00:01Z"),
    ];
    let rows = l.insert_calls(&batch).await.expect("batch");
    assert_eq!(rows.len(), 3);
    assert!(rows[0].1 && rows[1].1 && !rows[2].1);
    assert_eq!(rows[0].0, rows[2].0);
    let again = l.insert_calls(&batch[..1]).await.expect("again");
    assert_eq!(again, vec![(rows[0].0, false)]);
    l.apply_call_updates(&[
        CallUpdate::Answered {
            id: rows[0].0,
            seat_id: 0,
            at: at("2026-11-20T01:00:05Z"),
        },
        CallUpdate::Finished {
            id: rows[0].0,
            outcome: "answered".into(),
            seat_id: None,
            at: at("2026-11-20T01:02:00Z"),
        },
    ])
    .await
    .expect_err("seat 0 does not exist: the batch is refused whole");
    let seat_id = l
        .add_seat(
            &NewSeat {
                name: "op1".into(),
                realm: "smartdesk".into(),
                ha1_md5: "0".repeat(32),
                ha1_sha256: "0".repeat(64),
                web_password: None,
            },
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .expect("seat")
        .id;
    l.apply_call_updates(&[CallUpdate::Answered {
        id: rows[0].0,
        seat_id,
        at: at("2026-11-20T01:00:05Z"),
    }])
    .await
    .expect("answered");
    // A crash now: both calls are open. The next start closes them truthfully.
    let n = l
        .close_orphaned_calls(at("2026-11-20T02:00:00Z"))
        .await
        .expect("close");
    assert_eq!(n, 2);
    let calls = l.calls(&CallFilter::default()).await.expect("calls");
    let by_id = |id| calls.iter().find(|v| v.id == id).expect("row");
    assert_eq!(by_id(rows[0].0).outcome.as_deref(), Some("answered"));
    assert_eq!(by_id(rows[0].0).seat.as_deref(), Some("op1"));
    assert_eq!(by_id(rows[1].0).outcome.as_deref(), Some("failed"));
    assert!(by_id(rows[1].0).billable, "still counted");
});

both_backends!(web_users_and_test_reports, |l| {
    let now = at("2026-11-25T01:00:00Z");
    let c = l.add_contractor(&abc(), now).await.expect("contractor");
    let u = l
        .add_web_user("a@abc.example.jp", Some(c.id), "$argon2id$x", now)
        .await
        .expect("user");
    assert_eq!((u.role.as_str(), u.must_change), (ROLE_CONTRACTOR, true));
    let dup = l
        .add_web_user("a@abc.example.jp", None, "$argon2id$y", now)
        .await;
    assert!(matches!(dup, Err(LedgerError::Conflict(_))), "{dup:?}");
    let no_such = l
        .add_web_user("b@abc.example.jp", Some(9999), "$argon2id$y", now)
        .await;
    assert!(
        matches!(no_such, Err(LedgerError::NotFound { .. })),
        "{no_such:?}"
    );
    let admin = l
        .add_web_user("boss", None, "$argon2id$z", now)
        .await
        .expect("admin");
    assert_eq!(admin.role, ROLE_ADMIN);
    l.set_web_password(u.id, "$argon2id$new", false)
        .await
        .expect("set");
    let got = l
        .web_user_by_login("a@abc.example.jp")
        .await
        .expect("get")
        .expect("user");
    assert_eq!(
        (got.password.as_str(), got.must_change),
        ("$argon2id$new", false)
    );
    assert_eq!(l.web_users(Some(c.id)).await.expect("list").len(), 1);
    assert_eq!(l.web_users(None).await.expect("admins")[0].login, "boss");
    // Removal: gone from lookups; removing again is NotFound.
    l.remove_web_user(admin.id).await.expect("remove");
    assert!(l.web_user(admin.id).await.expect("get").is_none());
    assert!(l.web_users(None).await.expect("admins").is_empty());
    assert!(matches!(
        l.remove_web_user(admin.id).await,
        Err(LedgerError::NotFound { .. })
    ));
    // A test report: one outbox row per live channel, none without channels.
    let payload = serde_json::json!({"kind": "test"});
    assert_eq!(
        l.queue_test_report(c.id, 1, &payload, now)
            .await
            .expect("queue"),
        0
    );
    l.set_report_channels(
        c.id,
        &[NewChannel {
            kind: "webhook".into(),
            target: "http://127.0.0.1:9/hook".into(),
            secret: Some("0123456789abcdef".into()),
        }],
        now,
    )
    .await
    .expect("channels");
    assert_eq!(
        l.queue_test_report(c.id, 2, &payload, now)
            .await
            .expect("queue"),
        1
    );
    let recent = l.recent_reports(c.id, 10).await.expect("recent");
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (recent[0].report_kind.as_str(), recent[0].call_id),
        ("test", None)
    );
});
