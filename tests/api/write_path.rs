//! Every write is authorized before it takes the writer: a caller outside the engagement's scope,
//! or whose role may not write, is answered at once, even while another write holds the database.

use std::time::Duration;

use api::auth::Role;
use entities::orm::prelude::Engagement;
use sea_orm::{EntityTrait, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, day, spawn_app};
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
    let holder = engine::store::begin_write(&db).await.expect("begin");
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
