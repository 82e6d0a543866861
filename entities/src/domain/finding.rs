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

/// What a follow-up needs to know: the finding's status and audit, and the audit it is followed
/// up at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpFacts {
    /// The finding's status.
    pub status: super::FindingStatus,
    /// The audit that found it.
    pub found_at: uuid::Uuid,
    /// The audit it is followed up at.
    pub followed_up_at: uuid::Uuid,
    /// That audit's kind.
    pub audit_kind: super::AuditKind,
}

/// Why a follow-up was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpRefusal {
    /// Only a minor NC whose plan the body accepted awaits a follow-up.
    #[error("this finding does not await a follow-up: only a minor NC whose plan was accepted does")]
    NotAwaitingFollowUp,
    /// A plan is followed up at a later audit, not the one that found it.
    #[error("a finding is followed up at a later audit, not at the audit that found it")]
    SameAudit,
    /// A certifying audit (stage 2, surveillance, recertification) follows minors up.
    #[error("a {0} audit does not follow up nonconformities: name a stage 2, surveillance or recertification audit")]
    NotACertifyingAudit(super::AuditKind),
}

impl FollowUpRefusal {
    /// A stable slug for the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAwaitingFollowUp => "finding-not-awaiting-follow-up",
            Self::SameAudit | Self::NotACertifyingAudit(_) => "validation-failed",
        }
    }
}

/// Decides a follow-up of an accepted minor's plan at a later certifying audit: the finding
/// closes either way; `not_effective` also asks for a new nonconformity on that audit. Returns
/// whether a new nonconformity is to be recorded.
pub fn follow_up(facts: &FollowUpFacts, outcome: super::FollowUpOutcome) -> Result<bool, FollowUpRefusal> {
    if facts.status != super::FindingStatus::FollowUp {
        return Err(FollowUpRefusal::NotAwaitingFollowUp);
    }
    if facts.found_at == facts.followed_up_at {
        return Err(FollowUpRefusal::SameAudit);
    }
    if !facts.audit_kind.records_nonconformities() {
        return Err(FollowUpRefusal::NotACertifyingAudit(facts.audit_kind));
    }
    Ok(outcome == super::FollowUpOutcome::NotEffective)
}

#[cfg(test)]
mod follow_up_tests {
    use super::*;
    use crate::domain::{AuditKind, FindingStatus, FollowUpOutcome};

    fn facts() -> FollowUpFacts {
        FollowUpFacts {
            status: FindingStatus::FollowUp,
            found_at: uuid::Uuid::from_u128(1),
            followed_up_at: uuid::Uuid::from_u128(2),
            audit_kind: AuditKind::Surveillance,
        }
    }

    #[test]
    fn an_accepted_minor_is_closed_at_the_next_audit_and_not_effective_opens_a_new_nc() {
        assert_eq!(follow_up(&facts(), FollowUpOutcome::Effective), Ok(false));
        assert_eq!(follow_up(&facts(), FollowUpOutcome::NotEffective), Ok(true));
    }

    #[test]
    fn only_a_minor_awaiting_follow_up_at_a_later_certifying_audit_is_followed_up() {
        for status in [FindingStatus::Open, FindingStatus::Closed] {
            let refused = follow_up(&FollowUpFacts { status, ..facts() }, FollowUpOutcome::Effective);
            assert_eq!(refused, Err(FollowUpRefusal::NotAwaitingFollowUp), "{status}");
        }
        let same = FollowUpFacts { followed_up_at: uuid::Uuid::from_u128(1), ..facts() };
        assert_eq!(follow_up(&same, FollowUpOutcome::Effective), Err(FollowUpRefusal::SameAudit));
        let stage1 = FollowUpFacts { audit_kind: AuditKind::Stage1, ..facts() };
        assert_eq!(
            follow_up(&stage1, FollowUpOutcome::Effective),
            Err(FollowUpRefusal::NotACertifyingAudit(AuditKind::Stage1))
        );
        assert_eq!(FollowUpRefusal::NotAwaitingFollowUp.code(), "finding-not-awaiting-follow-up");
    }
}
