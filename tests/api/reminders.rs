//! Reminders and escalations by email, through a real SMTP server: each exactly once, on its day,
//! to the right people; stopped when the deadline closes; never lost while the server refuses.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;
use crate::smtp::{SmtpSink, closed_port};

/// An engagement in `corrective_actions` whose one minor NC (stage 2 ended on day 43) has a
/// corrective action owned by sre@acme.test and due on day 80. Returns (engagement, action).
async fn engagement_with_a_cap_item_due_on_day_80(app: &TestApp) -> (String, String) {
    let (engagement, stage2, minor) = app.stage2_with_finding("minor_nc", "A.8.13").await;
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    let action = app.submit_corrective_action(&engagement, &minor, Some(day(80))).await.expect(201).str("id");
    (engagement, action)
}

fn sorted(mut addresses: Vec<String>) -> Vec<String> {
    addresses.sort();
    addresses
}

fn statuses(notifications: &[Value]) -> Vec<(String, String)> {
    notifications
        .iter()
        .map(|n| (n["step_key"].as_str().unwrap().to_owned(), n["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn a_cap_item_gets_its_three_reminders_and_two_escalations_each_once_on_its_day(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, _) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(smtp.port).await;

    // Act: the clock walks from 14 days before the due date to 8 days after, one scan a day,
    // and every scan runs twice (a duplicate cron tick must change nothing).
    for n in 66..=88 {
        app.set_today(day(n));
        worker.tick().await;
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
    }

    // Assert: five emails, each once, each on its day, to the right people, each recipient's
    // message addressed to that recipient alone (copies of one email share its Message-ID).
    let received = smtp.received();
    received.iter().for_each(crate::smtp::ReceivedEmail::assert_to_one_recipient);
    let mut emails: Vec<(String, String, Vec<String>)> = Vec::new();
    for message in &received {
        match emails.iter_mut().find(|(id, _, _)| *id == message.message_id()) {
            Some((_, _, to)) => to.push(message.to[0].clone()),
            None => emails.push((message.message_id(), message.subject(), message.to.clone())),
        }
    }
    let got: Vec<(String, Vec<String>)> =
        emails.iter().map(|(_, subject, to)| (subject.clone(), sorted(to.clone()))).collect();
    let owner = vec!["sre@acme.test".to_owned()];
    let expected = vec![
        (
            "[certflow] The corrective action for the minor nonconformity on A.8.13 due in 14 days (2026-03-26) - Acme Data Ltd",
            owner.clone(),
        ),
        (
            "[certflow] The corrective action for the minor nonconformity on A.8.13 due in 7 days (2026-03-26) - Acme Data Ltd",
            owner.clone(),
        ),
        (
            "[certflow] The corrective action for the minor nonconformity on A.8.13 due in 1 day (2026-03-26) - Acme Data Ltd",
            owner.clone(),
        ),
        (
            "[certflow] ESCALATION: The corrective action for the minor nonconformity on A.8.13 due today (2026-03-26) - Acme Data Ltd",
            sorted(vec!["sre@acme.test".into(), "isms@acme.test".into()]),
        ),
        (
            "[certflow] ESCALATION: The corrective action for the minor nonconformity on A.8.13 7 days overdue (2026-03-26) - Acme Data Ltd",
            sorted(vec![
                "sre@acme.test".into(),
                "isms@acme.test".into(),
                "coordinator@cb.test".into(),
                "ceo@acme.test".into(),
            ]),
        ),
    ];
    let expected: Vec<(String, Vec<String>)> = expected.into_iter().map(|(s, to)| (s.to_owned(), to)).collect();
    assert_eq!(got, expected);
    let body = &received.iter().rfind(|m| m.message_id() == emails[4].0).unwrap().data;
    for fact in ["Acme Data Ltd", "Trusted Certification Ltd", &engagement, "7 days late", "#deadline-"] {
        assert!(body.contains(fact), "the escalation does not name {fact}");
    }
    assert!(
        body.contains("Content-Type: text/plain") && body.contains("Content-Type: text/html"),
        "plain text and HTML parts"
    );

    // The API shows what was sent to whom and when; Message-IDs carry the notification ids.
    let notifications = app.notifications(&engagement).await;
    assert_eq!(
        statuses(&notifications),
        [
            ("reminder-14", "sent"),
            ("reminder-7", "sent"),
            ("reminder-1", "sent"),
            ("escalation+0", "sent"),
            ("escalation+7", "sent")
        ]
        .map(|(k, s)| (k.to_owned(), s.to_owned()))
    );
    for (notification, (message_id, _, _)) in notifications.iter().zip(&emails) {
        assert_eq!(notification["message_id"].as_str().unwrap(), message_id);
        assert_eq!(notification["attempts"], 1);
    }
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    let cap = deadlines.body.as_array().unwrap().iter().find(|d| d["kind"] == "corrective_action_due").unwrap().clone();
    assert_eq!((cap["overdue"].as_bool(), cap["status"].as_str()), (Some(true), Some("open")));
}
on_both_databases!(a_cap_item_gets_its_three_reminders_and_two_escalations_each_once_on_its_day);

async fn each_recipient_gets_its_own_message_and_a_retry_sends_only_to_those_still_waiting(backend: Backend) {
    // Arrange: the due-day escalation goes to the owner, then the engagement's manager; the mail
    // server defers the manager's address.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, _) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(smtp.port).await;
    let escalations = |smtp: &SmtpSink| -> Vec<String> {
        let mut to: Vec<String> = smtp
            .received()
            .into_iter()
            .filter(|m| m.subject().contains("ESCALATION"))
            .inspect(crate::smtp::ReceivedEmail::assert_to_one_recipient)
            .map(|m| m.to[0].clone())
            .collect();
        to.sort();
        to
    };
    smtp.defer(Some("isms@acme.test"));

    // Act 1: the escalation's day.
    app.set_today(day(80));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Assert 1: the owner has hers; the manager's waits for a retry.
    assert_eq!(escalations(&smtp), ["sre@acme.test"]);
    let pending = app.notifications(&engagement).await.into_iter().find(|n| n["step_key"] == "escalation+0").unwrap();
    assert_eq!((pending["status"].as_str(), pending["attempts"].as_i64()), (Some("pending"), Some(1)), "{pending}");

    // Act 2: the server accepts again; the retry's time comes.
    smtp.defer(None);
    app.set_now(app.clock.now() + chrono::Duration::minutes(5));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Assert 2: the manager has his, and the owner did not get hers twice.
    assert_eq!(escalations(&smtp), ["isms@acme.test", "sre@acme.test"]);
    let sent = app.notifications(&engagement).await.into_iter().find(|n| n["step_key"] == "escalation+0").unwrap();
    assert_eq!((sent["status"].as_str(), sent["attempts"].as_i64()), (Some("sent"), Some(2)), "{sent}");
}
on_both_databases!(each_recipient_gets_its_own_message_and_a_retry_sends_only_to_those_still_waiting);

async fn a_recipient_whose_server_refuses_holds_up_no_other(backend: Backend) {
    // Arrange: the due-day escalation goes to the owner, then the engagement's manager; the mail
    // server defers the owner's address, the first of the two.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, _) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(smtp.port).await;
    let escalated_to = |smtp: &SmtpSink| -> Vec<String> {
        let mut to: Vec<String> = smtp
            .received()
            .into_iter()
            .filter(|m| m.subject().contains("ESCALATION"))
            .map(|m| m.to[0].clone())
            .collect();
        to.sort();
        to
    };
    let escalation = || async {
        app.notifications(&engagement).await.into_iter().find(|n| n["step_key"] == "escalation+0").unwrap()
    };
    smtp.defer(Some("sre@acme.test"));

    // Act 1: the escalation's day.
    app.set_today(day(80));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Assert 1: the manager has hers at once; the owner's waits for a retry, and only the owner's.
    assert_eq!(escalated_to(&smtp), ["isms@acme.test"]);
    let pending = escalation().await;
    assert_eq!((pending["status"].as_str(), pending["attempts"].as_i64()), (Some("pending"), Some(1)), "{pending}");
    assert!(pending["last_error"].as_str().is_some_and(|e| e.contains("451")), "{pending}");

    // Act 2: the server accepts the owner again; the retry's time comes.
    smtp.defer(None);
    app.set_now(app.clock.now() + chrono::Duration::minutes(5));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Assert 2: each has exactly one.
    assert_eq!(escalated_to(&smtp), ["isms@acme.test", "sre@acme.test"]);
    let sent = escalation().await;
    assert_eq!((sent["status"].as_str(), sent["attempts"].as_i64()), (Some("sent"), Some(2)), "{sent}");
    let mut recipients: Vec<&str> =
        sent["recipients"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, ["isms@acme.test", "sre@acme.test"], "no recipient lost or added");
}
on_both_databases!(a_recipient_whose_server_refuses_holds_up_no_other);

async fn closing_the_finding_before_its_due_date_cancels_the_remaining_steps(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, action) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(smtp.port).await;
    app.set_today(day(66));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    assert_eq!(smtp.received().len(), 1, "the 14-day reminder");

    // Act: the CB accepts the corrective action on day 70; the finding closes, the deadline is met.
    app.set_today(day(70));
    app.verify_corrective_action(&engagement, &action, "accepted").await.expect(200);
    for n in [73, 79, 80, 87, 90] {
        app.set_today(day(n));
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
    }

    // Assert: nothing more was sent or claimed.
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(statuses(&app.notifications(&engagement).await), [("reminder-14".to_owned(), "sent".to_owned())]);
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    assert!(
        deadlines.body.as_array().unwrap().iter().any(|d| d["kind"] == "corrective_action_due" && d["status"] == "met")
    );
}
on_both_databases!(closing_the_finding_before_its_due_date_cancels_the_remaining_steps);

async fn a_moved_due_date_gets_a_fresh_schedule(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, action) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(smtp.port).await;
    app.set_today(day(66));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Act: the due date moves from day 80 to day 100 (57 days after the audit).
    let mut revised =
        app.get(&format!("/api/v1/engagements/{engagement}/corrective-actions")).await.expect(200).items().body[0]
            .clone();
    let body = json!({
        "root_cause": revised["root_cause"].take(), "correction": revised["correction"].take(),
        "corrective_action": revised["corrective_action"].take(), "owner_email": "sre@acme.test", "due_on": day(100)
    });
    app.put(&format!("/api/v1/engagements/{engagement}/corrective-actions/{action}"), &body).await.expect(200);
    for n in [73, 80, 86] {
        app.set_today(day(n));
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
    }

    // Assert: the old schedule stopped; the new one sent its 14-day reminder on day 86.
    let subjects: Vec<String> = smtp.received().iter().map(|m| m.subject()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("in 14 days (2026-03-26)") && subjects[1].contains("in 14 days (2026-04-15)"),
        "{subjects:?}"
    );
}
on_both_databases!(a_moved_due_date_gets_a_fresh_schedule);

async fn a_refusing_mail_server_loses_nothing_and_doubles_nothing(backend: Backend) {
    // Arrange: the SMTP port is closed at first.
    let app = spawn_app(backend).await;
    let port = closed_port();
    let (engagement, _) = engagement_with_a_cap_item_due_on_day_80(&app).await;
    let worker = app.spawn_worker(port).await;

    // Act 1: the port is closed.
    app.set_today(day(66));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    let first = app.notifications(&engagement).await;
    assert_eq!((first[0]["status"].as_str(), first[0]["attempts"].as_i64()), (Some("pending"), Some(1)));
    assert!(first[0]["last_error"].is_string());

    // Act 2: the server is up but answers 451 for a while; the clock passes the backoffs.
    let smtp = SmtpSink::start_on_port(port);
    smtp.refuse(true);
    let mut now = app.clock.now();
    for _ in 0..2 {
        now += chrono::Duration::hours(1);
        app.clock.set(now);
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
    }
    let refused = app.notifications(&engagement).await;
    assert_eq!((refused[0]["status"].as_str(), refused[0]["attempts"].as_i64()), (Some("pending"), Some(3)));
    assert!(smtp.received().is_empty());

    // Act 3: the server accepts again.
    smtp.refuse(false);
    now += chrono::Duration::hours(1);
    app.clock.set(now);
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;

    // Assert: delivered exactly once after four tries.
    assert_eq!(smtp.received().len(), 1);
    let sent = app.notifications(&engagement).await;
    assert_eq!((sent[0]["status"].as_str(), sent[0]["attempts"].as_i64()), (Some("sent"), Some(4)));
}
on_both_databases!(a_refusing_mail_server_loses_nothing_and_doubles_nothing);

async fn the_clock_expires_a_lapsed_certificate_once_after_its_expiry_escalation_went_out(backend: Backend) {
    // Arrange: certified on day 44, the certificate expires on 2029-02-18; the worker's first tick
    // after that is the day after.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let engagement = app.certified_engagement().await;
    let worker = app.spawn_worker(smtp.port).await;
    let expiry = chrono::NaiveDate::from_ymd_opt(2029, 2, 18).unwrap();
    app.set_today(expiry);
    assert_eq!(worker.tick().await.expired, 0, "valid through its expiry date");
    app.wait_for_deliveries(&engagement).await;
    let deadline_ids = |kind: &'static str| {
        let app = &app;
        let engagement = engagement.clone();
        async move {
            let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
            deadlines
                .body
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"] == kind)
                .map(|d| d["id"].clone())
                .collect::<Vec<_>>()
        }
    };
    let expiry_deadline = deadline_ids("certificate_expiry").await;
    let escalated = app.notifications(&engagement).await.into_iter().any(|n| {
        expiry_deadline.contains(&n["deadline_id"])
            && n["step_key"].as_str().unwrap().starts_with("escalation")
            && n["status"] == "sent"
    });
    assert!(escalated, "the expiry-day escalation went out first");

    // Act: the day after, the clock expires it, once.
    app.set_today(expiry.succ_opt().unwrap());
    let ticks = [worker.tick().await.expired, worker.tick().await.expired];

    // Assert
    assert_eq!(ticks, [1, 0], "expired at the first tick, and only once");
    let expired = app.engagement(&engagement).await.expect(200);
    assert_eq!(expired.str("state"), "expired");
    assert_eq!(expired.body["expired_on"], "2029-02-18");
    assert_eq!(expired.body["open_deadlines"][0]["kind"], "restore_after_expiry_limit");
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(certificate.str("status"), "expired");
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let expiries: Vec<&Value> = history.body.as_array().unwrap().iter().filter(|h| h["action"] == "expire").collect();
    assert_eq!(expiries.len(), 1);
    // No surveillance audit was ever held: the clock had suspended it (cause missed_audit) first.
    assert_eq!(
        (expiries[0]["actor"].as_str(), expiries[0]["from_state"].as_str()),
        (Some("certflow-clock"), Some("suspended"))
    );
}
on_both_databases!(the_clock_expires_a_lapsed_certificate_once_after_its_expiry_escalation_went_out);

