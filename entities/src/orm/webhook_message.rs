//! `@generated`-style sea-orm entity: one event for one endpoint, delivered with retries.

use sea_orm::entity::prelude::*;

use crate::domain::webhooks::{WebhookAttemptOutcome, WebhookEventType, WebhookMessageStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    /// Its `webhook-id` is `msg_` and this id's 32 hex digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub engagement_id: Uuid,
    pub event_type: WebhookEventType,
    pub status: WebhookMessageStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub last_response_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// How long its first attempt took, when that attempt delivered it: such an attempt is kept
    /// here rather than in `webhook_attempts` (see [`Model::first_attempt`]). Cleared when the
    /// message is replayed (the attempt then gets its row).
    pub first_attempt_latency_ms: Option<i32>,
    /// The start of that attempt's answer (at most 1,024 bytes).
    pub first_attempt_excerpt: Option<String>,
}

impl Model {
    /// The first attempt this message keeps in its own row, as the delivery log lists it: the
    /// attempt that delivered the message at its first try, with the message's id, ended when the
    /// message was delivered (a replay gives it a row, under the same id). `None` when its
    /// attempts have rows of their own.
    pub fn first_attempt(&self) -> Option<super::webhook_attempt::Model> {
        let latency_ms = self.first_attempt_latency_ms?;
        Some(super::webhook_attempt::Model {
            id: self.id,
            message_id: self.id,
            endpoint_id: self.endpoint_id,
            attempt: 1,
            attempted_at: self.delivered_at?,
            outcome: WebhookAttemptOutcome::Delivered,
            response_status: self.last_response_status,
            latency_ms,
            response_excerpt: self.first_attempt_excerpt.clone(),
            error: None,
            next_attempt_at: None,
        })
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn delivered_at_once() -> Model {
        let made = Utc.with_ymd_and_hms(2026, 12, 4, 14, 0, 0).unwrap();
        Model {
            id: Uuid::from_u128(7),
            endpoint_id: Uuid::from_u128(2),
            event_id: Uuid::from_u128(3),
            engagement_id: Uuid::from_u128(4),
            event_type: WebhookEventType::FindingRecorded,
            status: WebhookMessageStatus::Delivered,
            attempts: 1,
            next_attempt_at: made,
            lease_until: None,
            last_response_status: Some(204),
            last_error: None,
            delivered_at: Some(made + chrono::Duration::milliseconds(12)),
            created_at: made,
            updated_at: made + chrono::Duration::milliseconds(12),
            first_attempt_latency_ms: Some(9),
            first_attempt_excerpt: Some("ok".into()),
        }
    }

    #[test]
    fn a_message_delivered_at_its_first_attempt_lists_that_attempt_as_a_delivery_ended_when_it_was_delivered() {
        let message = delivered_at_once();
        let attempt = message.first_attempt().expect("kept in the message");
        assert_eq!(attempt.id, message.id);
        assert_eq!(attempt.message_id, message.id);
        assert_eq!(attempt.endpoint_id, message.endpoint_id);
        assert_eq!(attempt.attempt, 1);
        assert_eq!(Some(attempt.attempted_at), message.delivered_at);
        assert_eq!(attempt.outcome, WebhookAttemptOutcome::Delivered);
        assert_eq!(attempt.response_status, Some(204));
        assert_eq!(attempt.latency_ms, 9);
        assert_eq!(attempt.response_excerpt.as_deref(), Some("ok"));
        assert_eq!((attempt.error, attempt.next_attempt_at), (None, None));
    }

    #[test]
    fn a_message_whose_attempts_have_rows_of_their_own_keeps_none() {
        let message = Model { first_attempt_latency_ms: None, first_attempt_excerpt: None, ..delivered_at_once() };
        assert_eq!(message.first_attempt(), None);
    }
}
