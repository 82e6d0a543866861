//! Webhooks, as the Standard Webhooks specification has them: the events an integration can
//! subscribe to, the secret and the signature of each attempt, the retry schedule, what a
//! receiver's answer means, and which addresses certflow never sends to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, NaiveDate, Utc};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::deadline::DeadlineKind;
use crate::domain::lifecycle::CertificateChange;
use crate::domain::reminders::StepKind;
use crate::domain::state::{EngagementEvent, EngagementState};
use crate::domain::{
    AuditKind, CertificateStatus, FindingGrade, FindingStatus, StandardVersion, SuspensionCause, VerificationStatus,
};

vocabulary! {
    /// What happened, as a webhook names it (dotted: `resource.what_happened`).
    pub enum WebhookEventType {
        /// An engagement moved from one state to another (`from`, `to`, `event`, `actor`, `reason`).
        #[serde(rename = "engagement.transitioned")]
        #[strum(serialize = "engagement.transitioned")]
        #[sea_orm(string_value = "engagement.transitioned")]
        EngagementTransitioned,
        /// An audit was planned.
        #[serde(rename = "audit.planned")]
        #[strum(serialize = "audit.planned")]
        #[sea_orm(string_value = "audit.planned")]
        AuditPlanned,
        /// A finding (nonconformity or opportunity for improvement) was recorded.
        #[serde(rename = "finding.recorded")]
        #[strum(serialize = "finding.recorded")]
        #[sea_orm(string_value = "finding.recorded")]
        FindingRecorded,
        /// A corrective action was submitted (its plan, or its completion).
        #[serde(rename = "corrective_action.submitted")]
        #[strum(serialize = "corrective_action.submitted")]
        #[sea_orm(string_value = "corrective_action.submitted")]
        CorrectiveActionSubmitted,
        /// A corrective action was verified by the body.
        #[serde(rename = "corrective_action.verified")]
        #[strum(serialize = "corrective_action.verified")]
        #[sea_orm(string_value = "corrective_action.verified")]
        CorrectiveActionVerified,
        /// A deadline's reminder went out.
        #[serde(rename = "deadline.reminded")]
        #[strum(serialize = "deadline.reminded")]
        #[sea_orm(string_value = "deadline.reminded")]
        DeadlineReminded,
        /// A deadline's escalation went out.
        #[serde(rename = "deadline.escalated")]
        #[strum(serialize = "deadline.escalated")]
        #[sea_orm(string_value = "deadline.escalated")]
        DeadlineEscalated,
        /// An email could not be delivered after every attempt.
        #[serde(rename = "notification.failed")]
        #[strum(serialize = "notification.failed")]
        #[sea_orm(string_value = "notification.failed")]
        NotificationFailed,
        /// A certificate was issued (a certification or a recertification granted).
        #[serde(rename = "certificate.issued")]
        #[strum(serialize = "certificate.issued")]
        #[sea_orm(string_value = "certificate.issued")]
        CertificateIssued,
        /// A certificate was suspended.
        #[serde(rename = "certificate.suspended")]
        #[strum(serialize = "certificate.suspended")]
        #[sea_orm(string_value = "certificate.suspended")]
        CertificateSuspended,
        /// A suspended (or lapsed) certificate was restored.
        #[serde(rename = "certificate.restored")]
        #[strum(serialize = "certificate.restored")]
        #[sea_orm(string_value = "certificate.restored")]
        CertificateRestored,
        /// A certificate was withdrawn.
        #[serde(rename = "certificate.withdrawn")]
        #[strum(serialize = "certificate.withdrawn")]
        #[sea_orm(string_value = "certificate.withdrawn")]
        CertificateWithdrawn,
        /// A certificate expired.
        #[serde(rename = "certificate.expired")]
        #[strum(serialize = "certificate.expired")]
        #[sea_orm(string_value = "certificate.expired")]
        CertificateExpired,
        /// A certificate's scope was reduced (or otherwise changed).
        #[serde(rename = "certificate.scope_changed")]
        #[strum(serialize = "certificate.scope_changed")]
        #[sea_orm(string_value = "certificate.scope_changed")]
        CertificateScopeChanged,
        /// A certificate ended at the client's request (the engagement was cancelled).
        #[serde(rename = "certificate.cancelled")]
        #[strum(serialize = "certificate.cancelled")]
        #[sea_orm(string_value = "certificate.cancelled")]
        CertificateCancelled,
    }
}

