//! The closed vocabularies of the domain: each is a Rust enum that is also its JSON and database spelling.

/// Declares an enum spelled in snake_case everywhere: JSON (serde), the OpenAPI schema, `Display` /
/// `FromStr` (strum) and a text column (sea-orm).
macro_rules! vocabulary {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            strum::Display, strum::EnumString, strum::IntoStaticStr,
            sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        #[sea_orm(rs_type = "String", db_type = "Text", rename_all = "snake_case")]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }
    };
}

vocabulary! {
    /// The version of ISO/IEC 27001 an organization certifies against.
    pub enum StandardVersion {
        /// ISO/IEC 27001:2013: history only (IAF MD 26).
        #[serde(rename = "2013")]
        #[strum(serialize = "2013")]
        #[sea_orm(string_value = "2013")]
        Iso27001_2013,
        /// ISO/IEC 27001:2022.
        #[serde(rename = "2022")]
        #[strum(serialize = "2022")]
        #[sea_orm(string_value = "2022")]
        Iso27001_2022,
    }
}

vocabulary! {
    /// The kind of an audit within an engagement.
    pub enum AuditKind {
        /// Optional gap assessment; never produces a certificate.
        PreAudit,
        /// Documentation review and readiness.
        Stage1,
        /// The full certification audit.
        Stage2,
        /// Annual surveillance audit (years 1 and 2).
        Surveillance,
        /// Recertification audit, at stage-2 depth.
        Recertification,
    }
}

impl AuditKind {
    /// Only a certifying audit (stage 2, surveillance, recertification) records nonconformities,
    /// and follows up earlier ones; a pre-audit or stage 1 lists gaps, which never block.
    pub fn records_nonconformities(self) -> bool {
        matches!(self, Self::Stage2 | Self::Surveillance | Self::Recertification)
    }
}

vocabulary! {
    /// The outcome of a stage 1 audit.
    pub enum Stage1Outcome {
        /// Ready for stage 2.
        Ready,
        /// Not ready: stage 1 is repeated.
        NotReady,
    }
}

vocabulary! {
    /// The grade of an audit finding.
    pub enum FindingGrade {
        /// Major nonconformity: a requirement not met; blocks certification.
        MajorNc,
        /// Minor nonconformity: a localized gap; needs an accepted plan.
        MinorNc,
        /// Opportunity for improvement: no action required.
        Ofi,
    }
}

vocabulary! {
    /// Where a finding stands.
    pub enum FindingStatus {
        /// Open: its corrective action is not yet accepted by the CB.
        Open,
        /// Closed: the CB verified its correction (a major), followed it up at a later audit (a
        /// minor), or it is an OFI, noted.
        Closed,
        /// A minor NC whose plan the CB accepted: to be verified at the next audit, which closes
        /// it as effective or not effective.
        FollowUp,
    }
}

vocabulary! {
    /// What the follow-up of an accepted minor NC's plan at a later audit found.
    pub enum FollowUpOutcome {
        /// The action was implemented and works: the finding closes.
        Effective,
        /// It was not implemented or does not work: the finding closes and a new nonconformity is
        /// recorded on the audit that followed it up.
        NotEffective,
    }
}

vocabulary! {
    /// The certification body's verification of a corrective action.
    pub enum VerificationStatus {
        /// Not yet verified.
        Pending,
        /// Accepted: for a major NC, the correction is verified; for a minor NC, the plan is accepted.
        Accepted,
        /// Rejected, with a reason: the client revises and resubmits.
        Rejected,
    }
}

vocabulary! {
    /// A proposal's standing in CB selection.
    pub enum ProposalStatus {
        /// Received, under comparison.
        Submitted,
        /// The chosen proposal.
        Selected,
        /// Another proposal was selected.
        NotSelected,
    }
}

vocabulary! {
    /// A certification decision.
    pub enum DecisionOutcome {
        /// Certification granted.
        Granted,
        /// Certification refused.
        Refused,
    }
}

vocabulary! {
    /// Certificate statuses, in the IAF CertSearch vocabulary.
    pub enum CertificateStatus {
        /// Valid.
        Active,
        /// Temporarily invalid.
        Suspended,
        /// Withdrawn by the certification body.
        Withdrawn,
        /// Expired without recertification.
        Expired,
        /// The client ended the engagement.
        Cancelled,
    }
}

vocabulary! {
    /// Why a certificate is suspended.
    pub enum SuspensionCause {
        /// Persistent or serious failure to meet requirements (e.g. an unresolved major NC).
        Failure,
        /// Surveillance or recertification audits not allowed at the required frequency.
        MissedAudit,
        /// The client asked for it.
        ClientRequest,
    }
}

vocabulary! {
    /// A document stage 1 requires.
    pub enum RequiredDocument {
        /// ISMS scope statement (clause 4.3).
        ScopeStatement,
        /// Information security policy (5.2).
        InformationSecurityPolicy,
        /// Risk assessment methodology and results (6.1.2, 8.2).
        RiskAssessment,
        /// Risk treatment plan (6.1.3, 8.3).
        RiskTreatmentPlan,
        /// Statement of Applicability (6.1.3 d).
        StatementOfApplicability,
        /// Evidence of internal audit (9.2).
        InternalAudit,
        /// Evidence of management review (9.3).
        ManagementReview,
    }
}
