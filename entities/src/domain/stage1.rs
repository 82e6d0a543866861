//! Stage 1 readiness: the required documents and a complete Statement of Applicability.

use serde::Serialize;

use super::RequiredDocument;
use super::soa::SoaReport;
use sea_orm::Iterable;

/// What stage 1 found present and missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stage1Readiness {
    /// Every required document is registered and the SoA is complete.
    pub ready: bool,
    /// Required documents not yet registered.
    pub missing_documents: Vec<RequiredDocument>,
    /// The Statement of Applicability check.
    pub statement_of_applicability: SoaReport,
}

impl Stage1Readiness {
    /// Readiness given the documents registered and the SoA check.
    pub fn assess(registered: &[RequiredDocument], soa: SoaReport) -> Self {
        let missing_documents: Vec<RequiredDocument> =
            RequiredDocument::iter().filter(|d| !registered.contains(d)).collect();
        Self { ready: missing_documents.is_empty() && soa.complete, missing_documents, statement_of_applicability: soa }
    }

    /// One line per gap, for a refusal's detail.
    pub fn gaps(&self) -> Vec<String> {
        let soa = &self.statement_of_applicability;
        let mut gaps: Vec<String> =
            self.missing_documents.iter().map(|d| format!("required document missing: {d}")).collect();
        if !soa.missing_controls.is_empty() {
            gaps.push(format!(
                "statement of applicability does not list {} Annex A control(s): {}",
                soa.missing_controls.len(),
                soa.missing_controls.join(", ")
            ));
        }
        if !soa.unjustified_exclusions.is_empty() {
            gaps.push(format!("exclusions without justification: {}", soa.unjustified_exclusions.join(", ")));
        }
        if !soa.unknown_controls.is_empty() {
            gaps.push(format!("not Annex A (2022) controls: {}", soa.unknown_controls.join(", ")));
        }
        if !soa.duplicate_controls.is_empty() {
            gaps.push(format!("controls listed twice: {}", soa.duplicate_controls.join(", ")));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_soa() -> SoaReport {
        SoaReport { complete: true, controls_listed: 93, ..SoaReport::default() }
    }

    #[test]
    fn ready_needs_all_seven_documents_and_a_complete_soa() {
        let all: Vec<RequiredDocument> = RequiredDocument::iter().collect();
        assert_eq!(all.len(), 7);
        let readiness = Stage1Readiness::assess(&all, complete_soa());
        assert!(readiness.ready);
        assert!(readiness.gaps().is_empty());

        let incomplete_soa = SoaReport { missing_controls: vec!["5.1".into()], ..SoaReport::default() };
        let readiness = Stage1Readiness::assess(&all, incomplete_soa);
        assert!(!readiness.ready);
        assert_eq!(readiness.gaps(), vec!["statement of applicability does not list 1 Annex A control(s): 5.1"]);
    }

    #[test]
    fn each_missing_document_is_named() {
        let some = [RequiredDocument::ScopeStatement, RequiredDocument::RiskAssessment];
        let readiness = Stage1Readiness::assess(&some, complete_soa());
        assert!(!readiness.ready);
        assert_eq!(readiness.missing_documents.len(), 5);
        assert!(readiness.gaps().contains(&"required document missing: management_review".to_owned()));
    }
}
