//! What the engine tells the process's metrics (`metrics` facade: recorded only where a recorder is
//! installed, which the API and `certflow worker` do): its pools as they stand, and the census of
//! engagements and deadlines.

use std::time::Instant;

use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::state::EngagementState;
use entities::orm::{deadline, engagement};
use sea_orm::{
    ColumnTrait, EntityTrait, Iterable, QueryFilter, QuerySelect,
    sea_query::{Expr, Func},
};

use crate::Engine;
use crate::error::EngineError;

/// Describes the engine's metrics to the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(
        "certflow_db_pool_waiting",
        "Write transactions waiting for the writer pool (on SQLite, for its one connection)"
    );
    metrics::describe_counter!("certflow_census_failures_total", "Censuses that could not be taken");
    metrics::describe_counter!(
        "certflow_sqlite_group_commits_total",
        "Commits of the SQLite writer that carried several writes (SQLITE_GROUP_COMMIT)"
    );
    metrics::describe_counter!("certflow_sqlite_grouped_writes_total", "Writes those commits carried");
}

/// Sets the gauges of `pool` (named `name`): connections in use and idle, and its maximum.
/// The driver does not tell how many callers wait for a connection: the writes waiting for the
/// writer are counted by `store::begin_write` (`certflow_db_pool_waiting`); a read that waits
/// longer than the acquire timeout is answered 503 (`service-unavailable`), counted with its route.
pub fn sample_pool(name: &'static str, pool: &crate::store::Pool) {
    let (size, idle, max) = pool.census();
    metrics::gauge!("certflow_db_pool_connections", "pool" => name, "state" => "in_use").set(f64::from(size - idle));
    metrics::gauge!("certflow_db_pool_connections", "pool" => name, "state" => "idle").set(f64::from(idle));
    metrics::gauge!("certflow_db_pool_max_connections", "pool" => name).set(f64::from(max));
}

/// The census: engagements by state, open deadlines by kind, and those of them due before today
/// (UTC). Every state and kind is set, to 0 when none are left. Three grouped counts over indexes;
/// taken on a timer, never per scrape (docs/benchmarks.md has its cost at 1,000,000 engagements).
pub async fn take_census(engine: &Engine) -> Result<(), EngineError> {
    let started = Instant::now();
    let db = &engine.db;
    let today = engine.clock.now().date_naive();
    let fault = |error: sea_orm::DbErr| {
        metrics::counter!("certflow_census_failures_total").increment(1);
        EngineError::from(error)
    };
    let by_state: Vec<(EngagementState, i64)> = engagement::Entity::find()
        .select_only()
        .column(engagement::Column::State)
        .column_as(Expr::from(Func::count(Expr::col(engagement::Column::Id))), "n")
        .group_by(engagement::Column::State)
        .into_tuple()
        .all(db)
        .await
        .map_err(fault)?;
    let open = deadline::Entity::find().filter(deadline::Column::Status.eq(DeadlineStatus::Open));
    let count_by_kind = |query: sea_orm::Select<deadline::Entity>| {
        query
            .select_only()
            .column(deadline::Column::Kind)
            .column_as(Expr::from(Func::count(Expr::col(deadline::Column::Id))), "n")
            .group_by(deadline::Column::Kind)
            .into_tuple::<(DeadlineKind, i64)>()
    };
    let open_by_kind = count_by_kind(open.clone()).all(db).await.map_err(fault)?;
    let overdue_by_kind = count_by_kind(open.filter(deadline::Column::DueOn.lt(today))).all(db).await.map_err(fault)?;
    for state in EngagementState::iter() {
        let n = count_of(&by_state, state);
        metrics::gauge!("certflow_engagements", "state" => <&'static str>::from(state)).set(n);
    }
    for kind in DeadlineKind::iter() {
        let label = <&'static str>::from(kind);
        metrics::gauge!("certflow_deadlines_open", "kind" => label).set(count_of(&open_by_kind, kind));
        metrics::gauge!("certflow_deadlines_overdue", "kind" => label).set(count_of(&overdue_by_kind, kind));
    }
    metrics::histogram!("certflow_census_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(())
}

fn count_of<K: PartialEq>(counts: &[(K, i64)], key: K) -> f64 {
    counts.iter().find(|(k, _)| *k == key).map_or(0.0, |(_, n)| *n as f64)
}
