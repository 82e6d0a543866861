//! The schema: every migration applies, rolls back and applies again, on both databases.

use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

async fn all_migrations_apply_roll_back_and_apply_again(backend: Backend) {
    // Arrange: a fresh database, migrated by the app at start.
    let app = spawn_app(backend).await;
    let db = app.db().await;
    let applied = Migrator::get_applied_migrations(&db).await.unwrap().len();
    assert_eq!(applied, Migrator::migrations().len());

    // Act: everything down, then up again.
    Migrator::down(&db, None).await.expect("roll back every migration");
    assert!(Migrator::get_applied_migrations(&db).await.unwrap().is_empty());
    let gone = db.execute_unprepared("SELECT 1 FROM engagements").await;
    assert!(gone.is_err(), "the tables are gone after rolling back");
    Migrator::up(&db, None).await.expect("apply every migration again");

    // Assert: the API works on the re-created schema.
    assert_eq!(Migrator::get_applied_migrations(&db).await.unwrap().len(), applied);
    app.create_organization(10).await;
}
on_both_databases!(all_migrations_apply_roll_back_and_apply_again);

async fn rolled_back_a_first_attempt_kept_in_its_message_gets_its_row_back(backend: Backend) {
    use entities::domain::webhooks::WebhookMessageStatus;
    use entities::orm::prelude::{WebhookAttempt, WebhookMessage};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    // Arrange: a message delivered by the attempt its dispatch made, kept in its row.
    let app = crate::helpers::spawn_app_with(backend, &[("WEBHOOK_ALLOW_LOOPBACK", "true")]).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let (endpoint, _) = crate::webhooks::register(&app, &organization, 9, &[]).await;
    let message = crate::webhooks::insert_failed_message(&app, &endpoint, &engagement).await;
    let db = app.db().await;
    use entities::orm::webhook_message::Column as M;
    let delivered = WebhookMessage::update_many()
        .col_expr(M::Status, Expr::value(WebhookMessageStatus::Delivered))
        .col_expr(M::Attempts, Expr::value(1))
        .col_expr(M::LastResponseStatus, Expr::value(204))
        .col_expr(M::DeliveredAt, Expr::col(M::CreatedAt))
        .col_expr(M::FirstAttemptLatencyMs, Expr::value(12))
        .col_expr(M::FirstAttemptExcerpt, Expr::value("ok"))
        .filter(M::Id.eq(uuid::Uuid::parse_str(&message).unwrap()))
        .exec(&db)
        .await;
    assert_eq!(delivered.unwrap().rows_affected, 1);
    let listed = app.get(&format!("/api/v1/webhook-endpoints/{endpoint}/attempts")).await.expect(200).body;

    // Act: that migration rolled back (with those after it).
    let all = Migrator::migrations();
    let kept = all.iter().position(|m| m.name() == "m20261204_000021_first_attempts_kept_in_their_messages");
    let steps = u32::try_from(all.len() - kept.expect("the migration")).unwrap();
    Migrator::down(&db, Some(steps)).await.expect("roll back to before it");

    // Assert: the attempt has its row, as the log listed it.
    let rows = WebhookAttempt::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!((row.id.to_string(), row.message_id.to_string()), (message.clone(), message));
    assert_eq!((row.attempt, row.response_status, row.latency_ms), (1, Some(204), 12));
    assert_eq!((row.response_excerpt.as_deref(), row.error.as_deref()), (Some("ok"), None));
    assert_eq!(listed["items"][0]["id"], row.id.to_string());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(listed["items"][0]["attempted_at"].as_str().unwrap()).unwrap(),
        row.attempted_at
    );
    Migrator::up(&db, None).await.expect("and applied again");
}
on_both_databases!(rolled_back_a_first_attempt_kept_in_its_message_gets_its_row_back);

/// SQLite plans without statistics; the schema's indexes must lead it to look up each engagement's
/// open deadlines instead of walking every open deadline (which made reads slow down as data grew).
#[tokio::test]
async fn on_sqlite_the_open_deadlines_of_engagements_are_looked_up_by_engagement() {
    use sea_orm::{DbBackend, QueryTrait};
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db().await;
    let query =
        engine::deadlines::open_deadlines_of(vec![uuid::Uuid::now_v7(), uuid::Uuid::now_v7()]).build(DbBackend::Sqlite);
    let plan = sqlite_plan(&db, &query).await;
    assert_eq!(
        plan,
        ["SEARCH deadlines USING INDEX ix_deadlines_engagement_id_status_due_on (engagement_id=? AND status=?)"],
        "{}",
        query.sql
    );
}