impl WebhookEventType {
    /// The event of a change to the certificate, if it is one integrations are told of (a
    /// surveillance audit counted is told by the engagement's transition).
    pub fn of_certificate_change(change: CertificateChange) -> Option<Self> {
        Some(match change {
            CertificateChange::Issue { .. } => Self::CertificateIssued,
            CertificateChange::SetStatus(CertificateStatus::Active)
            | CertificateChange::RestoredWithSurveillance { .. } => Self::CertificateRestored,
            CertificateChange::SetStatus(CertificateStatus::Suspended) => Self::CertificateSuspended,
            CertificateChange::SetStatus(CertificateStatus::Withdrawn) => Self::CertificateWithdrawn,
            CertificateChange::SetStatus(CertificateStatus::Expired) => Self::CertificateExpired,
            CertificateChange::SetStatus(CertificateStatus::Cancelled) => Self::CertificateCancelled,
            CertificateChange::ScopeReduced | CertificateChange::Amended => Self::CertificateScopeChanged,
            CertificateChange::SurveillanceCompleted { .. } => return None,
        })
    }

    /// The event of an email that went out for a deadline (a notice is told by its transition).
    pub fn of_step_sent(kind: StepKind) -> Option<Self> {
        match kind {
            StepKind::Reminder => Some(Self::DeadlineReminded),
            StepKind::Escalation => Some(Self::DeadlineEscalated),
            StepKind::Notice => None,
        }
    }

    /// Whether an endpoint subscribed to `wanted` receives this type (none listed: every type).
    pub fn wanted_by(self, wanted: &[Self]) -> bool {
        wanted.is_empty() || wanted.contains(&self)
    }
}

vocabulary! {
    /// Where one message (an event, for one endpoint) stands.
    pub enum WebhookMessageStatus {
        /// Waiting for its next attempt.
        Pending,
        /// An attempt holds it (under a lease).
        Sending,
        /// The endpoint answered 2xx.
        Delivered,
        /// Every attempt failed, or the endpoint is gone or disabled: replay sends it again.
        Failed,
    }
}

vocabulary! {
    /// What one attempt to deliver a message came to.
    pub enum WebhookAttemptOutcome {
        /// Answered 2xx.
        Delivered,
        /// Not received: tried again later.
        Retrying,
        /// Not received, and the schedule is spent: the message failed.
        Failed,
        /// Answered 410 Gone: the endpoint is disabled.
        Gone,
    }
}

/// Why a URL is not an endpoint's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Not an absolute http(s) URL, or too long.
    #[error("not an absolute https:// URL of at most 2,048 characters")]
    Malformed,
    /// `http://` outside local development.
    #[error("an endpoint is reached over https:// (http:// only to a loopback address in local development)")]
    NotHttps,
    /// User name or password in the URL.
    #[error("an endpoint's URL carries no user name or password: it is authenticated by its signature")]
    Credentials,
    /// An address webhooks are never sent to.
    #[error("webhooks are never sent to loopback, private, link-local or metadata addresses")]
    PrivateAddress,
}

impl UrlRefusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "webhook-url-malformed",
            Self::NotHttps => "webhook-url-not-https",
            Self::Credentials => "webhook-url-credentials",
            Self::PrivateAddress => "webhook-url-private-address",
        }
    }
}

/// Checks an endpoint's URL as registered: https (http only to loopback, when loopback is
/// allowed), no credentials, and no address or local name webhooks are never sent to. A name is
/// checked again, after DNS, at every attempt.
pub fn check_endpoint_url(text: &str, allow_loopback: bool) -> Result<url::Url, UrlRefusal> {
    if text.len() > 2048 {
        return Err(UrlRefusal::Malformed);
    }
    let url = url::Url::parse(text).map_err(|_| UrlRefusal::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefusal::Credentials);
    }
    let host = url.host().ok_or(UrlRefusal::Malformed)?;
    let (loopback, address) = match &host {
        url::Host::Ipv4(v4) => (v4.is_loopback(), Some(IpAddr::V4(*v4))),
        url::Host::Ipv6(v6) => (v6.is_loopback(), Some(IpAddr::V6(*v6))),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost"), None)
        }
    };
    if loopback && !allow_loopback {
        return Err(UrlRefusal::PrivateAddress);
    }
    if address.is_some_and(|a| !may_send_to(a, allow_loopback)) {
        return Err(UrlRefusal::PrivateAddress);
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(UrlRefusal::NotHttps),
        _ => Err(UrlRefusal::Malformed),
    }
}

