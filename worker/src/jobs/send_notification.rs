//! `SendNotification { notification_id }`: deliver one reminder or escalation email.

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delivery::{DeliveryOutcome, SharedDeliveryContext, deliver};

/// Carries the id only: the handler reloads everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendNotification {
    /// The notification to deliver.
    pub notification_id: Uuid,
}

/// Delivers the notification, in a span of its own named by the notification's id. A refused
/// email is recorded (retry or failed) and the job ends well; only a database failure fails the
/// job, which apalis then retries.
#[tracing::instrument(name = "email_delivery", skip_all, fields(notification_id = %job.notification_id))]
pub async fn send_notification(job: SendNotification, context: Data<SharedDeliveryContext>) -> Result<(), BoxDynError> {
    let outcome = deliver(&context, job.notification_id).await;
    metrics::counter!("certflow_emails_total", "outcome" => outcome_label(outcome.as_ref().ok())).increment(1);
    match outcome {
        Ok(outcome) => {
            tracing::debug!(?outcome, "delivery job done");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = ?error, "delivery job failed");
            Err(error.into())
        }
    }
}

/// The `outcome` label of `certflow_emails_total`; `None` is a job that failed on the database.
fn outcome_label(outcome: Option<&DeliveryOutcome>) -> &'static str {
    match outcome {
        Some(DeliveryOutcome::Sent) => "sent",
        Some(DeliveryOutcome::WillRetry) => "retried",
        Some(DeliveryOutcome::Failed) => "failed",
        Some(DeliveryOutcome::Cancelled) => "cancelled",
        Some(DeliveryOutcome::NothingToDo) => "nothing_to_do",
        None => "error",
    }
}
