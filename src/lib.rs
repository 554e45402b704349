//! smartdesk: a telephony daemon for a Japanese phone-answering service (受電代行).
//!
//! See README.md for the tour and ../shared/ARCHITECTURE.md for the shape: sans-IO
//! protocol cores, pure domain rules, one thin tokio edge, SQL only in [`ledger`].

pub mod config;
pub mod contract;
pub mod hours;
pub mod ledger;
pub mod number;
