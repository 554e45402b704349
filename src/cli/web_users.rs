//! Web accounts (issue #8 §1, §3): `contractor user add|reset|list|remove` for the contractor
//! portal, `admin add|reset|remove` for the admin view. Each new or reset account gets a one-time
//! password, printed once, that must be replaced at the first login.

use chrono::Utc;
use clap::Subcommand;

use super::{parse_id, print_json, CliError, CliResult, GlobalArgs};
use crate::ledger::{Ledger, WebUser};

#[derive(Debug, Subcommand)]
pub enum ContractorUserCmd {
    /// Create a portal login for the contractor; prints a one-time password.
    Add {
        /// The contractor id.
        id: String,
        /// The user's e-mail address (the login name).
        #[arg(long)]
        email: String,
    },
    /// Replace a portal user's password with a new one-time password (forgotten password).
    Reset {
        #[arg(long)]
        email: String,
    },
    /// The contractor's portal logins.
    List { id: String },
    /// Delete a portal login (a user who left); its open sessions end at once.
    Remove {
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Create an admin account for the web admin view (/admin); prints a one-time password.
    Add {
        /// Login name (letters, digits, `.`, `_`, `-`; at most 64).
        name: String,
    },
    /// Replace an admin's password with a new one-time password.
    Reset { name: String },
    /// Delete an admin account; its open sessions end at once.
    Remove { name: String },
}

/// A login e-mail address, lower-cased: one `@`, both sides non-empty, no spaces or
/// control characters, at most 254 characters.
pub fn parse_email(field: &str, s: &str) -> CliResult<String> {
    let t = s.trim();
    let ok = t.len() <= 254
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(t.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.'));
    if !ok {
        return Err(CliError::field(
            field,
            format!("{t:?} is not an e-mail address"),
        ));
    }
    Ok(t.to_lowercase())
}

fn parse_admin_name(s: &str) -> CliResult<String> {
    let t = s.trim();
    if t.is_empty()
        || t.len() > 64
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(CliError::field(
            "NAME",
            format!("{t:?}: use 1-64 letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(t.to_lowercase())
}

fn one_time_hash() -> CliResult<(String, String)> {
    let pw = crate::password::one_time();
    let phc = crate::password::hash(&pw).map_err(|e| CliError::Other(e.into()))?;
    Ok((pw, phc))
}

fn print_account(g: &GlobalArgs, u: &WebUser, pw: &str, what: &str) -> CliResult {
    if g.json {
        print_json(&serde_json::json!({
            "id": u.id,
            "login": u.login,
            "role": u.role,
            "contractor_id": u.contractor_id,
            "one_time_password": pw,
        }))
    } else {
        println!("{what} {}", u.login);
        println!("one-time password (shown once; must be changed at first login): {pw}");
        Ok(())
    }
}

pub(crate) async fn contractor_user(
    g: &GlobalArgs,
    ledger: &Ledger,
    cmd: ContractorUserCmd,
) -> CliResult {
    match cmd {
        ContractorUserCmd::Add { id, email } => {
            let id = parse_id("ID", &id)?;
            let email = parse_email("--email", &email)?;
            let (pw, phc) = one_time_hash()?;
            let u = ledger
                .add_web_user(&email, Some(id), &phc, Utc::now())
                .await?;
            print_account(g, &u, &pw, &format!("portal user for contractor {id}:"))
        }
        ContractorUserCmd::Reset { email } => {
            let email = parse_email("--email", &email)?;
            reset(g, ledger, &email, true).await
        }
        ContractorUserCmd::List { id } => {
            let id = parse_id("ID", &id)?;
            ledger.contractor(id).await?;
            let users = ledger.web_users(Some(id)).await?;
            if g.json {
                return print_json(&users);
            }
            for u in &users {
                println!(
                    "{}\t{}",
                    u.login,
                    if u.must_change {
                        "one-time password not yet changed"
                    } else {
                        "active"
                    }
                );
            }
            if users.is_empty() {
                println!("no portal users");
            }
            Ok(())
        }
        ContractorUserCmd::Remove { email } => {
            let email = parse_email("--email", &email)?;
            remove(g, ledger, &email, true).await
        }
    }
}

pub(crate) async fn admin(g: &GlobalArgs, ledger: &Ledger, cmd: AdminCmd) -> CliResult {
    match cmd {
        AdminCmd::Add { name } => {
            let name = parse_admin_name(&name)?;
            let (pw, phc) = one_time_hash()?;
            let u = ledger.add_web_user(&name, None, &phc, Utc::now()).await?;
            print_account(g, &u, &pw, "admin")
        }
        AdminCmd::Reset { name } => {
            let name = parse_admin_name(&name)?;
            reset(g, ledger, &name, false).await
        }
        AdminCmd::Remove { name } => {
            let name = parse_admin_name(&name)?;
            remove(g, ledger, &name, false).await
        }
    }
}

/// The account `login` of the kind asked for (a contractor's user or an admin); an unknown
/// one is a bad-input error naming the field.
async fn account(ledger: &Ledger, login: &str, contractor: bool) -> CliResult<WebUser> {
    ledger
        .web_user_by_login(login)
        .await?
        .filter(|u| u.contractor_id.is_some() == contractor)
        .ok_or_else(|| {
            CliError::field(
                if contractor { "--email" } else { "NAME" },
                format!(
                    "no such {} {login:?}",
                    if contractor { "portal user" } else { "admin" }
                ),
            )
        })
}

async fn remove(g: &GlobalArgs, ledger: &Ledger, login: &str, contractor: bool) -> CliResult {
    let u = account(ledger, login, contractor).await?;
    ledger.remove_web_user(u.id).await?;
    if g.json {
        print_json(&serde_json::json!({ "removed": u.login, "id": u.id }))
    } else {
        println!("removed {}", u.login);
        Ok(())
    }
}

async fn reset(g: &GlobalArgs, ledger: &Ledger, login: &str, contractor: bool) -> CliResult {
    let u = account(ledger, login, contractor).await?;
    let (pw, phc) = one_time_hash()?;
    ledger.set_web_password(u.id, &phc, true).await?;
    print_account(g, &u, &pw, "password reset for")
}
