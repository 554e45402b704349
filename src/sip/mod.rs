//! SIP: message framing and validation, transactions, digest auth, registrar, SDP.
pub mod auth;
pub mod registrar;
