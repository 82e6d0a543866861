//! Delivering one notification: claim it with a lease, render it, hand it to the mailer, record
//! the outcome. Safe to run twice for the same notification: only one run holds the lease.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::reminders::{NotificationStatus, StepKind};
use entities::domain::{FindingGrade, SuspensionCause};
use entities::orm::{deadline, engagement, notification, prelude::*};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use engine::Engine;
use engine::store::{Writer, begin_write};
use engine::webhooks::data::{event_of, reminder_data};
use engine::webhooks::outbox::{append_about_email, append_numbered};
use entities::domain::webhooks::WebhookEventType;

use crate::error::WorkerError;
use crate::mailer::{MailError, Mailer, mask};
use crate::templates::{ReminderFacts, Templates};

/// What the deliveries share.
#[derive(Debug)]
pub struct DeliveryContext {
    /// The database (its read pool and its writer) and the clock.
    pub engine: Engine,
    /// Where emails go.
    pub mailer: Mailer,
    /// The email templates.
    pub templates: Templates,
    /// The sender.
    pub from: Mailbox,
    /// Tries before `failed`.
    pub max_attempts: u32,
    /// How long a delivery holds a notification before another may take it over.
    pub lease: Duration,
    /// How people reach the API, for links.
    pub public_base_url: String,
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The mail server accepted it.
    Sent,
    /// Another delivery holds it, or it is not due yet, or it was handled already.
    NothingToDo,
    /// Its deadline closed first.
    Cancelled,
    /// A transient failure; it will be tried again after a backoff.
    WillRetry,
    /// It failed for good (permanent refusal, or out of tries).
    Failed,
}

/// The wait before try `attempt + 1`: 30 s, doubling, at most an hour.
pub fn backoff(attempt: i32) -> Duration {
    let doublings = std::cmp::min(u32::try_from(attempt.saturating_sub(1)).unwrap_or(0), 7);
    Duration::seconds(30 * 2_i64.pow(doublings)).min(Duration::hours(1))
}

