//! `SendNotification { notification_id }`: deliver one reminder or escalation email.

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delivery::{SharedDeliveryContext, deliver};

/// Carries the id only: the handler reloads everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendNotification {
    /// The notification to deliver.
    pub notification_id: Uuid,
}

/// Delivers the notification. A refused email is recorded (retry or failed) and the job ends
/// well; only a database failure fails the job, which apalis then retries.
pub async fn send_notification(job: SendNotification, context: Data<SharedDeliveryContext>) -> Result<(), BoxDynError> {
    match deliver(&context, job.notification_id).await {
        Ok(outcome) => {
            tracing::debug!(notification_id = %job.notification_id, ?outcome, "delivery job done");
            Ok(())
        }
        Err(error) => {
            tracing::error!(notification_id = %job.notification_id, error = ?error, "delivery job failed");
            Err(error.into())
        }
    }
}
