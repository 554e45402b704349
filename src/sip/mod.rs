//! SIP: message framing and validation, transactions, digest auth, registrar, SDP.
pub mod auth;
pub mod b2bua;
pub mod browser_ua;
pub mod counters;
pub mod endpoint;
pub mod guard;
pub mod message;
pub mod registrar;
pub mod sdp;
pub mod seats;
pub mod security;
pub mod transaction;
