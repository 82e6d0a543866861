//! Webhook endpoints, as their owners manage them: registered by an organization's or a
//! certification body's people (an admin for either), seen by their owner's side only, their
//! secret shown once, rotated with a day's overlap, and their failed messages replayed.

use chrono::{DateTime, Utc};
use entities::domain::webhooks::{
    EndpointOwner, WebhookEventType, WebhookMessageStatus, WebhookSecret, check_endpoint_url, rotation_overlap,
};
use entities::orm::{prelude::*, webhook_attempt, webhook_endpoint, webhook_message};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::access::{Action, Tenancy};
use crate::caller::Caller;
use crate::error::EngineError;
use crate::idempotency::Claim;
use crate::webhooks::rows::insert_attempts;
use crate::{Engine, Target, Write};

/// An endpoint as its owner registers or changes it.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    /// Where messages go.
    pub url: String,
    /// What it is for, in the owner's words.
    pub description: String,
    /// The event types it wants (empty: every type).
    pub event_types: Vec<WebhookEventType>,
    /// Whether it receives messages.
    pub enabled: bool,
}

/// The endpoints `tenancy` sees: its own side's (every one for the platform).
pub fn endpoints_in(tenancy: Tenancy) -> Condition {
    match tenancy {
        Tenancy::Platform => Condition::all(),
        Tenancy::Organization(id) => Condition::all().add(webhook_endpoint::Column::OrganizationId.eq(id)),
        Tenancy::CertificationBody(id) => Condition::all().add(webhook_endpoint::Column::CertificationBodyId.eq(id)),
    }
}

impl Engine {
    /// Endpoint `id` as `caller` sees it (404 otherwise).
    pub async fn webhook_endpoint(&self, caller: &Caller, id: Uuid) -> Result<webhook_endpoint::Model, EngineError> {
        WebhookEndpoint::find_by_id(id)
            .filter(endpoints_in(caller.tenancy))
            .one(&self.db)
            .await?
            .ok_or(EngineError::NotFound("webhook endpoint"))
    }

    /// Registers an endpoint for `owner` (`None`: the caller's own side; an admin names one) and
    /// returns it with its secret, which is never shown again.
    pub async fn create_webhook_endpoint(
        &self,
        caller: &Caller,
        owner: Option<EndpointOwner>,
        spec: EndpointSpec,
        allow_loopback: bool,
        claim: Option<Claim>,
    ) -> Result<(Write, webhook_endpoint::Model, WebhookSecret), EngineError> {
        let owner = match (caller.tenancy, owner) {
            (Tenancy::Platform, Some(owner)) => owner,
            (Tenancy::Platform, None) => {
                return Err(EngineError::Invalid {
                    field: "organization_id",
                    detail: "an admin names the endpoint's owner: organization_id or certification_body_id".into(),
                });
            }
            (Tenancy::Organization(own), None) => EndpointOwner::Organization(own),
            (Tenancy::CertificationBody(own), None) => EndpointOwner::CertificationBody(own),
            (Tenancy::Organization(own), Some(named)) if named == EndpointOwner::Organization(own) => named,
            (Tenancy::CertificationBody(own), Some(named)) if named == EndpointOwner::CertificationBody(own) => named,
            // Another organization is unseen: as if it did not exist.
            (Tenancy::Organization(_), Some(EndpointOwner::Organization(_))) => {
                return Err(EngineError::NotFound("organization"));
            }
            (_, Some(_)) => {
                return Err(EngineError::Forbidden(
                    "an endpoint is registered for the caller's own organization or certification body".into(),
                ));
            }
        };
        let url = checked_url(&spec.url, allow_loopback)?;
        let target = match owner {
            EndpointOwner::Organization(id) => Target::Organization(id),
            EndpointOwner::CertificationBody(id) => Target::CertificationBody(id),
        };
        let write = self.begin(caller, target, Action::ManageWebhooks, claim).await?;
        let secret = WebhookSecret::generate(&mut rand::rng());
        let now = write.now();
        let (organization_id, certification_body_id) = match owner {
            EndpointOwner::Organization(id) => (Some(id), None),
            EndpointOwner::CertificationBody(id) => (None, Some(id)),
        };
        let created = webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(organization_id),
            certification_body_id: Set(certification_body_id),
            url: Set(url),
            description: Set(spec.description),
            event_types: Set(event_types_json(&spec.event_types)),
            enabled: Set(spec.enabled),
            disabled_reason: Set((!spec.enabled).then(|| "disabled by its owner".to_owned())),
            secret: Set(secret.expose()),
            previous_secret: Set(None),
            previous_secret_expires_at: Set(None),
            failing_since: Set(None),
            version: Set(1),
            created_by: Set(caller.subject.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(write.txn())
        .await?;
        Ok((write, created, secret))
    }

    /// Changes endpoint `id` (URL, description, event types, enabled). Enabling it again clears
    /// its failures; its failed messages wait for a replay.
    pub async fn update_webhook_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
        spec: EndpointSpec,
        allow_loopback: bool,
    ) -> Result<(Write, webhook_endpoint::Model), EngineError> {
        let url = checked_url(&spec.url, allow_loopback)?;
        let (write, endpoint) = self.begin_on_endpoint(caller, id, None).await?;
        let now = write.now();
        let (was_enabled, version) = (endpoint.enabled, endpoint.version);
        let mut model = endpoint.into_active_model();
        model.url = Set(url);
        model.description = Set(spec.description);
        model.event_types = Set(event_types_json(&spec.event_types));
        model.enabled = Set(spec.enabled);
        if spec.enabled {
            model.disabled_reason = Set(None);
            model.failing_since = Set(None);
        } else if was_enabled {
            model.disabled_reason = Set(Some("disabled by its owner".into()));
        }
        model.version = Set(version + 1);
        model.updated_at = Set(now);
        let updated = model.update(write.txn()).await?;
        Ok((write, updated))
    }

