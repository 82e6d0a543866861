//! What events tell of the stored rows: each resource as a receiver sees it (the domain's payload
//! types, filled from the rows).

use entities::domain::webhooks::{
    AuditData, CertificateData, CorrectiveActionData, EngagementData, EventSubject, FindingData, ReminderData,
    WebhookEvent, WebhookEventType,
};
use entities::orm::{audit, certificate, corrective_action, deadline, engagement, finding, notification, strings_of};

/// An event of `engagement`'s about `subject`.
pub fn event_of(event_type: WebhookEventType, engagement: &engagement::Model, subject: EventSubject) -> WebhookEvent {
    WebhookEvent {
        event_type,
        engagement_id: engagement.id,
        organization_id: engagement.organization_id,
        certification_body_id: engagement.certification_body_id,
        subject,
    }
}

/// The engagement.
pub fn engagement_data(e: &engagement::Model) -> EngagementData {
    EngagementData {
        id: e.id,
        state: e.state,
        version: e.version,
        scope: e.scope.clone(),
        suspended_on: e.suspended_on,
        suspension_cause: e.suspension_cause,
    }
}

/// An audit.
pub fn audit_data(a: &audit::Model) -> EventSubject {
    EventSubject::Audit(AuditData {
        id: a.id,
        kind: a.kind,
        first_day: a.first_day,
        last_day: a.last_day,
        lead_auditor: a.lead_auditor.clone(),
        audit_team: strings_of(&a.audit_team),
    })
}

/// A finding.
pub fn finding_data(f: &finding::Model) -> EventSubject {
    EventSubject::Finding(FindingData {
        id: f.id,
        audit_id: f.audit_id,
        grade: f.grade,
        reference: f.reference.clone(),
        description: f.description.clone(),
        status: f.status,
    })
}

/// A corrective action.
pub fn corrective_action_data(c: &corrective_action::Model) -> EventSubject {
    EventSubject::CorrectiveAction(CorrectiveActionData {
        id: c.id,
        finding_id: c.finding_id,
        due_on: c.due_on,
        verification: c.verification,
        reported_done_at: c.reported_done_at,
        verified_at: c.verified_at,
        verification_note: c.verification_note.clone(),
    })
}

/// The email `notification` about `deadline` (sent, or failed with `error`).
pub fn reminder_data(
    deadline: &deadline::Model,
    notification: &notification::Model,
    error: Option<String>,
) -> EventSubject {
    EventSubject::Reminder(ReminderData {
        deadline_id: deadline.id,
        deadline_kind: deadline.kind,
        due_on: deadline.due_on,
        subject_id: deadline.subject_id,
        notification_id: notification.id,
        step: notification.kind,
        step_key: notification.step_key.clone(),
        recipients: i32::try_from(strings_of(&notification.recipients).len()).unwrap_or(i32::MAX),
        error,
    })
}

/// A certificate.
pub fn certificate_data(c: &certificate::Model) -> EventSubject {
    EventSubject::Certificate(CertificateData {
        number: c.number.clone(),
        status: c.status,
        scope: c.scope.clone(),
        standard: c.standard,
        issued_on: c.issued_on,
        expires_on: c.expires_on,
        surveillances_completed: c.surveillances_completed,
    })
}
