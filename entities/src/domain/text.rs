//! Parsed text values: free text with bounds, and email addresses.

use std::fmt;

/// Why a text value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty once trimmed.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains a control character (e.g. a line break where none is allowed).
    #[error("must not contain control characters")]
    ControlCharacter,
    /// Not an email address.
    #[error("is not a valid email address")]
    InvalidEmail,
}

/// Non-empty, trimmed text of at most `MAX` characters; line breaks and tabs are kept, other
/// control characters are refused.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedText<const MAX: usize>(String);

/// A short name or label: one line, at most 200 characters.
pub type Name = BoundedText<200>;
/// A reason, description or justification: at most 4,000 characters.
pub type Narrative = BoundedText<4000>;

impl<const MAX: usize> BoundedText<MAX> {
    /// Parses and trims `raw`.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TextError::Empty);
        }
        if trimmed.chars().count() > MAX {
            return Err(TextError::TooLong { max: MAX });
        }
        if trimmed.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(TextError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Parses and trims `raw`, which must be one line (a name, a label): no control character at
    /// all, so it can go into an email header unchanged.
    pub fn parse_line(raw: &str) -> Result<Self, TextError> {
        let text = Self::parse(raw)?;
        if text.0.chars().any(char::is_control) {
            return Err(TextError::ControlCharacter);
        }
        Ok(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl<const MAX: usize> AsRef<str> for BoundedText<MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Display for BoundedText<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> fmt::Debug for BoundedText<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An email address (RFC 5321 form), stored lower-cased so the same person compares equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses `raw`; refuses anything a mail header could be injected through.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TextError::Empty);
        }
        if trimmed.len() > 254 {
            return Err(TextError::TooLong { max: 254 });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(TextError::ControlCharacter);
        }
        let is_plain_address = !trimmed.contains(['<', '>', ' ', ',', ';', '"']);
        if !is_plain_address || !email_address::EmailAddress::is_valid(trimmed) {
            return Err(TextError::InvalidEmail);
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claims::{assert_err_eq, assert_ok};

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert_err_eq!(Name::parse("   "), TextError::Empty);
        assert_err_eq!(Name::parse(&"x".repeat(201)), TextError::TooLong { max: 200 });
        assert_ok!(Name::parse(&"é".repeat(200)));
        assert_err_eq!(Name::parse("a\u{0}b"), TextError::ControlCharacter);
        assert_ok!(Narrative::parse("line one\nline two"));
    }

    #[test]
    fn a_line_refuses_every_line_break_a_mail_header_could_be_injected_through() {
        assert_eq!(Name::parse_line(" Acme Data Ltd ").unwrap().as_str(), "Acme Data Ltd");
        for bad in ["Acme\r\nBcc: eve@evil.test", "Acme\nLtd", "Acme\tLtd", "Acme\u{85}Ltd"] {
            assert_err_eq!(Name::parse_line(bad), TextError::ControlCharacter, "{bad:?}");
        }
    }

    #[test]
    fn email_addresses_are_validated_and_lower_cased() {
        assert_eq!(EmailAddress::parse(" Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in [
            "",
            "plain",
            "@example.com",
            "ana@",
            "ana@example.com\r\nBcc: eve@evil.test",
            "Ana <ana@example.com>",
            "a,b@example.com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
