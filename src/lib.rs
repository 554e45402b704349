//! smartdesk: a telephony daemon for a Japanese phone-answering service (受電代行).
//!
//! See README.md for the tour and ../shared/ARCHITECTURE.md for the shape: sans-IO
//! protocol cores ([`sip`]), pure domain rules ([`contract`], [`billing`], [`hours`]),
//! one thin tokio edge ([`daemon`]), SQL only in [`ledger`].

pub mod acd;
pub mod billing;
pub mod bills;
pub mod cli;
pub mod complaints;
pub mod config;
pub mod contract;
pub mod daemon;
pub mod hours;
pub mod ledger;
pub mod media;
pub mod number;
pub mod password;
pub mod reports;
pub mod sip;
pub mod web;