/// Delivers notification `id`.
#[tracing::instrument(name = "deliver notification", skip_all, fields(notification_id = %id))]
pub async fn deliver(context: &DeliveryContext, id: Uuid) -> Result<DeliveryOutcome, WorkerError> {
    let now = context.engine.clock.now();
    let claimable = Condition::any()
        .add(
            notification::Column::Status
                .eq(NotificationStatus::Pending)
                .and(notification::Column::NextAttemptAt.lte(now)),
        )
        .add(
            notification::Column::Status.eq(NotificationStatus::Sending).and(notification::Column::LeaseUntil.lt(now)),
        );
    let claimed = Notification::update_many()
        .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Sending))
        .col_expr(notification::Column::LeaseUntil, Expr::value(now + context.lease))
        .col_expr(notification::Column::Attempts, Expr::col(notification::Column::Attempts).add(1))
        .filter(notification::Column::Id.eq(id))
        .filter(claimable)
        .exec_with_returning(&context.engine.writer)
        .await?;
    let Some(notification) = claimed.into_iter().next() else {
        return Ok(DeliveryOutcome::NothingToDo);
    };
    let (messages, about) = match prepare(context, &notification, now).await {
        Ok(Prepared::Messages(messages, about)) => (messages, about),
        Ok(Prepared::Done(outcome)) => return Ok(outcome),
        Err(error) => {
            // Nothing was sent: hand the claim back so the next scan queues it again at once.
            let released = Notification::update_many()
                .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Pending))
                .col_expr(notification::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(notification::Column::QueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(notification::Column::Id.eq(id))
                .filter(notification::Column::Status.eq(NotificationStatus::Sending))
                .exec(&context.engine.writer)
                .await;
            if let Err(release_error) = released {
                tracing::warn!(%release_error, "could not hand the claim back; its lease will expire");
            }
            return Err(error);
        }
    };
    // One message per recipient, from the first not yet served: a retry never sends again to
    // those who had theirs. A recipient whose server refuses does not hold up the others: the
    // recipients are kept in the order [served, not yet tried, refused], `recipients_sent` counting
    // the served, so a retry tries only the refused ones.
    let recipients = entities::orm::strings_of(&notification.recipients);
    let served_before = usize::try_from(notification.recipients_sent).unwrap_or(0).min(recipients.len());
    let mut served: Vec<String> = recipients[..served_before].to_vec();
    let mut refused: Vec<(String, MailError)> = Vec::new();
    for (recipient, message) in recipients.iter().zip(messages).skip(served_before) {
        match context.mailer.send(message).await {
            Ok(()) => served.push(recipient.clone()),
            Err(error) => {
                tracing::warn!(recipient = %mask(recipient), %error, "a recipient's message not handed over; the others go on");
                refused.push((recipient.clone(), error));
                continue;
            }
        }
        let untried = recipients.iter().skip(served.len() + refused.len());
        let order = served.iter().chain(untried).chain(refused.iter().map(|(r, _)| r));
        if served.len() < recipients.len() && !record_progress(context, &notification, order, served.len()).await {
            tracing::warn!(
                sent_to = served.len(),
                "the lease ended and another delivery holds the notification: stopping"
            );
            return Ok(DeliveryOutcome::NothingToDo);
        }
    }
    let sent_to = served.len();
    let order: Vec<&String> = served.iter().chain(refused.iter().map(|(r, _)| r)).collect();
    let order = entities::orm::json_strings(&order);
    let sent = match refused.into_iter().next() {
        None => Ok(()),
        Some((_, first)) => Err(first),
    };
    // An email may have left: never hand the claim back now. Recording the outcome is retried;
    // if it still fails, the lease ends and the last email may go out once more (same Message-ID).
    let mut tries = 0;
    loop {
        match record_outcome(context, notification.clone(), sent.clone(), (&order, sent_to), &about, now).await {
            Ok(outcome) => return Ok(outcome),
            Err(error) if tries < 3 => {
                tries += 1;
                tracing::warn!(error = ?error, tries, "could not record the delivery: trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * tries)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Records the recipients in `order`, of which the first `sent_to` have their message, and extends
/// the lease for the next one; `false` when another delivery took the notification over (this one
/// stops sending). A failure to write is only logged: the outcome records them again.
async fn record_progress<'a>(
    context: &DeliveryContext,
    notification: &notification::Model,
    order: impl Iterator<Item = &'a String>,
    sent_to: usize,
) -> bool {
    let order: Vec<&String> = order.collect();
    let recorded = Notification::update_many()
        .col_expr(notification::Column::Recipients, Expr::value(entities::orm::json_strings(&order)))
        .col_expr(notification::Column::RecipientsSent, Expr::value(i32::try_from(sent_to).unwrap_or(i32::MAX)))
        .col_expr(notification::Column::LeaseUntil, Expr::value(context.engine.clock.now() + context.lease))
        .filter(still_ours(notification))
        .exec(&context.engine.writer)
        .await;
    match recorded {
        Ok(done) => done.rows_affected > 0,
        Err(error) => {
            tracing::warn!(%error, sent_to, "could not record a recipient's message as sent");
            true
        }
    }
}

/// What an email is about, as read to compose it: what its webhook event tells.
struct About {
    engagement: engagement::Model,
    deadline: deadline::Model,
}

/// What a claimed notification comes to before sending.
enum Prepared {
    /// The emails to send: one per recipient, in the order of the recipients.
    Messages(Vec<Message>, Box<About>),
    /// Nothing to send; the outcome is recorded.
    Done(DeliveryOutcome),
}

async fn prepare(
    context: &DeliveryContext,
    notification: &notification::Model,
    now: DateTime<Utc>,
) -> Result<Prepared, WorkerError> {
    let deadline = Deadline::find_by_id(notification.deadline_id).one(&context.engine.db).await?;
    let Some(deadline) = deadline.filter(|d| d.status == DeadlineStatus::Open) else {
        record(&context.engine.writer, notification, NotificationStatus::Cancelled, None, now).await?;
        tracing::info!("deadline no longer open: notification cancelled");
        return Ok(Prepared::Done(DeliveryOutcome::Cancelled));
    };
    match compose(context, notification, &deadline, now).await? {
        Ok((messages, engagement)) => Ok(Prepared::Messages(messages, Box::new(About { engagement, deadline }))),
        Err(problem) => {
            tracing::error!(%problem, "notification cannot be composed");
            record(&context.engine.writer, notification, NotificationStatus::Failed, Some(problem), now).await?;
            Ok(Prepared::Done(DeliveryOutcome::Failed))
        }
    }
}

/// Records how the delivery ended: `recipients` in their new order (served first), of which the
/// first `sent_to` have their message.
async fn record_outcome(
    context: &DeliveryContext,
    notification: notification::Model,
    sent: Result<(), MailError>,
    (order, sent_to): (&serde_json::Value, usize),
    about: &About,
    now: DateTime<Utc>,
) -> Result<DeliveryOutcome, WorkerError> {
    let sent_to = i32::try_from(sent_to).unwrap_or(i32::MAX);
    let recipients: Vec<String> = entities::orm::strings_of(order).iter().map(|r| mask(r)).collect();
    // Written only while this delivery still holds the claim (see `still_ours`).
    let update = Notification::update_many()
        .col_expr(notification::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(notification::Column::Recipients, Expr::value(order.clone()))
        .col_expr(notification::Column::RecipientsSent, Expr::value(sent_to))
        .filter(still_ours(&notification));
    let failure = sent.as_ref().err().map(ToString::to_string);
    let (update, outcome) = match sent {
        Ok(()) => {
            let message_id = message_id(notification.id);
            tracing::info!(%message_id, recipients = ?recipients, "notification sent");
            let update = update
                .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Sent))
                .col_expr(notification::Column::SentAt, Expr::value(Some(now)))
                .col_expr(notification::Column::MessageId, Expr::value(Some(message_id)))
                .col_expr(notification::Column::LastError, Expr::value(Option::<String>::None));
            (update, DeliveryOutcome::Sent)
        }
        Err(error) if u32::try_from(notification.attempts).unwrap_or(u32::MAX) < context.max_attempts => {
            // A 5xx is usually final, but a mail server in trouble answers 5xx too: every refusal
            // is tried again with backoff until the last try.
            let retry_at = now + backoff(notification.attempts);
            let permanent = matches!(error, MailError::Permanent(_));
            tracing::warn!(%error, permanent, attempts = notification.attempts, %retry_at, "notification not sent: will retry");
            let update = update
                .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Pending))
                .col_expr(notification::Column::NextAttemptAt, Expr::value(retry_at))
                .col_expr(notification::Column::QueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(notification::Column::LastError, Expr::value(Some(error.to_string())));
            (update, DeliveryOutcome::WillRetry)
        }
        Err(error) => {
            tracing::error!(%error, attempts = notification.attempts, recipients = ?recipients, "notification failed for good");
            let update = update
                .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Failed))
                .col_expr(notification::Column::LastError, Expr::value(Some(error.to_string())));
            (update, DeliveryOutcome::Failed)
        }
    };
    // The outcome and the webhook event telling it commit together.
    let txn = begin_write(&context.engine.writer).await?;
    if update.exec(&txn).await?.rows_affected == 0 {
        tracing::warn!("the lease ended and another delivery holds the notification: its outcome is that one's");
        return Ok(DeliveryOutcome::NothingToDo);
    }
    let told = match outcome {
        DeliveryOutcome::Sent => WebhookEventType::of_step_sent(notification.kind).map(|t| (t, None)),
        DeliveryOutcome::Failed => Some((WebhookEventType::NotificationFailed, failure)),
        _ => None,
    };
    if let Some((event_type, error)) = told {
        let told = reminder_data(&about.deadline, &notification, error);
        append_numbered(&txn, &event_of(event_type, &about.engagement, told), now).await?;
    }
    txn.commit().await?;
    Ok(outcome)
}

