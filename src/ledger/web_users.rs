//! Web accounts of the contractor portal and the admin view (issue #8 §1, §3): argon2 PHC
//! strings only, never a plaintext password.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{on_pool, Ledger, LedgerError};

/// Roles (the schema's CHECK).
pub const ROLE_CONTRACTOR: &str = "contractor";
pub const ROLE_ADMIN: &str = "admin";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WebUser {
    pub id: i64,
    /// A contractor user's e-mail address, an admin's name.
    pub login: String,
    pub role: String,
    pub contractor_id: Option<i64>,
    /// Never printed.
    #[serde(skip)]
    pub password: String,
    /// The password is the one-time password printed at creation: it must be replaced.
    pub must_change: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, login, role, contractor_id, password, must_change, created_at";

impl Ledger {
    /// A new web account; `contractor_id` is `Some` for a contractor user, `None` for an
    /// admin. Refused (Conflict) when the login exists.
    pub async fn add_web_user(
        &self,
        login: &str,
        contractor_id: Option<i64>,
        phc: &str,
        at: DateTime<Utc>,
    ) -> Result<WebUser, LedgerError> {
        if let Some(id) = contractor_id {
            self.contractor(id).await?;
        }
        let role = if contractor_id.is_some() {
            ROLE_CONTRACTOR
        } else {
            ROLE_ADMIN
        };
        let sql = format!(
            "INSERT INTO web_users (login, role, contractor_id, password, must_change, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        let r: Result<WebUser, sqlx::Error> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(login)
                .bind(role)
                .bind(contractor_id)
                .bind(phc)
                .bind(true)
                .bind(at)
                .fetch_one(p)
                .await
        });
        match r {
            Err(e) if LedgerError::is_unique_violation(&e) => Err(LedgerError::Conflict(format!(
                "web user {login:?} already exists"
            ))),
            other => Ok(other?),
        }
    }

    pub async fn web_user_by_login(&self, login: &str) -> Result<Option<WebUser>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM web_users WHERE login = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(login)
            .fetch_optional(p)
            .await?))
    }

    pub async fn web_user(&self, id: i64) -> Result<Option<WebUser>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM web_users WHERE id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(p)
            .await?))
    }

    /// A contractor's users, or (with `None`) the admins.
    pub async fn web_users(&self, contractor_id: Option<i64>) -> Result<Vec<WebUser>, LedgerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM web_users
             WHERE ($1 IS NULL AND contractor_id IS NULL) OR contractor_id = $1 ORDER BY login"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(&sql)
            .bind(contractor_id)
            .fetch_all(p)
            .await?))
    }

    /// Replaces a user's password hash; `must_change` marks it one-time.
    pub async fn set_web_password(
        &self,
        id: i64,
        phc: &str,
        must_change: bool,
    ) -> Result<(), LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query("UPDATE web_users SET password = $1, must_change = $2 WHERE id = $3")
                .bind(phc)
                .bind(must_change)
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        LedgerError::touched(n, "web user", id)
    }

    /// Deletes a web account (a user who left, an admin no longer needed). Its sessions end
    /// at their next request: the portal checks the account on every request.
    pub async fn remove_web_user(&self, id: i64) -> Result<(), LedgerError> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM web_users WHERE id = $1")
                .bind(id)
                .execute(p)
                .await?
                .rows_affected()
        });
        LedgerError::touched(n, "web user", id)
    }
}
