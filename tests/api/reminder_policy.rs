//! Reminder schedules are data: each certification body reads and replaces its own.

use serde_json::json;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

async fn a_cb_reads_the_default_policy_and_replaces_it_with_a_valid_one_only(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let cb = app.create_certification_body(true).await;
    let path = format!("/api/v1/certification-bodies/{cb}/reminder-policy");

    // The default follows DOMAIN.md.
    let default = app.get(&path).await.expect(200);
    assert_eq!(default.body["is_default"], true);
    let cap = &default.body["policy"]["schedules"]["corrective_action_due"];
    let offsets: Vec<i64> = cap.as_array().unwrap().iter().map(|s| s["offset_days"].as_i64().unwrap()).collect();
    assert_eq!(offsets, [-14, -7, -1, 0, 7]);

    // Unsorted offsets, a reminder after the due date and an unknown role are refused, field by field.
    let mut policy = default.body["policy"].clone();
    policy["schedules"]["corrective_action_due"] = json!([
        { "offset_days": -1, "kind": "reminder", "recipients": ["deadline_owner"] },
        { "offset_days": -7, "kind": "reminder", "recipients": ["deadline_owner"] },
        { "offset_days": 3, "kind": "reminder", "recipients": ["deadline_owner"] }
    ]);
    let refused = app.put(&path, &policy).await.expect(422);
    let fields: Vec<&str> =
        refused.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        ["schedules.corrective_action_due[1].offset_days", "schedules.corrective_action_due[2].offset_days"]
    );
    let mut unknown_role = default.body["policy"].clone();
    unknown_role["schedules"]["stage1_validity"][0]["recipients"] = json!(["auditor"]);
    assert_eq!(app.put(&path, &unknown_role).await.expect(422).problem_type(), "invalid-body");
    assert_eq!(app.get(&path).await.expect(200).body["is_default"], true, "nothing was saved");

    // A valid policy is saved with a version.
    let mut stricter = default.body["policy"].clone();
    stricter["schedules"]["corrective_action_due"] = json!([
        { "offset_days": -21, "kind": "reminder", "recipients": ["deadline_owner"] },
        { "offset_days": 0, "kind": "escalation", "recipients": ["deadline_owner", "engagement_manager"] },
        { "offset_days": 3, "kind": "escalation", "recipients": ["cb_coordinator", "client_executive"] }
    ]);
    let saved = app.put(&path, &stricter).await.expect(200);
    assert_eq!((saved.body["is_default"].as_bool(), saved.body["version"].as_i64()), (Some(false), Some(1)));
    let read = app.get(&path).await.expect(200);
    assert_eq!(read.body["policy"], stricter);

    let notifications = app.get("/api/v1/notifications?status=failed").await.expect(200);
    assert_eq!(notifications.body["items"], json!([]));
}
on_both_databases!(a_cb_reads_the_default_policy_and_replaces_it_with_a_valid_one_only);
