//! Every write is authorized before it takes the writer: a caller outside the engagement's scope,
//! or whose role may not write, is answered at once, even while another write holds the database.

use std::time::Duration;

use api::auth::Role;
use entities::orm::prelude::Engagement;
use sea_orm::{EntityTrait, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, day, day0, spawn_app};
use crate::on_both_databases;

/// Longer than SQLite's busy timeout (10 s): a refusal that waited for the writer would come as a
/// 503 after it, or, on PostgreSQL, not until the row lock is released.
const PATIENCE: Duration = Duration::from_secs(30);

async fn strangers_and_forbidden_roles_are_refused_while_another_write_holds_the_engagement(backend: Backend) {
    // Arrange: an engagement, and a transaction of the test's own that holds its writer (SQLite:
    // the database's write lock; PostgreSQL: the engagement's row lock).
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let organization = app.engagement(&engagement).await.str("organization_id");
    let stranger = app.token_for(Role::Coordinator, None, Some(&Uuid::now_v7().to_string()));
    let client = app.token_for(Role::ClientManager, Some(&organization), None);
    let audit = json!({ "kind": "stage1", "first_day": day(10), "last_day": day(11), "lead_auditor": "lead@cb.test" });
    let path = format!("/api/v1/engagements/{engagement}/audits");
    let db = app.db().await;
    let holder = engine::store::begin_write(&engine::store::Writer::over(db.clone(), 1)).await.expect("begin");
    let id = Uuid::parse_str(&engagement).unwrap();
    Engagement::find_by_id(id).lock_exclusive().one(&holder).await.expect("lock").expect("the engagement");

    // Act: a body's coordinator who never saw the engagement, and its client, who may not plan
    // audits, both try to plan one.
    let outside = tokio::time::timeout(PATIENCE, app.send_as(&stranger, reqwest::Method::POST, &path, Some(&audit)));
    let forbidden = tokio::time::timeout(PATIENCE, app.send_as(&client, reqwest::Method::POST, &path, Some(&audit)));
    let (outside, forbidden) = tokio::join!(outside, forbidden);

    // Assert: both answered while the other write still holds the engagement; then it ends.
    let outside = outside.expect("the stranger was made to wait for the writer");
    let forbidden = forbidden.expect("the forbidden role was made to wait for the writer");
    assert_eq!((outside.status, outside.problem_type().as_str()), (404, "not-found"), "{:?}", outside.body);
    assert_eq!((forbidden.status, forbidden.problem_type().as_str()), (403, "forbidden"), "{:?}", forbidden.body);
    holder.rollback().await.expect("rollback");
    app.post(&path, &audit).await.expect(201);
}
on_both_databases!(strangers_and_forbidden_roles_are_refused_while_another_write_holds_the_engagement);

async fn what_a_write_answers_is_what_a_read_after_it_says_to_the_microsecond(backend: Backend) {
    // Arrange: an engagement whose body is selected; the server's clock at an instant finer than
    // PostgreSQL keeps (the engagement's new version and a finding are computed by the write, not
    // read back).
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let instant = day0().and_hms_nano_opt(9, 30, 15, 123_456_789).unwrap().and_utc();
    app.set_now(instant);

    // Act: a transition (the helper compares its answer with the engagement read after it), and a
    // finding recorded.
    let signed = app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day0() })).await;
    let audit = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    let path = format!("/api/v1/engagements/{engagement}/audits/{audit}/findings");
    let body = json!({ "grade": "ofi", "reference": "A.5.1", "description": "policies could name their owners" });
    let recorded = app.post(&path, &body).await.expect(201);

    // Assert: both answered what is stored, to the microsecond.
    assert_eq!(signed.expect(200).str("updated_at"), "2026-01-05T09:30:15.123456Z");
    let read = app.get(&format!("/api/v1/engagements/{engagement}/findings/{}", recorded.str("id"))).await.expect(200);
    assert_eq!(recorded.body, read.body, "the answer to the finding's creation differs from the finding read after it");
    assert_eq!(read.str("created_at"), "2026-01-05T09:30:15.123456Z");
}
on_both_databases!(what_a_write_answers_is_what_a_read_after_it_says_to_the_microsecond);
