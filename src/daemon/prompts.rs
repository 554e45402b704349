//! Announcements: WAV files in `media.prompts_dir`, one per situation, converted to G.711
//! frames once at start (issue #5 §2). Any common WAV format is accepted (see
//! [`crate::media::wav`]); the shipped defaults in `prompts/` are a generated Japanese voice.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::media::g711::{Law, FRAME_SAMPLES};
use crate::media::wav::Prompt as Wav;
use crate::sip::b2bua::Prompt;

pub type Frames = Arc<[[u8; FRAME_SAMPLES]]>;

/// Every situation, its file name, and the shipped default (built into the binary, so the
/// daemon answers properly out of the box; a file in `media.prompts_dir` replaces it).
pub const FILES: &[(Prompt, &str, &[u8])] = &[
    (
        Prompt::OutOfHours,
        "out_of_hours.wav",
        include_bytes!("../../prompts/out_of_hours.wav"),
    ),
    (
        Prompt::Suspended,
        "suspended.wav",
        include_bytes!("../../prompts/suspended.wav"),
    ),
    (
        Prompt::AllBusy,
        "all_busy.wav",
        include_bytes!("../../prompts/all_busy.wav"),
    ),
    (
        Prompt::PleaseWait,
        "please_wait.wav",
        include_bytes!("../../prompts/please_wait.wav"),
    ),
    (
        Prompt::Ringback,
        "ringback.wav",
        include_bytes!("../../prompts/ringback.wav"),
    ),
    (
        Prompt::LeaveMessage,
        "leave_message.wav",
        include_bytes!("../../prompts/leave_message.wav"),
    ),
];

/// Loaded prompts, both laws each.
#[derive(Debug, Default, Clone)]
pub struct Prompts {
    frames: HashMap<(Prompt, bool), Frames>,
}

impl Prompts {
    /// Loads every prompt: the file in `dir` if there is one, else the built-in default. A
    /// file that is there but unreadable or not a usable WAV is an error naming it (the
    /// daemon refuses to start rather than play the wrong thing).
    pub fn load(dir: &Path) -> Result<Prompts, String> {
        let mut frames = HashMap::new();
        let mut problems = Vec::new();
        for (prompt, file, default) in FILES {
            let path = dir.join(file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => Ok(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default.to_vec()),
                Err(e) => Err(e.to_string()),
            };
            let loaded = bytes.and_then(|b| Wav::from_wav(&b).map_err(|e| e.to_string()));
            match loaded {
                Ok(w) => {
                    frames.insert((*prompt, true), Frames::from(w.frames(Law::Pcmu)));
                    frames.insert((*prompt, false), Frames::from(w.frames(Law::Pcma)));
                }
                Err(e) => problems.push(format!("media.prompts_dir: {}: {e}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(Prompts { frames })
        } else {
            Err(problems.join("\n"))
        }
    }

    pub fn get(&self, prompt: Prompt, law: Law) -> Option<Frames> {
        self.frames.get(&(prompt, law == Law::Pcmu)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_prompts_load_and_last_a_few_seconds() {
        let p = Prompts::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/prompts"))).unwrap();
        for (prompt, _, _) in FILES {
            for law in [Law::Pcmu, Law::Pcma] {
                let n = p.get(*prompt, law).unwrap().len();
                assert!((100..1000).contains(&n), "{prompt:?}: {n} frames of 20 ms");
            }
        }
        // Missing files fall back to the built-in defaults; a broken one is refused.
        assert!(Prompts::load(Path::new("/nonexistent")).is_ok());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("suspended.wav"), b"not a wav").unwrap();
        let err = Prompts::load(dir.path()).unwrap_err();
        assert!(
            err.contains("suspended.wav") && err.contains("media.prompts_dir"),
            "{err}"
        );
    }
}
