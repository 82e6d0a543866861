//! Events the clock fires rather than a person: a certificate whose expiry date has passed
//! without a new certification decision expires (`expire`, "by the clock").

use chrono::{DateTime, Utc};
use entities::domain::CertificateStatus;
use entities::domain::deadline::DeadlineKind;
use entities::domain::lifecycle::EngagementCommand;
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::EngagementState;
use entities::domain::text::Narrative;
use entities::orm::{certificate, deadline, engagement, notification, prelude::*};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Engine;
use crate::caller::Caller;
use crate::error::EngineError;
use crate::lifecycle::TransitionRequest;

/// Why the history says a certificate expired.
const EXPIRY_REASON: &str = "the certificate's expiry date passed without a new certification decision";

/// Expires every active certificate whose expiry date is before `now`'s day, in the states that
/// allow `expire` (certified, recertification, a renewal's certification_decision), one
/// transaction per engagement, and returns the engagements expired. An engagement whose expiry
/// escalation is still waiting to be sent is left for a later tick: expiring cancels the
/// deadline's unsent emails, and that one must go out. Another worker, or a person, firing an
/// event on the same engagement meanwhile is not an error: the engagement is skipped.
pub async fn expire_lapsed_certificates(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let today = now.date_naive();
    let lapsed = Query::select()
        .column(certificate::Column::EngagementId)
        .from(Certificate)
        .and_where(certificate::Column::Status.eq(CertificateStatus::Active))
        .and_where(certificate::Column::ExpiresOn.lt(today))
        .to_owned();
    let escalation_unsent = Query::select()
        .column((Deadline, deadline::Column::EngagementId))
        .from(Deadline)
        .inner_join(
            Notification,
            Expr::col((Notification, notification::Column::DeadlineId)).equals((Deadline, deadline::Column::Id)),
        )
        .and_where(deadline::Column::Kind.eq(DeadlineKind::CertificateExpiry))
        .and_where(notification::Column::Status.is_in([NotificationStatus::Pending, NotificationStatus::Sending]))
        .to_owned();
    let due: Vec<Uuid> = Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .filter(engagement::Column::State.is_in([
            EngagementState::Certified,
            EngagementState::Recertification,
            EngagementState::CertificationDecision,
        ]))
        .filter(engagement::Column::Id.in_subquery(lapsed))
        .filter(engagement::Column::Id.not_in_subquery(escalation_unsent))
        .order_by_asc(engagement::Column::Id)
        .into_tuple()
        .all(&engine.db)
        .await?;
    let clock = Caller::clock();
    let request = TransitionRequest {
        command: EngagementCommand::Expire,
        audit_id: None,
        gaps: Vec::new(),
        reason: Narrative::parse(EXPIRY_REASON).ok(),
        evidence: Vec::new(),
        expected_version: None,
    };
    let mut expired = Vec::new();
    for id in due {
        match engine.fire(&clock, id, &request, None).await {
            Ok((write, _)) => {
                write.commit(None).await?;
                tracing::info!(engagement_id = %id, "certificate expired by the clock");
                expired.push(id);
            }
            // Decided, withdrawn or expired by someone else between the query and the lock.
            Err(EngineError::Transition(refusal)) => {
                tracing::info!(engagement_id = %id, %refusal, "not expired: the engagement changed meanwhile");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(expired)
}
