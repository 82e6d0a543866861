//! Each certification body's certification policy is data: CAP days per grade, stage 1 validity,
//! the suspension limit, the clock's graces and the body's time zone, in which "today", every
//! date rule and the reminders' morning are reckoned.

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::{Value, json};

use api::auth::Role;

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

fn policy_path(cb: &str) -> String {
    format!("/api/v1/certification-bodies/{cb}/certification-policy")
}

/// The certification body of `engagement`.
async fn body_of(app: &TestApp, engagement: &str) -> String {
    app.engagement(engagement).await.expect(200).str("certification_body_id")
}

/// Replaces `cb`'s certification policy with `policy`.
async fn set_policy(app: &TestApp, cb: &str, policy: Value) {
    app.put(&policy_path(cb), &policy).await.expect(200);
}

fn at(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    date.and_hms_opt(hour, minute, 0).unwrap().and_utc()
}

/// The due day of `engagement`'s open deadline of `kind`.
async fn due_on(app: &TestApp, engagement: &str, kind: &str) -> NaiveDate {
    let view = app.engagement(engagement).await.expect(200);
    let deadline = view.body["open_deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == kind).cloned();
    deadline.unwrap()["due_on"].as_str().unwrap().parse().unwrap()
}

async fn a_cb_reads_the_default_certification_policy_and_replaces_it_with_a_valid_one_only(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let cb = app.create_certification_body(true).await;
    let path = policy_path(&cb);

    // The defaults follow DOMAIN.md.
    let default = app.get(&path).await.expect(200);
    assert_eq!((default.body["is_default"].as_bool(), default.body["version"].as_i64()), (Some(true), Some(0)));
    assert_eq!(
        default.body["policy"],
        json!({
            "major_nc_due_days": 90, "minor_nc_due_days": 30, "verification_days": 14, "stage1_validity_months": 6,
            "suspension_limit_months": 6, "missed_surveillance_grace_days": 30, "withdrawal_grace_days": 30,
            "time_zone": "UTC"
        })
    );

    // CAP days outside 30–90 are refused by field; an unknown zone is a bad body. Nothing is saved.
    let refused = app.put(&path, &json!({ "major_nc_due_days": 91, "minor_nc_due_days": 20 })).await.expect(422);
    let fields: Vec<&str> =
        refused.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["major_nc_due_days", "minor_nc_due_days"]);
    let unknown_zone = app.put(&path, &json!({ "time_zone": "Mars/Olympus" })).await.expect(422);
    assert_eq!(unknown_zone.problem_type(), "invalid-body");
    assert!(unknown_zone.str("detail").contains("'Mars/Olympus' is not an IANA time zone name"));
    assert_eq!(app.get(&path).await.expect(200).body["is_default"], true, "nothing was saved");

    // A valid policy is saved with a version (a setting left out takes its default).
    let saved = app.put(&path, &json!({ "minor_nc_due_days": 45, "time_zone": "Europe/Berlin" })).await.expect(200);
    assert_eq!((saved.body["is_default"].as_bool(), saved.body["version"].as_i64()), (Some(false), Some(1)));
    let read = app.get(&path).await.expect(200);
    assert_eq!(
        (read.body["policy"]["minor_nc_due_days"].as_i64(), read.body["policy"]["major_nc_due_days"].as_i64()),
        (Some(45), Some(90))
    );
    assert_eq!(read.body["policy"]["time_zone"], "Europe/Berlin");

    // A writer that read version 0 is refused once version 1 is there.
    let stale = app
        .reply(
            app.client
                .put(format!("{}{path}", app.address))
                .bearer_auth(&app.token)
                .header("If-Match", "\"0\"")
                .json(&json!({})),
        )
        .await
        .expect(412);
    assert_eq!(stale.problem_type(), "version-mismatch");

    // The client reads the policy it is held to; it does not change it.
    let organization = app.create_organization(20).await;
    let client = app.token_for(Role::ClientManager, Some(&organization), None);
    let read_by_client = app.send_as(&client, reqwest::Method::GET, &path, None).await.expect(200);
    assert_eq!(read_by_client.body["version"], 1);
    app.send_as(&client, reqwest::Method::PUT, &path, Some(&json!({}))).await.expect(403);
}
on_both_databases!(a_cb_reads_the_default_certification_policy_and_replaces_it_with_a_valid_one_only);

async fn cap_days_apply_to_corrective_actions_submitted_after_the_change_only(backend: Backend) {
    // Arrange: a minor NC of a stage 2 that ended on day 43; its plan submitted under the defaults.
    let app = spawn_app(backend).await;
    let (engagement, audit, first) = app.stage2_with_finding("minor_nc", "A.8.13").await;
    let before = app.submit_corrective_action(&engagement, &first, None).await.expect(201);
    let second = app.record_finding(&engagement, &audit, "minor_nc", "A.5.15").await;

    // Act: the body gives minors 45 days; the second plan is submitted after.
    set_policy(&app, &body_of(&app, &engagement).await, json!({ "minor_nc_due_days": 45 })).await;
    let after = app.submit_corrective_action(&engagement, &second, None).await.expect(201);

    // Assert: the date already given stands; the new one follows the policy.
    assert_eq!(before.str("due_on"), (day(43) + Days::new(30)).to_string());
    assert_eq!(after.str("due_on"), (day(43) + Days::new(45)).to_string());
}
on_both_databases!(cap_days_apply_to_corrective_actions_submitted_after_the_change_only);

