//! The states of an engagement, the events that move it, and the table of which event is allowed where.

use sea_orm::Iterable;

vocabulary! {
    /// Where an engagement stands in its certification lifecycle.
    pub enum EngagementState {
        /// Proposals from certification bodies are compared; one is selected and the engagement letter signed.
        CbSelection,
        /// Optional gap assessment.
        PreAudit,
        /// Documentation review; repeated until the organization is ready.
        Stage1,
        /// The certification audit.
        Stage2,
        /// The corrective action plan for the nonconformities found.
        CorrectiveActions,
        /// An independent panel decides.
        CertificationDecision,
        /// A certificate is active.
        Certified,
        /// A surveillance audit (year 1 or 2) is under way.
        Surveillance,
        /// A recertification audit is under way.
        Recertification,
        /// The certificate is temporarily invalid.
        Suspended,
        /// The certificate was withdrawn (terminal).
        Withdrawn,
        /// The certificate expired (restorable within the policy time).
        Expired,
        /// The client ended the engagement (terminal).
        Cancelled,
    }
}

vocabulary! {
    /// The events that move an engagement from one state to another.
    pub enum EngagementEvent {
        /// Sign the engagement letter with the selected certification body.
        SignEngagementLetter,
        /// Change the scope to certify before the certification decision (recorded with the scope
        /// it replaces); after certification the scope moves only by `reduce_scope`.
        ChangeScope,
        /// The pre-audit (gap assessment) is done.
        CompletePreAudit,
        /// Record the stage 1 outcome: ready (to stage 2) or not ready (stage 1 again).
        RecordStage1Outcome,
        /// Stage 1 must be repeated before stage 2 (e.g. its result is no longer valid).
        RepeatStage1,
        /// The stage 2 audit is done: to corrective actions when it found nonconformities, else to the decision.
        CompleteStage2,
        /// Every major NC is verified and every minor NC plan accepted: ask for the decision.
        RequestDecision,
        /// Six months passed without every major NC verified: another stage 2 is required.
        RequireNewStage2,
        /// The decision panel grants certification: the certificate is issued.
        GrantCertification,
        /// The decision panel refuses certification: back to stage 2, or the engagement closes.
        RefuseCertification,
        /// A surveillance audit (year 1 or 2) starts.
        StartSurveillance,
        /// The surveillance audit is done.
        CompleteSurveillance,
        /// The recertification audit starts (year 3, before expiry).
        StartRecertification,
        /// The recertification audit is done: to the decision.
        CompleteRecertification,
        /// Suspend the certificate.
        Suspend,
        /// Restore a suspended certificate.
        Restore,
        /// Withdraw the certificate.
        Withdraw,
        /// Narrow the certified scope (ISO/IEC 17021-1 9.6.5): the certificate keeps its number and
        /// records the amendment; a suspended certificate is active again on the narrower scope.
        ReduceScope,
        /// Amend what the certificate states to the organization's and the body's records as they
        /// stand now (a rename after certification), recorded with what it stated before.
        AmendCertificate,
        /// The certificate's expiry date passed without a new decision.
        Expire,
        /// Restore certification within six months of expiry, once the recertification activities are done.
        RestoreAfterExpiry,
        /// Past the restoration window, certify anew from a stage 2 (ISO/IEC 17021-1 9.6.3.2.5),
        /// keeping the engagement's history.
        RestartAtStage2,
        /// The client ends the engagement.
        Cancel,
    }
}

use EngagementEvent as E;
use EngagementState as S;

