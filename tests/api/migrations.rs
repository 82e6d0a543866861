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