/// Who owns an endpoint: it receives the events of the engagements whose records its owner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointOwner {
    /// An organization: its own engagements.
    Organization(uuid::Uuid),
    /// A certification body: the engagements it is selected for (a body that has only bid reads
    /// none of an engagement's records, and is told none of its events).
    CertificationBody(uuid::Uuid),
}

impl EndpointOwner {
    /// The owner an endpoint row names (`None`: neither, which the API never writes).
    pub fn of(organization_id: Option<uuid::Uuid>, certification_body_id: Option<uuid::Uuid>) -> Option<Self> {
        match (organization_id, certification_body_id) {
            (Some(organization), None) => Some(Self::Organization(organization)),
            (None, Some(body)) => Some(Self::CertificationBody(body)),
            _ => None,
        }
    }

    /// Whether it is told of an event of an engagement of `organization_id`, whose selected body
    /// (when the event happened) was `certification_body_id`.
    pub fn is_told(self, organization_id: uuid::Uuid, certification_body_id: Option<uuid::Uuid>) -> bool {
        match self {
            Self::Organization(own) => own == organization_id,
            Self::CertificationBody(own) => certification_body_id == Some(own),
        }
    }
}

/// The `webhook-id` of a message: the same for every attempt of it, and for its replays.
pub fn message_id(id: uuid::Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// The id of the message that tells `event` to `endpoint`: the same whenever it is made. A worker
/// sends a message's first attempt before the transaction that writes the message commits; if
/// that worker dies before the commit, the message is made again by the next dispatch and sent
/// with the same `webhook-id`, which the receiver uses to drop a repeat.
///
/// A UUID of version 8: the event id's first 48 bits (a version 7 id's milliseconds, so messages
/// are ordered in their index as their events are), then 74 bits of SHA-256 over both ids.
pub fn message_uuid(event: uuid::Uuid, endpoint: uuid::Uuid) -> uuid::Uuid {
    use sha2::Digest;
    let digest = Sha256::new().chain_update(event.as_bytes()).chain_update(endpoint.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&event.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    uuid::Uuid::new_v8(bytes)
}

/// An event, as the write that causes it tells it: its type, the engagement it belongs to (whose
/// order it takes its sequence number in), and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// What happened.
    pub event_type: WebhookEventType,
    /// The engagement.
    pub engagement_id: uuid::Uuid,
    /// Its organization.
    pub organization_id: uuid::Uuid,
    /// Its certification body, once one is selected.
    pub certification_body_id: Option<uuid::Uuid>,
    /// The resource concerned, as a receiver sees it.
    pub subject: EventSubject,
}

/// The resource an event concerns, under its own name in the event's `data`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventSubject {
    /// `engagement.transitioned`.
    Transition(TransitionData),
    /// `audit.planned`.
    Audit(AuditData),
    /// `finding.recorded`.
    Finding(FindingData),
    /// `corrective_action.*`.
    CorrectiveAction(CorrectiveActionData),
    /// `deadline.reminded`, `deadline.escalated`, `notification.failed`.
    Reminder(ReminderData),
    /// `certificate.*`.
    Certificate(CertificateData),
}

/// The payload's `data`: the engagement, the event's place in its order, and the subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventData {
    /// The engagement the event belongs to.
    pub engagement_id: uuid::Uuid,
    /// Its organization.
    pub organization_id: uuid::Uuid,
    /// Its certification body, once one is selected.
    pub certification_body_id: Option<uuid::Uuid>,
    /// 1 for the engagement's first event, one more for each next one: a receiver orders what
    /// it gets (and sees a gap) by it.
    pub sequence: i64,
    /// The resource concerned, under its name (`transition`, `audit`, `finding`,
    /// `corrective_action`, `reminder` or `certificate`).
    #[serde(flatten)]
    pub subject: EventSubject,
}

/// The body of every webhook message (Standard Webhooks' `{type, timestamp, data}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: WebhookEventType,
    /// When the change happened (its commit's time).
    pub timestamp: DateTime<Utc>,
    /// What happened.
    pub data: EventData,
}

/// What a message's body says of its event besides the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHead {
    /// The event's type.
    pub event_type: WebhookEventType,
    /// When the change happened.
    pub timestamp: DateTime<Utc>,
    /// The engagement.
    pub engagement_id: uuid::Uuid,
    /// Its organization.
    pub organization_id: uuid::Uuid,
    /// Its certification body, once one is selected.
    pub certification_body_id: Option<uuid::Uuid>,
    /// The event's place in its engagement's order.
    pub sequence: i64,
}

