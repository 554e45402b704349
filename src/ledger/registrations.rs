//! Seat registrations: the durable mirror of the registrar's bindings (see
//! [`crate::sip::seats`]). Times are unix seconds on the API (the registrar's unit) and
//! whole-second UTC timestamps in the table, like every other instant in the ledger.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};

use super::{on_pool, Ledger, LedgerError};
use crate::sip::seats::{SeatTransport, StoredBinding};

#[derive(sqlx::FromRow)]
struct RegistrationRaw {
    seat_id: i64,
    aor: String,
    contact: String,
    source: String,
    transport: String,
    call_id: String,
    cseq: i64,
    expires_at: DateTime<Utc>,
    q: Option<i32>,
    params: String,
}

impl TryFrom<RegistrationRaw> for StoredBinding {
    type Error = LedgerError;
    fn try_from(r: RegistrationRaw) -> Result<StoredBinding, LedgerError> {
        let corrupt = |field, value: String| LedgerError::Corrupt { field, value };
        Ok(StoredBinding {
            seat_id: r.seat_id,
            source: r
                .source
                .parse::<SocketAddr>()
                .map_err(|_| corrupt("registrations.source", r.source.clone()))?,
            transport: SeatTransport::parse(&r.transport)
                .ok_or_else(|| corrupt("registrations.transport", r.transport.clone()))?,
            cseq: u32::try_from(r.cseq)
                .map_err(|_| corrupt("registrations.cseq", r.cseq.to_string()))?,
            expires_at: u64::try_from(r.expires_at.timestamp())
                .map_err(|_| corrupt("registrations.expires_at", r.expires_at.to_rfc3339()))?,
            q: match r.q {
                None => None,
                Some(q) => Some(
                    u16::try_from(q)
                        .ok()
                        .filter(|q| *q <= 1000)
                        .ok_or_else(|| corrupt("registrations.q", q.to_string()))?,
                ),
            },
            aor: r.aor,
            contact: r.contact,
            call_id: r.call_id,
            params: r.params,
        })
    }
}

