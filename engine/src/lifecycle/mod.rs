//! A lifecycle event, fired: gather the engagement's facts, let `entities` decide, and write
//! everything the decision says in the write's transaction.

mod apply;
mod certificate;
mod standing;

use entities::domain::lifecycle::{EngagementCommand, decide};
use entities::domain::text::{EmailAddress, Narrative};
use entities::orm::engagement;
use uuid::Uuid;

pub use standing::{accredited_on, count_open_findings, find_certificate, stage1_readiness};

use crate::access::Action;
use crate::caller::Caller;
use crate::deadlines::OpenDeadlines;
use crate::error::EngineError;
use crate::idempotency::Claim;
use crate::store::check_version;
use crate::{Engine, Write};
use apply::apply;
use standing::{facts_queries, load_facts};

/// A parsed lifecycle request.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    /// What to do.
    pub command: EngagementCommand,
    /// The audit the event completes, when it completes one.
    pub audit_id: Option<Uuid>,
    /// Gaps found by a stage 1 that was not ready.
    pub gaps: Vec<String>,
    /// The reason given (required by events that end, refuse, suspend, restore or repeat).
    pub reason: Option<Narrative>,
    /// References to the evidence relied on.
    pub evidence: Vec<String>,
    /// The engagement version the caller last read (`If-Match` or `version`): another is a 412.
    pub expected_version: Option<i32>,
    /// The scope to certify, with the engagement letter (default: the organization's ISMS scope
    /// as it stands then).
    pub scope: Option<String>,
}

impl TransitionRequest {
    /// The "why" the history keeps: the reason, with what the decision relied on besides it (a
    /// confirmation that an old stage 1 result is still valid; a suspension's cause).
    pub(crate) fn history_reason(&self) -> Option<String> {
        let reason = self.reason.as_ref().map(ToString::to_string);
        let noted = match &self.command {
            EngagementCommand::CompleteStage2 { stage1_still_valid: Some(confirmation) } => {
                format!("stage 1 result still valid: {confirmation}")
            }
            EngagementCommand::Suspend { cause } => format!("cause: {cause}"),
            EngagementCommand::ReduceScope { scope } | EngagementCommand::ChangeScope { scope } => {
                format!("scope now: {scope}")
            }
            _ => return reason,
        };
        Some(match reason {
            Some(reason) => format!("{reason}\n{noted}"),
            None => noted,
        })
    }
}

/// What a transition leaves: the engagement as it now is, and its open deadlines.
#[derive(Debug)]
pub struct Transitioned {
    /// The engagement after the transition.
    pub engagement: engagement::Model,
    /// Its open deadlines after the transition.
    pub open_deadlines: OpenDeadlines,
}

impl Engine {
    /// Fires `request` on engagement `id` as `caller` through the one write path (404 unless it
    /// sees the engagement, 403 unless it may fire the event, 412 when the engagement is not at
    /// the version the caller expected): loads the facts, lets the domain decide, and writes what
    /// the decision says. The caller commits the returned write.
    pub async fn fire(
        &self,
        caller: &Caller,
        id: Uuid,
        request: &TransitionRequest,
        claim: Option<Claim>,
    ) -> Result<(Write, Transitioned), EngineError> {
        let action = Action::Fire(request.command.event());
        // The engagement locked and its facts read under the lock, together.
        let reads = facts_queries(sea_orm::ConnectionTrait::get_database_backend(&self.writer), id, request);
        let (mut write, engagement, answers) =
            self.begin_on_engagement_reading(caller, id, action, claim, reads).await?;
        // Checked under the lock: of two writers that read the same version, one wins.
        check_version(request.expected_version, engagement.version)?;
        let (facts, mut open_deadlines, policy) =
            load_facts(write.txn(), &engagement, answers, request, write.now()).await?;
        write.reckon_in(policy.time_zone);
        let today = write.today();
        let outcome = decide(&facts, &request.command, request.reason.as_ref(), today, &policy)?;
        tracing::info!(engagement_id = %id, event = %outcome.event, from = %outcome.from, to = %outcome.to, "transition");
        let engagement =
            apply(&mut write, engagement, &mut open_deadlines, &outcome, request, &caller.subject, &policy).await?;
        Ok((write, Transitioned { engagement, open_deadlines }))
    }
}

pub(crate) fn decision_maker(command: &EngagementCommand) -> Option<&EmailAddress> {
    match command {
        EngagementCommand::GrantCertification { decision_maker }
        | EngagementCommand::RefuseCertification { decision_maker, .. } => Some(decision_maker),
        _ => None,
    }
}