/// A message's body from its event's head and its subject as stored: the JSON object an
/// [`EventSubject`] serializes to (`{"transition": {…}}`). The same document as [`WebhookPayload`]
/// serializes to, made without parsing the subject into a tree and writing it again (which took a
/// fifth of the worker's instructions a message): the head is written, then the subject's members
/// are copied into its `data` after the engagement's fields, as `#[serde(flatten)]` places them.
/// Fails when `stored_subject` is not one JSON object.
pub fn payload_body(head: &PayloadHead, stored_subject: &str) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct Data {
        engagement_id: uuid::Uuid,
        organization_id: uuid::Uuid,
        certification_body_id: Option<uuid::Uuid>,
        sequence: i64,
    }
    #[derive(serde::Serialize)]
    struct Head {
        #[serde(rename = "type")]
        event_type: WebhookEventType,
        timestamp: DateTime<Utc>,
        data: Data,
    }
    // Well-formed JSON (checked without building anything), and an object.
    serde_json::from_str::<serde::de::IgnoredAny>(stored_subject)?;
    let members =
        stored_subject.trim().strip_prefix('{').and_then(|rest| rest.strip_suffix('}')).map(str::trim).ok_or_else(
            || <serde_json::Error as serde::de::Error>::custom("an event's subject is not a JSON object"),
        )?;
    let mut body = serde_json::to_vec(&Head {
        event_type: head.event_type,
        timestamp: head.timestamp,
        data: Data {
            engagement_id: head.engagement_id,
            organization_id: head.organization_id,
            certification_body_id: head.certification_body_id,
            sequence: head.sequence,
        },
    })?;
    // The head ends with the two objects' closing braces: the members go before them.
    body.truncate(body.len() - 2);
    body.reserve(members.len() + 3);
    if !members.is_empty() {
        body.push(b',');
        body.extend_from_slice(members.as_bytes());
    }
    body.extend_from_slice(b"}}");
    Ok(body)
}

/// An engagement as events show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngagementData {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its state after the event.
    pub state: EngagementState,
    /// Its version after the event (the API's `ETag`).
    pub version: i32,
    /// The scope to certify, once stated.
    pub scope: Option<String>,
    /// Suspended since, while suspended.
    pub suspended_on: Option<NaiveDate>,
    /// Why it is suspended, while suspended.
    pub suspension_cause: Option<SuspensionCause>,
}

/// An engagement's transition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransitionData {
    /// The state it left.
    pub from: EngagementState,
    /// The state it entered.
    pub to: EngagementState,
    /// The event fired.
    pub event: EngagementEvent,
    /// Who fired it (`certflow-clock` for the clock).
    pub actor: String,
    /// The reason recorded, if any.
    pub reason: Option<String>,
    /// The engagement after it.
    pub engagement: EngagementData,
}

/// An audit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditData {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its kind.
    pub kind: AuditKind,
    /// Its first day.
    pub first_day: NaiveDate,
    /// Its last day.
    pub last_day: NaiveDate,
    /// The lead auditor.
    pub lead_auditor: String,
    /// The rest of the team.
    pub audit_team: Vec<String>,
}

/// A finding.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FindingData {
    /// Its id.
    pub id: uuid::Uuid,
    /// The audit that recorded it.
    pub audit_id: uuid::Uuid,
    /// Major or minor nonconformity, or opportunity for improvement.
    pub grade: FindingGrade,
    /// The clause or control it is against.
    pub reference: String,
    /// What was found.
    pub description: String,
    /// Open or closed.
    pub status: FindingStatus,
}

/// A corrective action.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CorrectiveActionData {
    /// Its id.
    pub id: uuid::Uuid,
    /// The nonconformity it corrects.
    pub finding_id: uuid::Uuid,
    /// Due on.
    pub due_on: NaiveDate,
    /// Where the body's verification stands.
    pub verification: VerificationStatus,
    /// When the client reported it done, once it did.
    pub reported_done_at: Option<DateTime<Utc>>,
    /// When the body verified it, once it did.
    pub verified_at: Option<DateTime<Utc>>,
    /// The body's note on its verification.
    pub verification_note: Option<String>,
}

