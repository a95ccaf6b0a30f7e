//! Phone numbers, normalized to E.164 with libphonenumber's metadata.

pub mod area_codes;

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid phone number (use E.164, e.g. +14155550123)")]
pub struct InvalidPhoneNumber(pub String);

impl PhoneNumber {
    /// Parses international numbers, and national US/Canada numbers without a `+`.
    pub fn parse(raw: &str) -> Result<Self, InvalidPhoneNumber> {
        let default_region = if raw.trim_start().starts_with('+') {
            None
        } else {
            Some(phonenumber::country::Id::US)
        };
        let parsed = phonenumber::parse(default_region, raw).map_err(|_| InvalidPhoneNumber(raw.to_owned()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(InvalidPhoneNumber(raw.to_owned()));
        }
        Ok(Self(parsed.format().mode(phonenumber::Mode::E164).to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The national significant number, without the country code, as
    /// libphonenumber's metadata splits it (`+14155550123` → `4155550123`):
    /// how CRMs hold numbers typed in national form.
    pub fn national_number(&self) -> String {
        phonenumber::parse(None, &self.0)
            .map(|parsed| parsed.national().to_string())
            .unwrap_or_default()
    }

    /// The North American area code (NPA), for local-presence caller ids.
    pub fn area_code(&self) -> Option<&str> {
        self.0.strip_prefix("+1").map(|national| &national[..3])
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidPhoneNumber;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_e164_and_keeps_the_area_code() {
        let n = PhoneNumber::parse("(415) 555-2671").unwrap();
        assert_eq!(n.as_str(), "+14155552671");
        assert_eq!(n.area_code(), Some("415"));
        assert_eq!(
            PhoneNumber::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(PhoneNumber::parse("+442079460958").unwrap().area_code(), None);
        for bad in ["", "12", "+1 555", "not a number", "+99912345678"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
    }
}