    /// Removes endpoint `id` with its messages and their log.
    pub async fn delete_webhook_endpoint(&self, caller: &Caller, id: Uuid) -> Result<Write, EngineError> {
        let (write, endpoint) = self.begin_on_endpoint(caller, id, None).await?;
        // The endpoint first: its row lock waits for a dispatch that wrote messages for it (which
        // holds it `FOR KEY SHARE`) and keeps the next one off. Then its messages, which waits for a
        // recorder holding some, and then their attempts, the recorder's included: each statement
        // sees what committed before it began. On PostgreSQL no foreign key cascades (migration
        // `m20261204_000020`); on SQLite the keys cascade, and these two find nothing left.
        WebhookEndpoint::delete_by_id(endpoint.id).exec(write.txn()).await?;
        WebhookMessage::delete_many()
            .filter(webhook_message::Column::EndpointId.eq(endpoint.id))
            .exec(write.txn())
            .await?;
        WebhookAttempt::delete_many()
            .filter(webhook_attempt::Column::EndpointId.eq(endpoint.id))
            .exec(write.txn())
            .await?;
        Ok(write)
    }

    /// A new secret for endpoint `id`; the one it replaces keeps signing beside it for 24 hours.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: Uuid,
        claim: Option<Claim>,
    ) -> Result<(Write, webhook_endpoint::Model, WebhookSecret), EngineError> {
        let (write, endpoint) = self.begin_on_endpoint(caller, id, claim).await?;
        let now = write.now();
        let secret = WebhookSecret::generate(&mut rand::rng());
        let (old, version) = (endpoint.secret.clone(), endpoint.version);
        let mut model = endpoint.into_active_model();
        model.secret = Set(secret.expose());
        model.previous_secret = Set(Some(old));
        model.previous_secret_expires_at = Set(Some(now + rotation_overlap()));
        model.version = Set(version + 1);
        model.updated_at = Set(now);
        let updated = model.update(write.txn()).await?;
        Ok((write, updated, secret))
    }

    /// Sends endpoint `id`'s messages again from their first attempt: `message` alone (any status
    /// but one being sent), or every failed one created at or after `since`. Returns how many.
    pub async fn replay_webhook_messages(
        &self,
        caller: &Caller,
        id: Uuid,
        which: Replay,
        claim: Option<Claim>,
    ) -> Result<(Write, u64), EngineError> {
        let (write, endpoint) = self.begin_on_endpoint(caller, id, claim).await?;
        if !endpoint.enabled {
            return Err(EngineError::conflict(
                "webhook-endpoint-disabled",
                "the endpoint is disabled: enable it (PUT) before replaying its messages",
            ));
        }
        use webhook_message::Column as M;
        let now = write.now();
        let chosen = match which {
            Replay::Message(message) => {
                // Locked as it is read (`FOR UPDATE` on PostgreSQL; SQLite's one writer holds it):
                // an attempt's record, a purge or a removal under way is waited for, and what it
                // left is read; one that comes after waits for this replay.
                let found = WebhookMessage::find_by_id(message)
                    .filter(M::EndpointId.eq(endpoint.id))
                    .lock(LockType::Update)
                    .one(write.txn())
                    .await?
                    .ok_or(EngineError::NotFound("webhook message"))?;
                if found.status == WebhookMessageStatus::Sending {
                    return Err(EngineError::conflict(
                        "webhook-message-sending",
                        "an attempt of this message is under way: replay it once it ends",
                    ));
                }
                // A first attempt kept in its row gets a row of its own, under the id the log
                // listed it by, before the message starts again: the log keeps every attempt
                // made. The message's next first attempts have rows of their own too (the
                // recorder finds this one's id taken).
                insert_attempts(write.txn(), found.first_attempt().into_iter().collect()).await?;
                M::Id.eq(message)
            }
            // A failed message keeps no first attempt (one kept delivered its message), and each
            // is replayed only if it is still failed when the update reaches it.
            Replay::FailedSince(since) => M::Status.eq(WebhookMessageStatus::Failed).and(M::CreatedAt.gte(since)),
        };
        let replayed = WebhookMessage::update_many()
            .col_expr(M::Status, Expr::value(WebhookMessageStatus::Pending))
            .col_expr(M::Attempts, Expr::value(0))
            .col_expr(M::NextAttemptAt, Expr::value(now))
            .col_expr(M::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(M::FirstAttemptLatencyMs, Expr::value(Option::<i32>::None))
            .col_expr(M::FirstAttemptExcerpt, Expr::value(Option::<String>::None))
            .col_expr(M::UpdatedAt, Expr::value(now))
            .filter(M::EndpointId.eq(endpoint.id))
            .filter(chosen)
            .exec(write.txn())
            .await?
            .rows_affected;
        Ok((write, replayed))
    }

    /// Authorizes a change of endpoint `id` (404 unseen, 403 for the role) and begins the write.
    async fn begin_on_endpoint(
        &self,
        caller: &Caller,
        id: Uuid,
        claim: Option<Claim>,
    ) -> Result<(Write, webhook_endpoint::Model), EngineError> {
        self.webhook_endpoint(caller, id).await?;
        let write = self.begin(caller, Target::Platform, Action::ManageWebhooks, claim).await?;
        let endpoint = WebhookEndpoint::find_by_id(id)
            .filter(endpoints_in(caller.tenancy))
            .one(write.txn())
            .await?
            .ok_or(EngineError::NotFound("webhook endpoint"))?;
        Ok((write, endpoint))
    }
}

/// Which messages a replay sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// This one.
    Message(Uuid),
    /// Every failed one created since then.
    FailedSince(DateTime<Utc>),
}

fn checked_url(url: &str, allow_loopback: bool) -> Result<String, EngineError> {
    check_endpoint_url(url, allow_loopback)
        .map(|url| url.to_string())
        .map_err(|refusal| EngineError::Unprocessable { slug: refusal.code(), detail: format!("url: {refusal}") })
}

fn event_types_json(types: &[WebhookEventType]) -> serde_json::Value {
    let names: Vec<String> = types.iter().map(ToString::to_string).collect();
    entities::orm::json_strings(&names)
}