async fn the_clock_suspends_by_each_body_s_grace_counted_in_its_own_time_zone(backend: Backend) {
    // Arrange: two certificates with the same surveillance due day; both bodies give no grace,
    // one in Tokyo (UTC+9), one in UTC.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let tokyo = app.certified_engagement().await;
    let utc = app.certified_engagement().await;
    let no_grace = |zone: &str| json!({ "missed_surveillance_grace_days": 0, "time_zone": zone });
    set_policy(&app, &body_of(&app, &tokyo).await, no_grace("Asia/Tokyo")).await;
    set_policy(&app, &body_of(&app, &utc).await, no_grace("UTC")).await;
    let due = due_on(&app, &tokyo, "surveillance_due").await;
    assert_eq!(due, due_on(&app, &utc, "surveillance_due").await);
    let worker = app.spawn_worker(smtp.port).await;
    let tick_at = |now: DateTime<Utc>| {
        let (app, worker, tokyo, utc) = (&app, &worker, tokyo.clone(), utc.clone());
        async move {
            app.set_now(now);
            let first = worker.tick().await.suspended;
            app.wait_for_deliveries(&tokyo).await;
            app.wait_for_deliveries(&utc).await;
            first + worker.tick().await.suspended
        }
    };

    // Act / Assert: at 14:59 UTC on the due day it is still the due day in Tokyo: nothing moves.
    assert_eq!(tick_at(at(due, 14, 59)).await, 0);
    // At 15:00 UTC it is the next day in Tokyo: overdue there, not in UTC.
    assert_eq!(tick_at(at(due, 15, 0)).await, 1);
    let state = |engagement: String| {
        let app = &app;
        async move { app.engagement(&engagement).await.expect(200).str("state") }
    };
    assert_eq!((state(tokyo.clone()).await, state(utc.clone()).await), ("suspended".into(), "certified".into()));
    // The next day in UTC, the other one too.
    assert_eq!(tick_at(at(due + Days::new(1), 0, 0)).await, 1);
    assert_eq!(state(utc).await, "suspended");
}
on_both_databases!(the_clock_suspends_by_each_body_s_grace_counted_in_its_own_time_zone);

async fn a_day_s_reminders_go_out_from_eight_in_the_morning_of_the_body_s_zone(backend: Backend) {
    // Arrange: two certificates with the same surveillance due day, one body in Tokyo (UTC+9).
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let tokyo = app.certified_engagement().await;
    let utc = app.certified_engagement().await;
    set_policy(&app, &body_of(&app, &tokyo).await, json!({ "time_zone": "Asia/Tokyo" })).await;
    let reminder_day = due_on(&app, &tokyo, "surveillance_due").await - Days::new(30);
    let worker = app.spawn_worker(smtp.port).await;
    let scheduled = |engagement: String| {
        let app = &app;
        async move {
            let notifications = app.notifications(&engagement).await;
            notifications.iter().any(|n| n["scheduled_on"] == reminder_day.to_string())
        }
    };

    // Act / Assert: 07:59 in Tokyo on the reminder's day: not yet.
    app.set_now(at(reminder_day - Days::new(1), 22, 59));
    worker.tick().await;
    assert!(!scheduled(tokyo.clone()).await, "not before eight in Tokyo");
    // 08:00 in Tokyo (23:00 UTC the day before): Tokyo's goes out; UTC's waits for its own morning.
    app.set_now(at(reminder_day - Days::new(1), 23, 0));
    worker.tick().await;
    assert!(scheduled(tokyo).await, "from eight in Tokyo");
    assert!(!scheduled(utc.clone()).await, "still the day before in UTC");
    app.set_now(at(reminder_day, 8, 0));
    worker.tick().await;
    assert!(scheduled(utc).await, "from eight in UTC");
}
on_both_databases!(a_day_s_reminders_go_out_from_eight_in_the_morning_of_the_body_s_zone);

async fn a_deadline_is_overdue_from_the_day_after_its_due_date_in_the_body_s_zone(backend: Backend) {
    // Arrange: two certificates with the same surveillance due day, one body in Tokyo (UTC+9).
    let app = spawn_app(backend).await;
    let tokyo = app.certified_engagement().await;
    let utc = app.certified_engagement().await;
    set_policy(&app, &body_of(&app, &tokyo).await, json!({ "time_zone": "Asia/Tokyo" })).await;
    let due = due_on(&app, &tokyo, "surveillance_due").await;
    let overdue = |engagement: String| {
        let app = &app;
        async move {
            let view = app.engagement(&engagement).await.expect(200);
            let open = view.body["open_deadlines"].as_array().unwrap().clone();
            open.into_iter().find(|d| d["kind"] == "surveillance_due").unwrap()["overdue"].as_bool().unwrap()
        }
    };

    // Act: 16:00 UTC on the due day is 01:00 the next day in Tokyo.
    app.set_now(at(due, 16, 0));

    // Assert: overdue in Tokyo, not yet in UTC; the list says the same.
    assert_eq!((overdue(tokyo.clone()).await, overdue(utc.clone()).await), (true, false));
    let listed = app.get("/api/v1/engagements?limit=100").await.expect(200);
    let flag_of = |id: &str| {
        let item = listed.body["items"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
        item["open_deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "surveillance_due").unwrap()["overdue"]
            .clone()
    };
    assert_eq!((flag_of(&tokyo), flag_of(&utc)), (json!(true), json!(false)));
}
on_both_databases!(a_deadline_is_overdue_from_the_day_after_its_due_date_in_the_body_s_zone);