/// A page of an engagement's findings reads that page from an index in order: before, SQLite read
/// every finding of the engagement and sorted them for each page, so the list slowed down (and its
/// memory grew) with every finding recorded.
#[tokio::test]
async fn on_sqlite_a_page_of_an_engagements_findings_is_read_in_index_order() {
    use entities::orm::{finding, prelude::Finding};
    use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db().await;
    // The shape of `GET /engagements/{id}/findings` (api::pagination::id_page).
    let query = Finding::find()
        .filter(finding::Column::EngagementId.eq(uuid::Uuid::now_v7()))
        .filter(finding::Column::Id.gt(uuid::Uuid::now_v7()))
        .order_by_asc(finding::Column::Id)
        .limit(11)
        .build(DbBackend::Sqlite);
    let plan = sqlite_plan(&db, &query).await;
    assert_eq!(
        plan,
        ["SEARCH findings USING INDEX ix_findings_engagement_id_id (engagement_id=? AND id>?)"],
        "{}",
        query.sql
    );
}

/// A page of an endpoint's delivery log (its messages, of one status or all, and its attempts, those
/// kept in their messages' rows included) is read along the endpoint's index in the list's order: the lists used to be ordered by id, which
/// that index does not hold, so each page sorted every message the endpoint ever had (thousands a
/// minute under load, kept for the retention's days).
#[tokio::test]
async fn on_sqlite_a_page_of_an_endpoints_delivery_log_is_read_in_index_order() {
    use api::routes::webhook_endpoints::{attempts_page, first_attempts_page, messages_page};
    use entities::domain::webhooks::WebhookMessageStatus;
    use sea_orm::{DbBackend, QueryTrait};
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db().await;
    let endpoint = uuid::Uuid::now_v7();
    let after = Some((chrono::Utc::now(), uuid::Uuid::now_v7()));
    for (query, index) in [
        (messages_page(endpoint, None, after, 50).build(DbBackend::Sqlite), "ix_webhook_messages_endpoint_created"),
        (
            messages_page(endpoint, Some(WebhookMessageStatus::Failed), after, 50).build(DbBackend::Sqlite),
            "ix_webhook_messages_endpoint_created",
        ),
        (attempts_page(endpoint, after, 50).build(DbBackend::Sqlite), "ix_webhook_attempts_endpoint"),
        (first_attempts_page(endpoint, after, 50).build(DbBackend::Sqlite), "ix_webhook_messages_first_attempts"),
        (first_attempts_page(endpoint, None, 50).build(DbBackend::Sqlite), "ix_webhook_messages_first_attempts"),
        (messages_page(endpoint, None, None, 50).build(DbBackend::Sqlite), "ix_webhook_messages_endpoint_created"),
    ] {
        let plan = sqlite_plan(&db, &query).await;
        assert!(
            plan.len() == 1
                && plan[0]
                    .starts_with(&format!("SEARCH {} USING INDEX {index} (endpoint_id=?", query_table(&query.sql))),
            "{plan:?}: {}",
            query.sql
        );
    }
}

/// The table a `SELECT … FROM "table" …` reads.
fn query_table(sql: &str) -> &str {
    sql.split("FROM \"").nth(1).and_then(|rest| rest.split('"').next()).expect("a FROM")
}

/// What SQLite's `EXPLAIN QUERY PLAN` says of `query`, one line a step.
async fn sqlite_plan(db: &sea_orm::DatabaseConnection, query: &sea_orm::Statement) -> Vec<String> {
    let explain = sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Sqlite,
        format!("EXPLAIN QUERY PLAN {}", query.sql),
        query.values.clone().expect("the query has values"),
    );
    db.query_all_raw(explain).await.unwrap().iter().map(|row| row.try_get_by_index::<String>(3).unwrap()).collect()
}

/// The dispatch reads the outbox's queue along its key, oldest first, and looks each event up by
/// id: neither the events (kept for the retention's days) nor the queue are walked or sorted whole.
#[tokio::test]
async fn on_sqlite_the_dispatch_reads_the_queue_in_its_order_and_looks_its_events_up() {
    use sea_orm::{DbBackend, QueryTrait};
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db().await;
    let query = engine::webhooks::dispatch::queued_events(500).build(DbBackend::Sqlite);
    let plan = sqlite_plan(&db, &query).await;
    assert!(plan.iter().any(|step| step.starts_with("SEARCH webhook_events USING INDEX")), "{plan:?}");
    assert!(plan.iter().any(|step| step.starts_with("SCAN webhook_outbox USING COVERING INDEX")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE") || step == "SCAN webhook_events"), "{plan:?}");
}
