//! Statements built once per shape, bound anew on every call.
//!
//! sea-query writes a statement's text afresh each time it is built: for the reads every
//! transition makes (its standing with its open deadlines, its documents and SoA, the engagement
//! locked and authorized) that was a fifth of the API's own instructions a transition (callgrind,
//! docs/benchmarks.md), more than the JSON, the token and the HTTP parsing together. A
//! [`Templates`] builds such a statement once per backend and shape with stand-in ids, keeps its
//! text and where each id goes among its values, and afterwards only binds the ids.
//!
//! The contract of a builder: the statement it builds for a shape depends on its ids only as values
//! bound to it (never written into its text, turned into another value or branched on); what varies
//! the text otherwise is in the shape. A builder that writes an id into its text or into another
//! value is caught (that id's stand-in shows there) and built afresh on every call, as before.

use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::sea_query::{Value, Values};
use sea_orm::{DbBackend, Statement, StatementBuilder};
use uuid::Uuid;

use crate::access::Tenancy;

/// The most shapes one [`Templates`] keeps; past it, further shapes are built on every call.
const MOST_SHAPES: usize = 32;

/// The templates of one statement, by backend and shape (see the module).
#[derive(Debug)]
pub struct Templates {
    built: Mutex<Vec<Arc<Template>>>,
}

/// One statement as built with stand-in ids: its text, and each of its values either one of the
/// ids or a value of its own.
#[derive(Debug)]
struct Template {
    backend: DbBackend,
    shape: u64,
    sql: String,
    values: Vec<Slot>,
}

#[derive(Debug)]
enum Slot {
    /// The id at this index of those the statement is bound with.
    Id(usize),
    /// A value the shape fixes.
    Fixed(Value),
}

impl Templates {
    /// No statement built yet.
    pub const fn new() -> Self {
        Self { built: Mutex::new(Vec::new()) }
    }

    /// The statement `build` makes of `ids` on `backend`, for `shape` (everything but the ids that
    /// changes its text): built with stand-in ids the first time, bound with `ids` after.
    pub fn statement<S: StatementBuilder>(
        &self,
        backend: DbBackend,
        shape: u64,
        ids: &[Uuid],
        build: impl Fn(&[Uuid]) -> S,
    ) -> Statement {
        if let Some(template) = self.find(backend, shape) {
            return template.bind(ids);
        }
        let stand_ins: Vec<Uuid> = ids.iter().map(|_| Uuid::new_v4()).collect();
        let Some(template) = Template::of(backend.build(&build(&stand_ins)), shape, &stand_ins) else {
            return backend.build(&build(ids));
        };
        let template = Arc::new(template);
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if built.len() < MOST_SHAPES {
            built.push(template.clone());
        }
        template.bind(ids)
    }

    /// [`Templates::statement`] of a statement on the row `id` as `tenancy` sees it: its shape the
    /// kind of tenancy, `build` given the id and a tenancy of that kind.
    pub fn seen_by<S: StatementBuilder>(
        &self,
        backend: DbBackend,
        tenancy: Tenancy,
        id: Uuid,
        build: impl Fn(Uuid, Tenancy) -> S,
    ) -> Statement {
        let (shape, tenant) = match tenancy {
            Tenancy::Platform => (0, Uuid::nil()),
            Tenancy::CertificationBody(id) => (1, id),
            Tenancy::Organization(id) => (2, id),
        };
        self.statement(backend, shape, &[id, tenant], |ids| {
            let of_its_kind = match tenancy {
                Tenancy::Platform => Tenancy::Platform,
                Tenancy::CertificationBody(_) => Tenancy::CertificationBody(ids[1]),
                Tenancy::Organization(_) => Tenancy::Organization(ids[1]),
            };
            build(ids[0], of_its_kind)
        })
    }