/// Every allowed (state, event) pair and the states the event may lead to from there.
/// Which of the targets is taken depends on the event's facts (see `lifecycle::decide`).
pub const TRANSITIONS: &[(EngagementState, EngagementEvent, &[EngagementState])] = &[
    (S::CbSelection, E::SignEngagementLetter, &[S::PreAudit, S::Stage1]),
    (S::CbSelection, E::Cancel, &[S::Cancelled]),
    (S::PreAudit, E::CompletePreAudit, &[S::Stage1]),
    (S::PreAudit, E::ChangeScope, &[S::PreAudit]),
    (S::Stage1, E::ChangeScope, &[S::Stage1]),
    (S::Stage2, E::ChangeScope, &[S::Stage2]),
    (S::CorrectiveActions, E::ChangeScope, &[S::CorrectiveActions]),
    (S::CertificationDecision, E::ChangeScope, &[S::CertificationDecision]),
    (S::PreAudit, E::Cancel, &[S::Cancelled]),
    (S::Stage1, E::RecordStage1Outcome, &[S::Stage2, S::Stage1]),
    (S::Stage1, E::Cancel, &[S::Cancelled]),
    (S::Stage2, E::CompleteStage2, &[S::CorrectiveActions, S::CertificationDecision]),
    (S::Stage2, E::RepeatStage1, &[S::Stage1]),
    (S::Stage2, E::Cancel, &[S::Cancelled]),
    // A stage 2 that renews a certificate (after a refused renewal) holds an active certificate:
    // the body can still suspend or withdraw it, and the clock expires it.
    (S::Stage2, E::Suspend, &[S::Suspended]),
    (S::Stage2, E::Withdraw, &[S::Withdrawn]),
    (S::Stage2, E::Expire, &[S::Expired]),
    (S::CorrectiveActions, E::RequestDecision, &[S::CertificationDecision]),
    (S::CorrectiveActions, E::RequireNewStage2, &[S::Stage2]),
    (S::CorrectiveActions, E::Cancel, &[S::Cancelled]),
    (S::CorrectiveActions, E::Expire, &[S::Expired]),
    (S::CertificationDecision, E::GrantCertification, &[S::Certified]),
    (S::CertificationDecision, E::RefuseCertification, &[S::Stage2, S::Cancelled]),
    (S::CertificationDecision, E::Cancel, &[S::Cancelled]),
    (S::CertificationDecision, E::Expire, &[S::Expired]),
    (S::Certified, E::StartSurveillance, &[S::Surveillance]),
    (S::Certified, E::StartRecertification, &[S::Recertification]),
    (S::Certified, E::Suspend, &[S::Suspended]),
    (S::Certified, E::Withdraw, &[S::Withdrawn]),
    (S::Certified, E::Expire, &[S::Expired]),
    (S::Surveillance, E::CompleteSurveillance, &[S::Certified]),
    (S::Surveillance, E::Suspend, &[S::Suspended]),
    (S::Surveillance, E::Expire, &[S::Expired]),
    (S::Recertification, E::CompleteRecertification, &[S::CertificationDecision]),
    (S::Recertification, E::Suspend, &[S::Suspended]),
    (S::Recertification, E::Expire, &[S::Expired]),
    (S::Certified, E::ReduceScope, &[S::Certified]),
    (S::Suspended, E::ReduceScope, &[S::Certified]),
    (S::Certified, E::AmendCertificate, &[S::Certified]),
    (S::Suspended, E::AmendCertificate, &[S::Suspended]),
    (S::Suspended, E::Restore, &[S::Certified]),
    (S::Suspended, E::Withdraw, &[S::Withdrawn]),
    (S::Suspended, E::Expire, &[S::Expired]),
    (S::Expired, E::RestoreAfterExpiry, &[S::CertificationDecision]),
    (S::Expired, E::RestartAtStage2, &[S::Stage2]),
];

impl EngagementState {
    /// The events this state allows, in the order of the lifecycle.
    pub fn allowed_events(self) -> Vec<EngagementEvent> {
        TRANSITIONS.iter().filter(|(from, _, _)| *from == self).map(|(_, event, _)| *event).collect()
    }

    /// The states `event` may lead to from here, or `None` when this state does not allow it.
    pub fn targets(self, event: EngagementEvent) -> Option<&'static [EngagementState]> {
        TRANSITIONS.iter().find(|(from, e, _)| *from == self && *e == event).map(|(_, _, to)| *to)
    }

    /// No event leaves this state.
    pub fn is_terminal(self) -> bool {
        self.allowed_events().is_empty()
    }

    /// Every state, in lifecycle order.
    pub fn all() -> impl Iterator<Item = EngagementState> {
        Self::iter()
    }
}

impl EngagementEvent {
    /// Every event, in lifecycle order.
    pub fn all() -> impl Iterator<Item = EngagementEvent> {
        Self::iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_but_withdrawn_and_cancelled_allows_some_event() {
        for state in EngagementState::all() {
            let terminal = matches!(state, S::Withdrawn | S::Cancelled);
            assert_eq!(state.is_terminal(), terminal, "{state}");
        }
    }

    #[test]
    fn every_event_is_allowed_somewhere_and_every_state_is_reachable() {
        for event in EngagementEvent::all() {
            assert!(TRANSITIONS.iter().any(|(_, e, _)| *e == event), "{event} is never allowed");
        }
        for state in EngagementState::all().filter(|s| *s != S::CbSelection) {
            assert!(TRANSITIONS.iter().any(|(_, _, to)| to.contains(&state)), "{state} is unreachable");
        }
    }

    #[test]
    fn cancel_is_allowed_in_every_state_before_certified_and_nowhere_else() {
        let before_certified =
            [S::CbSelection, S::PreAudit, S::Stage1, S::Stage2, S::CorrectiveActions, S::CertificationDecision];
        for state in EngagementState::all() {
            assert_eq!(state.targets(E::Cancel).is_some(), before_certified.contains(&state), "{state}");
        }
    }

    #[test]
    fn each_state_event_pair_appears_at_most_once() {
        for (i, (from, event, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                !TRANSITIONS[i + 1..].iter().any(|(f, e, _)| f == from && e == event),
                "({from}, {event}) is listed twice"
            );
        }
    }

    #[test]
    fn states_and_events_spell_in_snake_case() {
        assert_eq!(S::CbSelection.to_string(), "cb_selection");
        assert_eq!("corrective_actions".parse::<S>().unwrap(), S::CorrectiveActions);
        assert_eq!(E::RestoreAfterExpiry.to_string(), "restore_after_expiry");
        assert_eq!(
            serde_json::to_value(S::CertificationDecision).unwrap(),
            serde_json::json!("certification_decision")
        );
    }
}