/// The notification as this delivery claimed it: still `sending`, and not claimed again since (a
/// claim counts an attempt). A delivery whose lease ended and was taken over writes nothing.
fn still_ours(notification: &notification::Model) -> Condition {
    Condition::all()
        .add(notification::Column::Id.eq(notification.id))
        .add(notification::Column::Status.eq(NotificationStatus::Sending))
        .add(notification::Column::Attempts.eq(notification.attempts))
}

fn grade_in_words(grade: FindingGrade) -> &'static str {
    match grade {
        FindingGrade::MajorNc => "major nonconformity",
        FindingGrade::MinorNc => "minor nonconformity",
        FindingGrade::Ofi => "opportunity for improvement",
    }
}

fn message_id(id: Uuid) -> String {
    format!("<{id}@certflow>")
}

/// Ends the claim with `status` (and `error`), while this delivery still holds it.
async fn record(
    writer: &Writer,
    notification: &notification::Model,
    status: NotificationStatus,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), WorkerError> {
    let mut update = Notification::update_many()
        .col_expr(notification::Column::Status, Expr::value(status))
        .col_expr(notification::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(still_ours(notification));
    if error.is_some() {
        update = update.col_expr(notification::Column::LastError, Expr::value(error.clone()));
    }
    let txn = begin_write(writer).await?;
    let recorded = update.exec(&txn).await?.rows_affected > 0;
    if recorded && status == NotificationStatus::Failed {
        append_about_email(&txn, WebhookEventType::NotificationFailed, notification, error, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// What a notice tells, in words, and what happens next (the deadline it comes with is the
/// suspension's limit).
fn notice_of(engagement: &engagement::Model) -> (String, String) {
    let cause = match engagement.suspension_cause {
        Some(SuspensionCause::MissedAudit) => "a surveillance audit was not held in time",
        Some(SuspensionCause::Failure) => "a persistent or serious failure of the ISMS",
        Some(SuspensionCause::ClientRequest) => "the client's request",
        None => "see the engagement's history",
    };
    (
        format!("the certificate is suspended ({cause})"),
        "it is not valid while suspended; restore it once the cause is resolved, or reduce its scope, by the date below, or it is withdrawn".into(),
    )
}

/// What is due, in words, more about it, and what the client wrote about it (quoted as such).
async fn describe(
    db: &DatabaseConnection,
    deadline: &deadline::Model,
) -> Result<(String, String, Vec<String>), WorkerError> {
    let mut client_text = Vec::new();
    let described = match deadline.kind {
        DeadlineKind::CorrectiveActionDue => {
            let action = match deadline.subject_id {
                Some(id) => CorrectiveAction::find_by_id(id).one(db).await?,
                None => None,
            };
            let finding = match &action {
                Some(action) => Finding::find_by_id(action.finding_id).one(db).await?,
                None => None,
            };
            match (action, finding) {
                (Some(action), Some(finding)) => {
                    client_text = action.corrective_action.lines().map(str::to_owned).collect();
                    (
                        format!(
                            "The corrective action for the {} on {}",
                            grade_in_words(finding.grade),
                            finding.reference
                        ),
                        format!("corrective action {} (the client's plan is quoted below)", action.id),
                    )
                }
                _ => ("A corrective action".into(), "see the engagement's corrective actions".into()),
            }
        }
        DeadlineKind::CorrectiveActionPlanDue => {
            let finding = match deadline.subject_id {
                Some(id) => Finding::find_by_id(id).one(db).await?,
                None => None,
            };
            match finding {
                Some(finding) => (
                    format!(
                        "The corrective-action plan for the {} on {}",
                        grade_in_words(finding.grade),
                        finding.reference
                    ),
                    format!("{} (finding {})", finding.description, finding.id),
                ),
                None => ("A corrective-action plan".into(), "see the engagement's findings".into()),
            }
        }
        DeadlineKind::CorrectiveActionVerification => (
            "The certification body's verification of a corrective action reported done".into(),
            format!("corrective action {}", deadline.subject_id.map(|id| id.to_string()).unwrap_or_default()),
        ),
        DeadlineKind::MajorNcLimit => (
            "Verification of every major nonconformity".into(),
            "ISO/IEC 17021-1: past this date a new stage 2 is required before certification".into(),
        ),
        DeadlineKind::SurveillanceDue => {
            ("The surveillance audit".into(), "surveillance audits are due at least once a year".into())
        }
        DeadlineKind::CertificateExpiry => {
            ("The recertification decision".into(), "the certificate expires on this date unless recertified".into())
        }
        DeadlineKind::Stage1Validity => {
            ("The start of stage 2".into(), "after this date the stage 1 result needs a recorded confirmation".into())
        }
        DeadlineKind::SuspensionLimit => (
            "The resolution of the suspension".into(),
            "past this date the certificate is withdrawn or its scope reduced".into(),
        ),
        DeadlineKind::RestoreAfterExpiryLimit => {
            ("Restoring the expired certification".into(), "past this date a new stage 2 is needed".into())
        }
    };
    Ok((described.0, described.1, client_text))
}

/// Builds the email, or says why it cannot be built (a permanent problem).
async fn compose(
    context: &DeliveryContext,
    notification: &notification::Model,
    deadline: &deadline::Model,
    now: DateTime<Utc>,
) -> Result<Result<(Vec<Message>, engagement::Model), String>, WorkerError> {
    let engagement = Engagement::find_by_id(deadline.engagement_id).one(&context.engine.db).await?;
    let Some(engagement) = engagement else { return Ok(Err("the engagement no longer exists".into())) };
    let organization = Organization::find_by_id(engagement.organization_id).one(&context.engine.db).await?;
    let body = match engagement.certification_body_id {
        Some(id) => CertificationBody::find_by_id(id).one(&context.engine.db).await?,
        None => None,
    };
    let (what, detail, client_text) = match notification.kind {
        StepKind::Notice => {
            let (what, detail) = notice_of(&engagement);
            (what, detail, Vec::new())
        }
        _ => describe(&context.engine.db, deadline).await?,
    };
    let days_until = (deadline.due_on - now.date_naive()).num_days();
    let facts = ReminderFacts {
        notification_id: notification.id.to_string(),
        step_key: notification.step_key.clone(),
        what,
        detail,
        client_text,
        due_on: deadline.due_on.to_string(),
        days_until: std::cmp::max(days_until, 0),
        days_late: std::cmp::max(-days_until, 0),
        organization: organization.map(|o| o.legal_name).unwrap_or_default(),
        certification_body: body.map(|b| b.name).unwrap_or_else(|| "(not selected yet)".into()),
        engagement_id: engagement.id.to_string(),
        engagement_state: engagement.state.to_string(),
        owner_email: deadline.owner_email.clone(),
        roles: match notification.kind {
            StepKind::Reminder => "a person responsible for it".into(),
            StepKind::Escalation => "a person responsible or accountable for it".into(),
            StepKind::Notice => "a party to it".into(),
        },
        // The engagement's page at this deadline (sign-in first if needed): it opens for the
        // recipient and for no one outside the engagement's scope.
        link: format!(
            "{}/engagements/{}?deadline={}#deadline-{}",
            context.public_base_url.trim_end_matches('/'),
            engagement.id,
            deadline.id,
            deadline.id
        ),
    };
    let rendered = match context.templates.render(notification.kind, &facts) {
        Ok(rendered) => rendered,
        Err(error) => return Ok(Err(format!("template error: {error}"))),
    };
    let recipients = entities::orm::strings_of(&notification.recipients);
    if recipients.is_empty() {
        return Ok(Err("no recipient".into()));
    }
    // One message per recipient, each addressed to that recipient alone: no one learns another's
    // address. The copies share the notification's Message-ID (one message, several recipients).
    let mut messages = Vec::with_capacity(recipients.len());
    for recipient in &recipients {
        let mailbox = match recipient.parse::<Mailbox>() {
            Ok(mailbox) => mailbox,
            Err(error) => return Ok(Err(format!("invalid recipient {}: {error}", mask(recipient)))),
        };
        let message = Message::builder()
            .from(context.from.clone())
            .to(mailbox)
            .subject(rendered.subject.clone())
            .message_id(Some(message_id(notification.id)))
            .multipart(MultiPart::alternative_plain_html(rendered.text.clone(), rendered.html.clone()));
        match message {
            Ok(message) => messages.push(message),
            Err(error) => return Ok(Err(format!("the email cannot be built: {error}"))),
        }
    }
    Ok(Ok((messages, engagement)))
}

/// Shared delivery context for jobs.
pub type SharedDeliveryContext = Arc<DeliveryContext>;

#[cfg(test)]
mod tests {
    use super::backoff;
    use chrono::Duration;

    #[test]
    fn backoff_doubles_from_30_seconds_up_to_an_hour() {
        let waits: Vec<Duration> = (1..=9).map(backoff).collect();
        assert_eq!(waits[0], Duration::seconds(30));
        assert_eq!(waits[1], Duration::seconds(60));
        assert_eq!(waits[3], Duration::seconds(240));
        assert_eq!(waits[8], Duration::hours(1));
    }
}
