//! TEMPORARY stand-in, replaced by the contract engine from the billing work.
use serde::Serialize;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Plan { Sd100, Standard }
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self { Plan::Sd100 => "SD100", Plan::Standard => "Standard" })
    }
}
impl std::str::FromStr for Plan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() { "sd100" => Ok(Plan::Sd100), "standard" => Ok(Plan::Standard), _ => Err(s.into()) }
    }
}