async fn the_clock_waits_for_an_unsent_expiry_escalation_and_leaves_a_valid_certificate_alone(backend: Backend) {
    // Arrange: two certified engagements; the worker was down from before the first one's expiry
    // until the day after it. The second one was certified a year later.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let lapsed = app.certified_engagement().await;
    let valid = app.engagement_in_stage2().await;
    let stage2 = app.create_audit(&valid, "stage2", day(400), day(403)).await;
    app.set_today(day(404));
    let confirmed = json!({ "event": "complete_stage2", "audit_id": stage2, "stage1_still_valid": "scope unchanged" });
    app.fire(&valid, confirmed).await.expect(200);
    app.grant(&valid).await.expect(200);
    let worker = app.spawn_worker(smtp.port).await;
    app.set_today(chrono::NaiveDate::from_ymd_opt(2029, 2, 19).unwrap());

    // Act / Assert: the first tick claims the overdue escalation and leaves the certificate for
    // the next tick, once the escalation is sent (the mail server takes its time, so the email
    // cannot be out before the tick ends).
    smtp.slow_down(3000);
    assert_eq!(worker.tick().await.expired, 0, "its expiry escalation is claimed, not yet sent");
    assert_eq!(app.engagement(&lapsed).await.expect(200).str("state"), "certified");
    smtp.slow_down(0);
    app.wait_for_deliveries(&lapsed).await;
    // The second one's missed-surveillance escalation was claimed by the same tick; the clock
    // suspends it only once that escalation is sent too.
    app.wait_for_deliveries(&valid).await;
    let second = worker.tick().await;
    // Both missed their surveillance audits: both are suspended, and the lapsed one then expires.
    assert_eq!((second.expired, second.suspended), (1, 2));
    assert_eq!(app.engagement(&lapsed).await.expect(200).str("state"), "expired");
    // Not expired before its date (its surveillance audits were missed, so it is suspended).
    assert_eq!(app.engagement(&valid).await.expect(200).str("state"), "suspended", "not expired before its date");
    assert!(smtp.received().iter().any(|m| m.subject().contains("2029-02-18")), "the escalation names the expiry date");
}
on_both_databases!(the_clock_waits_for_an_unsent_expiry_escalation_and_leaves_a_valid_certificate_alone);
