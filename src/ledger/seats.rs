//! Operator seats: login names, digest credentials (HA1 only, never plaintext) and the
//! argon2 hash of the web password.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};

#[derive(Debug, Clone)]
pub struct NewSeat {
    pub name: String,
    pub realm: String,
    /// RFC 2617 HA1 = MD5(user:realm:password), hex.
    pub ha1_md5: String,
    /// RFC 8760 HA1 = SHA-256(user:realm:password), hex.
    pub ha1_sha256: String,
    /// argon2 PHC string, if the operator may log in to the console.
    pub web_password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seat {
    pub id: i64,
    pub name: String,
    pub realm: String,
    pub web_login: bool,
    pub skills: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Secrets never leave the ledger through `Seat`'s serialisation.
    #[serde(skip)]
    pub ha1_md5: String,
    #[serde(skip)]
    pub ha1_sha256: String,
    #[serde(skip)]
    pub web_password: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SeatRaw {
    id: i64,
    name: String,
    realm: String,
    ha1_md5: String,
    ha1_sha256: String,
    web_password: Option<String>,
    skills: String,
    created_at: DateTime<Utc>,
}

impl From<SeatRaw> for Seat {
    fn from(r: SeatRaw) -> Seat {
        Seat {
            id: r.id,
            name: r.name,
            realm: r.realm,
            web_login: r.web_password.is_some(),
            skills: serde_json::from_str(&r.skills).unwrap_or_default(),
            created_at: r.created_at,
            ha1_md5: r.ha1_md5,
            ha1_sha256: r.ha1_sha256,
            web_password: r.web_password,
        }
    }
}

const SEAT_COLUMNS: &str = "id, name, realm, ha1_md5, ha1_sha256, web_password, skills, created_at";

impl Ledger {
    pub async fn add_seat(&self, s: &NewSeat, at: DateTime<Utc>) -> Result<Seat, LedgerError> {
        let sql = format!(
            "INSERT INTO seats (name, realm, ha1_md5, ha1_sha256, web_password, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SEAT_COLUMNS}"
        );
        let r: Result<SeatRaw, sqlx::Error> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(&s.name)
                .bind(&s.realm)
                .bind(&s.ha1_md5)
                .bind(&s.ha1_sha256)
                .bind(&s.web_password)
                .bind(at)
                .fetch_one(p)
                .await
        });
        match r {
            Err(e) if LedgerError::is_unique_violation(&e) => Err(LedgerError::Conflict(format!(
                "seat {:?} already exists",
                s.name
            ))),
            other => Ok(other?.into()),
        }
    }

    pub async fn seats(&self) -> Result<Vec<Seat>, LedgerError> {
        let sql = format!("SELECT {SEAT_COLUMNS} FROM seats ORDER BY name");
        let rows: Vec<SeatRaw> = on_pool!(self, |p| sqlx::query_as(&sql).fetch_all(p).await?);
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn seat_by_name(&self, name: &str) -> Result<Option<Seat>, LedgerError> {
        let sql = format!("SELECT {SEAT_COLUMNS} FROM seats WHERE name = $1");
        let row: Option<SeatRaw> = on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(name)
            .fetch_optional(p)
            .await?);
        Ok(row.map(Into::into))
    }

    /// Replace the digest credentials (and optionally the web password) of a seat.
    pub async fn set_seat_secrets(
        &self,
        name: &str,
        realm: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
        web_password: Option<&str>,
    ) -> Result<(), LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE seats SET realm = $1, ha1_md5 = $2, ha1_sha256 = $3,
                 web_password = COALESCE($4, web_password) WHERE name = $5",
            )
            .bind(realm)
            .bind(ha1_md5)
            .bind(ha1_sha256)
            .bind(web_password)
            .bind(name)
            .execute(p)
            .await?
            .rows_affected()
        });
        LedgerError::touched(n, "seat", name)
    }

    /// Replaces a seat's skills (the ACD picks them up within seconds).
    pub async fn set_seat_skills(&self, name: &str, skills: &[String]) -> Result<(), LedgerError> {
        let json = serde_json::to_string(skills).unwrap_or_else(|_| "[]".into());
        let n = on_pool!(self, |p| {
            sqlx::query("UPDATE seats SET skills = $1 WHERE name = $2")
                .bind(&json)
                .bind(name)
                .execute(p)
                .await?
                .rows_affected()
        });
        LedgerError::touched(n, "seat", name)
    }
}