/// An email about a deadline (a reminder, an escalation), sent or failed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReminderData {
    /// The deadline's id.
    pub deadline_id: uuid::Uuid,
    /// What is due.
    pub deadline_kind: DeadlineKind,
    /// The day it is due.
    pub due_on: NaiveDate,
    /// The audit, finding or corrective action it concerns, if any.
    pub subject_id: Option<uuid::Uuid>,
    /// The email's id (the API's notification).
    pub notification_id: uuid::Uuid,
    /// Reminder, escalation or notice.
    pub step: StepKind,
    /// Which step of the body's schedule.
    pub step_key: String,
    /// How many recipients it went to.
    pub recipients: i32,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// A certificate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateData {
    /// Its number (the public page and verification use it).
    pub number: String,
    /// Its status after the event.
    pub status: CertificateStatus,
    /// The certified scope.
    pub scope: String,
    /// The standard.
    pub standard: StandardVersion,
    /// Issued (this term) on.
    pub issued_on: NaiveDate,
    /// Expires on.
    pub expires_on: NaiveDate,
    /// Surveillance audits counted in this cycle.
    pub surveillances_completed: i32,
}

/// The shortest secret accepted, in bytes (the specification asks for 24 to 64).
pub const SECRET_BYTES_MIN: usize = 24;
/// The longest secret accepted, in bytes.
pub const SECRET_BYTES_MAX: usize = 64;
/// The length of the secrets certflow makes.
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret: `whsec_` and the base64 of its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// Why a text is not a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefusal {
    /// Not `whsec_` and base64.
    #[error("a webhook secret is 'whsec_' followed by base64")]
    Malformed,
    /// Too short or too long.
    #[error("a webhook secret holds 24 to 64 bytes")]
    Length,
}

impl WebhookSecret {
    /// A new secret of [`SECRET_BYTES`] random bytes.
    pub fn generate(rng: &mut impl rand::RngCore) -> Self {
        let mut bytes = vec![0; SECRET_BYTES];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretRefusal> {
        let encoded = text.strip_prefix("whsec_").ok_or(SecretRefusal::Malformed)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretRefusal::Malformed)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(SecretRefusal::Length);
        }
        Ok(Self(bytes))
    }

    /// As shown once, and as stored: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// The `v1` signature of a message: base64 of HMAC-SHA256 over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header of an attempt: one signature per secret in force (the current
/// one, and during a rotation's overlap the previous one too), separated by spaces.
pub fn signature_header(secrets: &[&WebhookSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|secret| secret.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// How long a rotated-out secret keeps signing beside the new one.
pub fn rotation_overlap() -> Duration {
    Duration::hours(24)
}

/// The waits before each retry, after the first attempt fails (the specification's schedule):
/// 5 seconds, 5 minutes, 30 minutes, 2, 5, 10, 14, 20 and 24 hours. After the last one, the
/// message has failed.
pub const RETRY_SCHEDULE_SECONDS: [i64; 9] =
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600];

/// The most a wait is moved by jitter, as a fraction of it.
pub const JITTER: f64 = 0.1;

/// The longest `Retry-After` honoured (a receiver asking for longer waits the schedule's longest).
pub fn longest_retry_after() -> Duration {
    Duration::hours(24)
}

/// When a message that has had `attempts` attempts, all failed, is tried next: the schedule's
/// wait moved by `jitter` (in -1..=1, times [`JITTER`]), and no sooner than the receiver's
/// `Retry-After` (bounded by [`longest_retry_after`]). `None`: the schedule is spent, the message
/// has failed.
pub fn next_retry(attempts: u32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let base = *RETRY_SCHEDULE_SECONDS.get(index)?;
    let moved = (base as f64 * (1.0 + JITTER * jitter.clamp(-1.0, 1.0))).round() as i64;
    let wait = Duration::seconds(moved.max(1));
    Some(match retry_after {
        Some(asked) => wait.max(asked.min(longest_retry_after())),
        None => wait,
    })
}

/// What an attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Received (any 2xx).
    Delivered,
    /// Not received: try again on the schedule (a redirect, an error, no answer); a 429 or 503
    /// may ask for a longer wait.
    Retry {
        /// The receiver's `Retry-After`, when it gave one with a 429 or 503.
        retry_after: Option<Duration>,
    },
    /// 410 Gone: the receiver wants no more; the endpoint is disabled.
    Gone,
}

/// The verdict on an attempt answered with `status` (`None`: no answer, a timeout or a refused
/// connection) and `retry_after`.
pub fn verdict(status: Option<u16>, retry_after: Option<Duration>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 503) => Verdict::Retry { retry_after },
        _ => Verdict::Retry { retry_after: None },
    }
}