    fn find(&self, backend: DbBackend, shape: u64) -> Option<Arc<Template>> {
        let built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        built.iter().find(|t| t.backend == backend && t.shape == shape).cloned()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Template {
    /// The template of `statement`, built with `stand_ins` as its ids: `None` when a stand-in shows
    /// anywhere but as a value of its own (in the text, or inside another value).
    fn of(statement: Statement, shape: u64, stand_ins: &[Uuid]) -> Option<Self> {
        let shows_in = |text: &str| {
            stand_ins.iter().any(|id| text.contains(&id.simple().to_string()) || text.contains(&id.to_string()))
        };
        if shows_in(&statement.sql) {
            return None;
        }
        let mut values = Vec::new();
        for value in statement.values.map(|v| v.0).unwrap_or_default() {
            let id = match &value {
                Value::Uuid(Some(id)) => stand_ins.iter().position(|stand_in| stand_in == id),
                _ => None,
            };
            values.push(match id {
                Some(index) => Slot::Id(index),
                None if shows_in(&format!("{value:?}")) => return None,
                None => Slot::Fixed(value),
            });
        }
        Some(Self { backend: statement.db_backend, shape, sql: statement.sql, values })
    }

    /// The statement with `ids` in place of the stand-ins.
    fn bind(&self, ids: &[Uuid]) -> Statement {
        let values = self
            .values
            .iter()
            .map(|slot| match slot {
                Slot::Id(index) => Value::Uuid(Some(ids[*index])),
                Slot::Fixed(value) => value.clone(),
            })
            .collect();
        Statement { sql: self.sql.clone(), values: Some(Values(values)), db_backend: self.backend }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SelectStatement};
    use sea_orm::{DbBackend, Statement};
    use uuid::Uuid;

    use super::Templates;

    fn select(ids: &[Uuid], with_second: bool) -> SelectStatement {
        let mut query = Query::select()
            .column(Alias::new("x"))
            .from(Alias::new("t"))
            .and_where(Expr::col(Alias::new("id")).eq(ids[0]))
            .and_where(Expr::col(Alias::new("kind")).eq("fixed"))
            .to_owned();
        if with_second {
            query.and_where(Expr::col(Alias::new("other")).eq(ids[1]));
        }
        query
    }

    fn same(a: &Statement, b: &Statement) -> bool {
        a.sql == b.sql && a.values == b.values && a.db_backend == b.db_backend
    }

    #[test]
    fn a_statement_bound_anew_is_the_one_built_with_its_ids_for_each_backend_and_shape() {
        let templates = Templates::new();
        for backend in [DbBackend::Postgres, DbBackend::Sqlite] {
            for with_second in [false, true] {
                let shape = u64::from(with_second);
                for _ in 0..3 {
                    let ids = [Uuid::new_v4(), Uuid::new_v4()];
                    let bound = templates.statement(backend, shape, &ids, |ids| select(ids, with_second));
                    assert!(same(&bound, &backend.build(&select(&ids, with_second))), "{bound:?}");
                }
            }
        }
        assert_eq!(templates.built.lock().unwrap().len(), 4, "one template per backend and shape");
    }

    #[test]
    fn a_statement_seen_by_a_tenancy_is_bound_with_that_tenancy_s_own_id_for_each_kind() {
        use crate::access::{Tenancy, engagements_in};
        use entities::orm::prelude::Engagement;
        use sea_orm::{EntityTrait, QueryFilter, QueryTrait};

        let templates = Templates::new();
        let build =
            |id: Uuid, tenancy: Tenancy| Engagement::find_by_id(id).filter(engagements_in(tenancy)).into_query();
        for _ in 0..2 {
            for tenancy in
                [Tenancy::Platform, Tenancy::CertificationBody(Uuid::new_v4()), Tenancy::Organization(Uuid::new_v4())]
            {
                let id = Uuid::new_v4();
                let bound = templates.seen_by(DbBackend::Postgres, tenancy, id, build);
                assert!(same(&bound, &DbBackend::Postgres.build(&build(id, tenancy))), "{tenancy:?}: {bound:?}");
            }
        }
        assert_eq!(templates.built.lock().unwrap().len(), 3, "one template per kind of tenancy");
    }

    #[test]
    fn an_id_written_into_the_text_or_another_value_is_built_afresh_each_time() {
        let templates = Templates::new();
        let in_text = |ids: &[Uuid]| {
            Query::select().column(Alias::new("x")).from(Alias::new(format!("t_{}", ids[0].simple()))).to_owned()
        };
        let in_value = |ids: &[Uuid]| {
            Query::select()
                .column(Alias::new("x"))
                .from(Alias::new("t"))
                .and_where(Expr::col(Alias::new("name")).eq(format!("for {}", ids[0])))
                .to_owned()
        };
        for _ in 0..2 {
            let ids = [Uuid::new_v4()];
            let text = templates.statement(DbBackend::Postgres, 0, &ids, in_text);
            assert!(same(&text, &DbBackend::Postgres.build(&in_text(&ids))));
            let value = templates.statement(DbBackend::Postgres, 1, &ids, in_value);
            assert!(same(&value, &DbBackend::Postgres.build(&in_value(&ids))));
        }
        assert!(templates.built.lock().unwrap().is_empty(), "neither kept");
    }
}
