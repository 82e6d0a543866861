//! The entities by their domain names.

pub use super::audit::Entity as Audit;
pub use super::certificate::Entity as Certificate;
pub use super::certification_body::Entity as CertificationBody;
pub use super::certification_decision::Entity as CertificationDecision;
pub use super::certification_policy::Entity as CertificationPolicyRecord;
pub use super::corrective_action::Entity as CorrectiveAction;
pub use super::deadline::Entity as Deadline;
pub use super::document::Entity as Document;
pub use super::engagement::Entity as Engagement;
pub use super::finding::Entity as Finding;
pub use super::history_entry::Entity as HistoryEntry;
pub use super::idempotency_key::Entity as IdempotencyKey;
pub use super::notification::Entity as Notification;
pub use super::organization::Entity as Organization;
pub use super::person::Entity as Person;
pub use super::proposal::Entity as Proposal;
pub use super::reminder_policy::Entity as ReminderPolicyRecord;
pub use super::session::Entity as Session;
pub use super::sign_in_link::Entity as SignInLink;
pub use super::soa_entry::Entity as SoaEntry;
pub use super::token_revocation::Entity as TokenRevocation;
pub use super::webhook_attempt::Entity as WebhookAttempt;
pub use super::webhook_endpoint::Entity as WebhookEndpoint;
pub use super::webhook_event::Entity as WebhookEventRecord;
pub use super::webhook_message::Entity as WebhookMessage;
pub use super::webhook_outbox::Entity as WebhookOutbox;