/// How long an endpoint may fail every attempt before it is disabled and its owner told.
pub fn failing_limit() -> Duration {
    Duration::days(5)
}

/// Whether an endpoint that has failed every attempt since `failing_since` is to be disabled now.
pub fn failed_too_long(
    failing_since: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    failing_since.is_some_and(|since| now - since >= failing_limit())
}

/// Whether certflow may send to `address`: never to loopback, private, shared, link-local (the
/// clouds' metadata services among them), unspecified, multicast, broadcast or documentation
/// addresses, unless `allow_loopback` (local development and tests) and it is loopback.
pub fn may_send_to(address: IpAddr, allow_loopback: bool) -> bool {
    if address.is_loopback() || is_mapped_loopback(address) {
        return allow_loopback;
    }
    match address {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn is_mapped_loopback(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

fn public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, c, _] = v4.octets();
    let shared = a == 100 && (64..=127).contains(&b); // 100.64.0.0/10, carrier-grade NAT
    let benchmarking = a == 198 && (b == 18 || b == 19); // 198.18.0.0/15
    let protocol_assignments = a == 192 && b == 0 && c == 0; // 192.0.0.0/24
    let reserved = a >= 240; // 240.0.0.0/4 and broadcast
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || a == 0
        || shared
        || benchmarking
        || protocol_assignments
        || reserved)
}

