//! Media plane, sans-IO: G.711, tone detection, prompts, RTP relay, port allocation.
//!
//! Nothing here owns a socket or reads a clock (ARCHITECTURE "Sans-IO protocol cores"): the
//! daemon edge feeds packets and `now` in, and sends what comes out.

pub mod g711;
pub mod player;
pub mod ports;
pub mod recorder;
pub mod relay;
pub mod tone;
pub mod wav;
