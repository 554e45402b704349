//! Japanese telephone numbers, normalised to E.164 (`+81…`) for storage (issue #2 §4).
//!
//! Accepts the national form with trunk prefix (`0312345678`, `03-1234-5678`,
//! `(03) 1234-5678`, `090-1234-5678`, `0120-123-456`) and E.164 (`+81312345678`,
//! `+81-3-1234-5678`). National significant numbers in Japan are 9 digits (fixed lines,
//! 0120 free-dial) or 10 digits (mobile 070/080/090, IP 050, 0800 free-dial), i.e. 10 or 11
//! digits with the leading 0 (総務省 電気通信番号計画).

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty number")]
    Empty,
    #[error("{0:?}: only digits, '+', '-', spaces and parentheses are allowed")]
    BadCharacter(String),
    #[error("{0:?}: not a Japanese number (expected 0ABJ… or +81…)")]
    NotJapanese(String),
    #[error("{0:?}: a Japanese number has 10 or 11 digits in national form")]
    BadLength(String),
}

impl E164 {
    /// Parse any accepted spelling of a Japanese number.
    pub fn parse_jp(input: &str) -> Result<E164, NumberError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(NumberError::Empty);
        }
        let mut digits = String::with_capacity(trimmed.len());
        let mut plus = false;
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                '-' | ' ' | '(' | ')' | '.' => {}
                _ => return Err(NumberError::BadCharacter(trimmed.to_string())),
            }
        }
        let national_significant = if plus {
            match digits.strip_prefix("81") {
                // "+81 03…" is a common mistake; the trunk prefix never belongs in E.164.
                Some(rest) => rest.strip_prefix('0').unwrap_or(rest).to_string(),
                None => return Err(NumberError::NotJapanese(trimmed.to_string())),
            }
        } else {
            match digits.strip_prefix('0') {
                Some(rest) if !rest.starts_with('0') => rest.to_string(),
                _ => return Err(NumberError::NotJapanese(trimmed.to_string())),
            }
        };
        if !(9..=10).contains(&national_significant.len()) {
            return Err(NumberError::BadLength(trimmed.to_string()));
        }
        Ok(E164(format!("+81{national_significant}")))
    }

    /// The national form with trunk prefix, as carriers with `number_format = "national"` send it.
    pub fn national(&self) -> String {
        format!("0{}", &self.0[3..])
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = NumberError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        E164::parse_jp(&s)
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

impl std::str::FromStr for E164 {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        E164::parse_jp(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_spellings_the_issue_names() {
        for s in [
            "03-1234-5678",
            "0312345678",
            "+81312345678",
            "+81-3-1234-5678",
            "(03) 1234-5678",
            "+81 03 1234 5678",
        ] {
            assert_eq!(E164::parse_jp(s).expect(s).as_str(), "+81312345678", "{s}");
        }
        assert_eq!(
            E164::parse_jp("090-1234-5678").expect("mobile").as_str(),
            "+819012345678"
        );
        assert_eq!(
            E164::parse_jp("0120-123-456").expect("free").as_str(),
            "+81120123456"
        );
        assert_eq!(
            E164::parse_jp("0800-123-4567").expect("free").as_str(),
            "+818001234567"
        );
    }

    #[test]
    fn national_round_trip() {
        let n = E164::parse_jp("+81312345678").expect("ok");
        assert_eq!(n.national(), "0312345678");
    }

    #[test]
    fn refuses_what_is_not_a_japanese_number() {
        assert_eq!(E164::parse_jp(""), Err(NumberError::Empty));
        assert!(matches!(
            E164::parse_jp("03-1234-567x"),
            Err(NumberError::BadCharacter(_))
        ));
        assert!(matches!(
            E164::parse_jp("+1 212 555 0100"),
            Err(NumberError::NotJapanese(_))
        ));
        assert!(matches!(
            E164::parse_jp("1234"),
            Err(NumberError::NotJapanese(_))
        ));
        assert!(matches!(
            E164::parse_jp("0012345678"),
            Err(NumberError::NotJapanese(_))
        ));
        assert!(matches!(
            E164::parse_jp("031234567"),
            Err(NumberError::BadLength(_))
        ));
        assert!(matches!(
            E164::parse_jp("031234567890"),
            Err(NumberError::BadLength(_))
        ));
        assert!(matches!(
            E164::parse_jp("0+3"),
            Err(NumberError::BadCharacter(_))
        ));
    }
}