fn public_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7 (AWS's metadata fd00:ec2::254 among them)
    let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
    let documentation = first == 0x2001 && v6.segments()[1] == 0x0db8; // 2001:db8::/32
    let nat64 = first == 0x0064 && v6.segments()[1] == 0xff9b; // 64:ff9b::/96 maps IPv4
    !(v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || unique_local
        || link_local
        || documentation
        || nat64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        // The specification's example secret.
        WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    #[test]
    fn a_body_spliced_from_the_stored_subject_is_the_payload_serialized() {
        let engagement = EngagementData {
            id: uuid::Uuid::now_v7(),
            state: EngagementState::Stage1,
            version: 7,
            scope: Some("ISMS of \"Acme\" {HQ}".to_owned()),
            suspended_on: None,
            suspension_cause: None,
        };
        let subjects = [
            EventSubject::Transition(TransitionData {
                from: EngagementState::Stage1,
                to: EngagementState::Stage1,
                event: EngagementEvent::RecordStage1Outcome,
                actor: "lead@cb.example".to_owned(),
                reason: Some("gaps: } and {".to_owned()),
                engagement,
            }),
            EventSubject::Finding(FindingData {
                id: uuid::Uuid::now_v7(),
                audit_id: uuid::Uuid::now_v7(),
                grade: FindingGrade::MajorNc,
                reference: "A.5.1".to_owned(),
                description: "no policy, \u{e9}t\u{e9} \n".to_owned(),
                status: FindingStatus::Open,
            }),
        ];
        for (subject, certification_body_id) in subjects.into_iter().zip([Some(uuid::Uuid::now_v7()), None]) {
            let head = PayloadHead {
                event_type: WebhookEventType::EngagementTransitioned,
                timestamp: Utc::now(),
                engagement_id: uuid::Uuid::now_v7(),
                organization_id: uuid::Uuid::now_v7(),
                certification_body_id,
                sequence: 42,
            };
            let typed = WebhookPayload {
                event_type: head.event_type,
                timestamp: head.timestamp,
                data: EventData {
                    engagement_id: head.engagement_id,
                    organization_id: head.organization_id,
                    certification_body_id,
                    sequence: 42,
                    subject: subject.clone(),
                },
            };
            // Stored as the outbox stores it: a JSON value's text (its keys sorted).
            let stored = serde_json::to_value(&subject).unwrap().to_string();
            let body = payload_body(&head, &stored).unwrap();
            let read: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(read, serde_json::to_value(&typed).unwrap(), "{}", String::from_utf8_lossy(&body));
            assert_eq!(serde_json::from_slice::<WebhookPayload>(&body).unwrap(), typed);
            // Space around the stored text changes nothing.
            assert_eq!(payload_body(&head, &format!("  {stored}\n")).unwrap(), body);
        }
    }

    #[test]
    fn a_stored_subject_that_is_not_one_json_object_makes_no_body() {
        let head = PayloadHead {
            event_type: WebhookEventType::FindingRecorded,
            timestamp: Utc::now(),
            engagement_id: uuid::Uuid::now_v7(),
            organization_id: uuid::Uuid::now_v7(),
            certification_body_id: None,
            sequence: 1,
        };
        for stored in ["", "[1, 2]", "\"{}\"", "{\"finding\": ", "{} {}", "{\"a\": 1}}"] {
            assert!(payload_body(&head, stored).is_err(), "{stored:?}");
        }
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&payload_body(&head, "{}").unwrap()).unwrap()["data"]["sequence"],
            1
        );
    }

    #[test]
    fn a_message_of_an_event_to_an_endpoint_has_the_same_id_whenever_it_is_made() {
        let event = uuid::Uuid::now_v7();
        let (one, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert_eq!(message_uuid(event, one), message_uuid(event, one), "made again after a crash: the same id");
        assert_ne!(message_uuid(event, one), message_uuid(event, other), "one id an endpoint");
        assert_ne!(message_uuid(event, one), message_uuid(uuid::Uuid::now_v7(), one), "one id an event");
        assert_eq!(message_uuid(event, one).get_version_num(), 8);
        assert_eq!(message_uuid(event, one).as_bytes()[..6], event.as_bytes()[..6], "ordered as the events are");
    }

    #[test]
    fn an_endpoint_is_https_to_a_public_name_or_address() {
        assert!(check_endpoint_url("https://hooks.example.com/certflow", false).is_ok());
        assert!(check_endpoint_url("https://93.184.215.14/in", false).is_ok());
        let refused = |url: &str, allow: bool| check_endpoint_url(url, allow).unwrap_err();
        assert_eq!(refused("http://hooks.example.com/", false), UrlRefusal::NotHttps);
        assert_eq!(refused("http://hooks.example.com/", true), UrlRefusal::NotHttps, "http only to loopback");
        assert_eq!(refused("https://user:pw@hooks.example.com/", false), UrlRefusal::Credentials);
        assert_eq!(refused("ftp://hooks.example.com/", false), UrlRefusal::Malformed);
        assert_eq!(refused("hooks.example.com", false), UrlRefusal::Malformed);
        for private in
            ["https://10.0.0.8/", "https://169.254.169.254/latest", "https://[fd00:ec2::254]/", "https://192.168.1.1/"]
        {
            assert_eq!(refused(private, true), UrlRefusal::PrivateAddress, "{private}");
        }
        for local in ["http://127.0.0.1:9000/in", "http://localhost:9000/in", "http://[::1]:9000/in"] {
            assert_eq!(refused(local, false), UrlRefusal::PrivateAddress, "{local}");
            assert!(check_endpoint_url(local, true).is_ok(), "{local} allowed for local development");
        }
    }

    #[test]
    fn an_owner_is_told_of_the_engagements_whose_records_it_reads() {
        let (organization, body, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        assert!(EndpointOwner::Organization(organization).is_told(organization, Some(body)));
        assert!(!EndpointOwner::Organization(other).is_told(organization, Some(body)));
        assert!(EndpointOwner::CertificationBody(body).is_told(organization, Some(body)));
        assert!(!EndpointOwner::CertificationBody(other).is_told(organization, Some(body)), "another body's");
        assert!(!EndpointOwner::CertificationBody(body).is_told(organization, None), "a bidder reads no records");
        assert_eq!(EndpointOwner::of(Some(organization), Some(body)), None, "one owner");
    }

    #[test]
    fn event_types_are_spelled_dotted() {
        assert_eq!(WebhookEventType::EngagementTransitioned.to_string(), "engagement.transitioned");
        assert_eq!(WebhookEventType::CorrectiveActionVerified.to_string(), "corrective_action.verified");
        assert_eq!(
            "certificate.scope_changed".parse::<WebhookEventType>().unwrap(),
            WebhookEventType::CertificateScopeChanged
        );
        assert_eq!(serde_json::to_value(WebhookEventType::DeadlineEscalated).unwrap(), "deadline.escalated");
    }

    #[test]
    fn a_secret_is_whsec_and_24_to_64_bytes_of_base64() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(SecretRefusal::Malformed));
        assert_eq!(WebhookSecret::parse("whsec_not base64!"), Err(SecretRefusal::Malformed));
        assert_eq!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 23]))), Err(SecretRefusal::Length));
        assert_eq!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 65]))), Err(SecretRefusal::Length));
        let made = WebhookSecret::generate(&mut rand::rng());
        assert_eq!(WebhookSecret::parse(&made.expose()), Ok(made.clone()));
        assert_ne!(made, WebhookSecret::generate(&mut rand::rng()), "each secret is new");
        assert_eq!(format!("{made:?}"), "WebhookSecret(…)", "never printed");
    }

    #[test]
    fn the_signature_is_the_specifications_example() {
        // The example of the Standard Webhooks specification (its reference libraries' test).
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret().sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn an_independent_implementation_verifies_our_signatures() {
        let ours = WebhookSecret::generate(&mut rand::rng());
        let theirs = standardwebhooks::Webhook::new(&ours.expose()).unwrap();
        let now = chrono::Utc::now().timestamp();
        let body = br#"{"type":"engagement.transitioned","timestamp":"2026-12-01T00:00:00Z","data":{}}"#;
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        let other = WebhookSecret::generate(&mut rand::rng());
        // Signed by another secret and ours (a rotation's overlap): the verifier finds ours.
        headers.insert("webhook-signature", signature_header(&[&other, &ours], "msg_1", now, body).parse().unwrap());
        theirs.verify(body, &headers).expect("our signature verifies");
        let tampered = br#"{"type":"engagement.transitioned","timestamp":"2026-12-01T00:00:00Z","data":{"x":1}}"#;
        assert!(theirs.verify(tampered, &headers).is_err(), "a changed body does not");
    }

    #[test]
    fn during_a_rotation_both_secrets_sign() {
        let new = WebhookSecret::generate(&mut rand::rng());
        let header = signature_header(&[&new, &secret()], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [new.sign("msg_1", 1, b"{}"), secret().sign("msg_1", 1, b"{}")]);
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let waits: Vec<i64> = (1..=9).map(|n| next_retry(n, 0.0, None).unwrap().num_seconds()).collect();
        assert_eq!(waits, RETRY_SCHEDULE_SECONDS);
        assert_eq!(next_retry(10, 0.0, None), None, "after the ninth retry the message has failed");
        assert_eq!(next_retry(0, 0.0, None), None, "no attempt, nothing to retry");
    }

    #[test]
    fn jitter_moves_a_wait_by_a_tenth_at_most() {
        assert_eq!(next_retry(2, 1.0, None), Some(Duration::seconds(330)));
        assert_eq!(next_retry(2, -1.0, None), Some(Duration::seconds(270)));
        assert_eq!(next_retry(2, 7.0, None), Some(Duration::seconds(330)), "clamped");
    }

    #[test]
    fn retry_after_lengthens_a_wait_but_never_past_a_day() {
        assert_eq!(next_retry(1, 0.0, Some(Duration::seconds(60))), Some(Duration::seconds(60)));
        assert_eq!(next_retry(3, 0.0, Some(Duration::seconds(60))), Some(Duration::minutes(30)), "never shorter");
        assert_eq!(next_retry(1, 0.0, Some(Duration::days(9))), Some(Duration::hours(24)));
    }

    #[test]
    fn a_2xx_delivers_a_410_disables_a_redirect_fails() {
        assert_eq!(verdict(Some(200), None), Verdict::Delivered);
        assert_eq!(verdict(Some(204), None), Verdict::Delivered);
        assert_eq!(verdict(Some(410), None), Verdict::Gone);
        assert_eq!(verdict(Some(301), None), Verdict::Retry { retry_after: None });
        assert_eq!(verdict(Some(500), Some(Duration::seconds(9))), Verdict::Retry { retry_after: None });
        assert_eq!(verdict(None, None), Verdict::Retry { retry_after: None });
        let asked = Some(Duration::seconds(30));
        assert_eq!(verdict(Some(429), asked), Verdict::Retry { retry_after: asked });
        assert_eq!(verdict(Some(503), asked), Verdict::Retry { retry_after: asked });
    }

    #[test]
    fn an_endpoint_failing_for_five_days_is_disabled() {
        let now = chrono::Utc::now();
        assert!(!failed_too_long(None, now));
        assert!(!failed_too_long(Some(now - Duration::days(5) + Duration::seconds(1)), now));
        assert!(failed_too_long(Some(now - Duration::days(5)), now));
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for refused in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!may_send_to(refused.parse().unwrap(), true), "{refused} is refused");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(may_send_to(public.parse().unwrap(), false), "{public} is public");
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        for loopback in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(!may_send_to(loopback.parse().unwrap(), false), "{loopback} refused by default");
            assert!(may_send_to(loopback.parse().unwrap(), true), "{loopback} allowed for development");
        }
    }
}