/// Unix seconds as a ledger timestamp (saturating: a binding cannot outlive year 262143).
fn instant(unix: u64) -> DateTime<Utc> {
    i64::try_from(unix)
        .ok()
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

const COLUMNS: &str =
    "seat_id, aor, contact, source, transport, call_id, cseq, expires_at, q, params";

impl Ledger {
    /// Insert or replace the binding with this `(aor, contact)`. `at` is the write time.
    pub async fn upsert_registration(
        &self,
        b: &StoredBinding,
        at: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO registrations
                   (seat_id, aor, contact, source, transport, call_id, cseq, expires_at, q, params, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (aor, contact) DO UPDATE SET
                   seat_id = excluded.seat_id, source = excluded.source,
                   transport = excluded.transport, call_id = excluded.call_id,
                   cseq = excluded.cseq, expires_at = excluded.expires_at, q = excluded.q,
                   params = excluded.params, updated_at = excluded.updated_at",
            )
            .bind(b.seat_id)
            .bind(&b.aor)
            .bind(&b.contact)
            .bind(b.source.to_string())
            .bind(b.transport.as_str())
            .bind(&b.call_id)
            .bind(i64::from(b.cseq))
            .bind(instant(b.expires_at))
            .bind(b.q.map(i32::from))
            .bind(&b.params)
            .bind(at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Delete the binding with this `(aor, contact)`; `false` if there was none.
    pub async fn remove_registration(&self, aor: &str, contact: &str) -> Result<bool, LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM registrations WHERE aor = $1 AND contact = $2")
                .bind(aor)
                .bind(contact)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Bindings still alive at `now` (unix seconds), by AOR then contact.
    pub async fn live_registrations(&self, now: u64) -> Result<Vec<StoredBinding>, LedgerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM registrations WHERE expires_at > $1 ORDER BY aor, contact"
        );
        let rows: Vec<RegistrationRaw> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(instant(now))
            .fetch_all(p)
            .await?);
        rows.into_iter().map(StoredBinding::try_from).collect()
    }

    /// Delete bindings whose lifetime is over at `now`; returns how many.
    pub async fn purge_expired_registrations(&self, now: u64) -> Result<u64, LedgerError> {
        Ok(on_pool!(self, |p| {
            sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
                .bind(instant(now))
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::testing::both_backends;
    use crate::ledger::NewSeat;

    const T0: u64 = 1_800_000_000;

    async fn seat(l: &Ledger, name: &str) -> i64 {
        l.add_seat(
            &NewSeat {
                name: name.into(),
                realm: "smartdesk".into(),
                ha1_md5: "0".repeat(32),
                ha1_sha256: "0".repeat(64),
                web_password: None,
            },
            Utc::now(),
        )
        .await
        .expect("seat")
        .id
    }

    fn binding(seat_id: i64, user: &str, port: u16, expires_at: u64) -> StoredBinding {
        StoredBinding {
            seat_id,
            aor: format!("sip:{user}@smartdesk"),
            contact: format!("sip:{user}@192.0.2.10:{port};transport=udp"),
            source: SocketAddr::from(([192, 0, 2, 10], port)),
            transport: SeatTransport::Udp,
            call_id: format!("{user}-{port}"),
            cseq: u32::MAX,
            expires_at,
            q: Some(500),
            params: ";+sip.instance=\"<urn:uuid:0001>\";reg-id=1".into(),
        }
    }

    both_backends!(registrations_round_trip_upsert_and_remove, |l| {
        let op1 = seat(l, "op1").await;
        let op2 = seat(l, "op2").await;
        let a = binding(op1, "op1", 5062, T0 + 60);
        let mut b = binding(op2, "op2", 5064, T0 + 120);
        b.transport = SeatTransport::Tcp;
        b.source = "[2001:db8::1]:40000".parse().unwrap();
        b.q = None;
        let at = Utc::now();
        l.upsert_registration(&a, at).await.unwrap();
        l.upsert_registration(&b, at).await.unwrap();
        assert_eq!(
            l.live_registrations(T0).await.unwrap(),
            vec![a.clone(), b.clone()]
        );

        // A refresh replaces the row (same aor and contact).
        let mut a2 = a.clone();
        a2.expires_at = T0 + 600;
        a2.cseq = 8;
        a2.source = SocketAddr::from(([198, 51, 100, 7], 1024));
        a2.q = Some(1000);
        l.upsert_registration(&a2, at).await.unwrap();
        assert_eq!(
            l.live_registrations(T0).await.unwrap(),
            vec![a2.clone(), b.clone()]
        );

        // Liveness is strict: at expires_at the binding is gone.
        assert_eq!(
            l.live_registrations(T0 + 120).await.unwrap(),
            vec![a2.clone()]
        );
        assert!(l.remove_registration(&b.aor, &b.contact).await.unwrap());
        assert!(!l.remove_registration(&b.aor, &b.contact).await.unwrap());
        assert_eq!(l.live_registrations(T0).await.unwrap(), vec![a2.clone()]);
    });

    both_backends!(expired_registrations_are_purged, |l| {
        let op1 = seat(l, "op1").await;
        for (port, exp) in [(1u16, T0 - 1), (2, T0), (3, T0 + 1)] {
            l.upsert_registration(&binding(op1, "op1", port, exp), Utc::now())
                .await
                .unwrap();
        }
        assert_eq!(l.live_registrations(T0).await.unwrap().len(), 1);
        assert_eq!(l.purge_expired_registrations(T0).await.unwrap(), 2);
        assert_eq!(l.purge_expired_registrations(T0).await.unwrap(), 0);
        let left = l.live_registrations(0).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].expires_at, T0 + 1);
    });

    both_backends!(registration_for_an_unknown_seat_is_refused, |l| {
        let r = l
            .upsert_registration(&binding(4242, "ghost", 1, T0), Utc::now())
            .await;
        assert!(r.is_err(), "foreign key to seats");
    });
}
