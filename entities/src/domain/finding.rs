//! What a finding cites: a requirement of clauses 4–10 or an Annex A (2022) control.

use std::fmt;

use super::soa::is_annex_a_control;

/// A parsed citation: `6.1.2` (a clause of 4–10) or `A.8.24` (an Annex A control).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequirementReference {
    /// A clause of the management-system requirements, 4 to 10.
    Clause(String),
    /// An Annex A (2022) control, written `A.<control>`.
    AnnexAControl(String),
}

/// Why a citation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither a clause of 4–10 (e.g. 6.1.2) nor an Annex A 2022 control (e.g. A.8.24)")]
pub struct InvalidReference(pub String);

impl RequirementReference {
    /// Parses a citation.
    pub fn parse(raw: &str) -> Result<Self, InvalidReference> {
        let raw = raw.trim();
        let invalid = || InvalidReference(raw.to_owned());
        if let Some(control) = raw.strip_prefix("A.").or_else(|| raw.strip_prefix("a.")) {
            return if is_annex_a_control(control) {
                Ok(Self::AnnexAControl(control.to_owned()))
            } else {
                Err(invalid())
            };
        }
        let parts: Vec<&str> = raw.split('.').collect();
        let numeric = parts.iter().all(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric || parts.len() > 4 {
            return Err(invalid());
        }
        match parts[0].parse::<u8>() {
            Ok(4..=10) => Ok(Self::Clause(raw.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for RequirementReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clause(clause) => f.write_str(clause),
            Self::AnnexAControl(control) => write!(f, "A.{control}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_4_to_10_and_annex_a_controls_are_accepted() {
        for (raw, expected) in [
            ("4.3", RequirementReference::Clause("4.3".into())),
            ("6.1.2", RequirementReference::Clause("6.1.2".into())),
            ("10", RequirementReference::Clause("10".into())),
            ("A.8.24", RequirementReference::AnnexAControl("8.24".into())),
            (" A.5.1 ", RequirementReference::AnnexAControl("5.1".into())),
        ] {
            assert_eq!(RequirementReference::parse(raw), Ok(expected), "{raw}");
        }
        assert_eq!(RequirementReference::parse("A.8.24").unwrap().to_string(), "A.8.24");
    }

    #[test]
    fn other_citations_are_refused() {
        for raw in ["", "3.1", "11.2", "A.8.35", "A.9.1", "6..1", "6.1.a", "clause 6", "4.1.1.1.1"] {
            assert!(RequirementReference::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }
}
