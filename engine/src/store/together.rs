//! PostgreSQL: a write's deferred statements sent as one statement, where that changes nothing
//! they do.
//!
//! On PostgreSQL each statement is a round trip, and a write holds its engagement's row lock over
//! every one of them: a transition sent its audit's completion, its history entry, its new version
//! and its outbox event one after the other before its `COMMIT`. Statements the write does not read
//! the outcome of ([`super::WriteTransaction::defer`]) can go as one: the first ones as
//! data-modifying common table expressions of the last (`WITH "cf_deferred_1" AS (UPDATE …),
//! "cf_deferred_2" AS (INSERT …) INSERT …`), which PostgreSQL runs in one statement, each
//! sub-statement exactly once, with the values renumbered in order.
//!
//! They then run on one snapshot: none sees what another of its statement wrote, and a row may
//! not be changed twice. So a statement joins the one being built only when it writes a table
//! none of the others writes, and reads no table they write (read: named after `FROM` or
//! `JOIN`); otherwise it starts the next. Two events of one write (each numbered from the outbox's
//! last) stay apart, as a history entry read back would. What this cannot read for certain (a
//! literal in the text, a statement that is not an `INSERT`, `UPDATE` or `DELETE` of one quoted
//! table) is sent alone, as before. Foreign keys hold across the statements: PostgreSQL checks them
//! at the end of the statement, with every sub-statement's rows in place.
//!
//! The order in which PostgreSQL runs the sub-statements is its own: when two of them would fail,
//! which error the write gets may differ from the one-by-one order, and so may the order in which
//! they take row locks. No caller relies on either: the write holds its engagement's lock before
//! it defers anything, and a failure fails the write whichever it is.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::sea_query::Values;
use sea_orm::{DbBackend, Statement};

/// The most values one statement may bind (PostgreSQL's protocol counts them in 16 bits).
const MOST_VALUES: usize = u16::MAX as usize;

/// What a statement writes and reads, when it can be told for certain.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    writes: String,
    reads: BTreeSet<String>,
}

/// `statements`, in order, with as many as may go together made into one (see the module).
pub(super) fn together(statements: Vec<Statement>) -> Vec<Statement> {
    // Nothing to put together (a flush before a read usually has nothing deferred): no scan.
    if statements.len() < 2 {
        return statements;
    }
    let planned = PLANS.plan_of(&statements);
    let mut statements: Vec<Option<Statement>> = statements.into_iter().map(Some).collect();
    let mut sent = Vec::with_capacity(planned.plan.len());
    for part in &planned.plan {
        match part {
            Part::Alone(index) => sent.extend(statements[*index].take()),
            Part::Together { members, sql } => {
                let values = members
                    .iter()
                    .filter_map(|index| statements[*index].take())
                    .flat_map(|statement| statement.values.map(|v| v.0).unwrap_or_default())
                    .collect();
                sent.push(Statement {
                    sql: sql.clone(),
                    values: Some(Values(values)),
                    db_backend: DbBackend::Postgres,
                });
            }
        }
    }
    sent
}

/// How a list of statements is sent, in order: each part one of them as it is, or several as one
/// statement (their indexes, and its text).
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Alone(usize),
    Together { members: Vec<usize>, sql: String },
}

/// The most lists of statements whose plan is kept (past it, a plan is made on every call).
const MOST_PLANS: usize = 256;

/// The plans made so far, by the texts and the numbers of values of the statements: a write of a
/// kind defers the same statements, told apart by their values only, so its plan (reading every
/// text, renumbering the placeholders) is made once.
static PLANS: Plans = Plans(Mutex::new(Vec::new()));

struct Plans(Mutex<Vec<Arc<Planned>>>);

struct Planned {
    hash: u64,
    statements: Vec<(String, usize)>,
    plan: Vec<Part>,
}

impl Plans {
    fn plan_of(&self, statements: &[Statement]) -> Arc<Planned> {
        let key: Vec<(&str, usize)> = statements.iter().map(|s| (s.sql.as_str(), values_of(s))).collect();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let same = |planned: &Planned| {
            planned.hash == hash
                && planned.statements.len() == key.len()
                && planned.statements.iter().zip(&key).all(|((sql, n), (other, m))| sql == other && n == m)
        };
        if let Some(planned) = self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().find(|p| same(p)) {
            return planned.clone();
        }
        let planned = Arc::new(Planned {
            hash,
            statements: key.iter().map(|(sql, n)| ((*sql).to_owned(), *n)).collect(),
            plan: plan(statements),
        });
        let mut plans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if plans.len() < MOST_PLANS {
            plans.push(planned.clone());
        }
        planned
    }
}

fn values_of(statement: &Statement) -> usize {
    statement.values.as_ref().map_or(0, |v| v.0.len())
}

/// The plan of `statements` (see the module).
fn plan(statements: &[Statement]) -> Vec<Part> {
    let mut parts = Vec::new();
    // The statements being put together, with the tables they write.
    let mut group: Vec<usize> = Vec::new();
    let mut writes: BTreeSet<String> = BTreeSet::new();
    let mut values = 0;
    for (index, statement) in statements.iter().enumerate() {
        let shape = shape_of(statement);
        let count = values_of(statement);
        let joins = shape.as_ref().is_some_and(|shape| {
            !group.is_empty()
                && !writes.contains(&shape.writes)
                && shape.reads.is_disjoint(&writes)
                && values + count <= MOST_VALUES
        });
        if !joins {
            parts.extend(as_one(statements, std::mem::take(&mut group)));
            writes.clear();
            values = 0;
        }
        match shape {
            Some(shape) => {
                writes.insert(shape.writes);
                values += count;
                group.push(index);
            }
            // Alone, as it is.
            None => parts.push(Part::Alone(index)),
        }
    }
    parts.extend(as_one(statements, group));
    parts
}

/// The statements of `group` as one: the last one, the others before it as its common table
/// expressions.
fn as_one(statements: &[Statement], group: Vec<usize>) -> Option<Part> {
    let (&last, before) = group.split_last()?;
    if before.is_empty() {
        return Some(Part::Alone(last));
    }
    let mut sql = String::from("WITH ");
    let mut values = 0;
    for (n, &index) in before.iter().enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("\"cf_deferred_{}\" AS (", n + 1));
        sql.push_str(&renumbered(&statements[index].sql, values));
        sql.push(')');
        values += values_of(&statements[index]);
    }
    sql.push(' ');
    sql.push_str(&renumbered(&statements[last].sql, values));
    Some(Part::Together { members: group, sql })
}

/// What `statement` writes and reads: `None` unless it is one `INSERT INTO`, `UPDATE` or `DELETE
/// FROM` of a quoted table, with no literal, comment, statement separator or dollar quote, and
/// every table it names after `FROM` or `JOIN` (in any case) quoted.
fn shape_of(statement: &Statement) -> Option<Shape> {
    let sql = statement.sql.trim();
    if statement.db_backend != DbBackend::Postgres
        || sql.contains(['\'', ';'])
        || sql.contains("--")
        || sql.contains("/*")
    {
        return None;
    }
    // Keywords in capitals whatever their case, quoted names as they are (same byte offsets).
    let mut quoted = false;
    let mut upper = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            quoted = !quoted;
        }
        // Only placeholders: a `$` before anything but a digit may open a dollar quote.
        if c == '$' && !quoted && !chars.peek().is_some_and(char::is_ascii_digit) {
            return None;
        }
        upper.push(if quoted { c } else { c.to_ascii_uppercase() });
    }
    let named = ["INSERT INTO ", "UPDATE ", "DELETE FROM "].iter().find_map(|verb| upper.strip_prefix(verb))?;
    let (writes, _) = quoted_name(named)?;
    let mut reads = BTreeSet::new();
    for keyword in ["FROM ", "JOIN "] {
        for (at, _) in upper.match_indices(keyword) {
            // A keyword, not the end of a longer word or a quoted name.
            if upper[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"') {
                continue;
            }
            let mut after = &upper[at + keyword.len()..];
            if after.starts_with('(') {
                continue; // A subquery: its own FROM names what it reads.
            }
            // One name, or a list of them (`FROM "a", "b"`), each perhaps with its alias.
            loop {
                let (name, rest) = quoted_name(after)?;
                reads.insert(name);
                let rest = match rest.strip_prefix(" AS ") {
                    Some(alias) => quoted_name(alias)?.1,
                    None => rest,
                };
                match rest.strip_prefix(", ") {
                    Some(next) => after = next,
                    None => break,
                }
            }
        }
    }
    Some(Shape { writes, reads })
}

/// The quoted name `text` begins with (`"name"`, not followed by `.` or another quote) and the
/// text after it: `None` otherwise.
fn quoted_name(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('"')?;
    let end = rest.find('"')?;
    let (name, after) = (&rest[..end], &rest[end + 1..]);
    if name.is_empty() || after.starts_with(['.', '"']) {
        return None;
    }
    Some((name.to_owned(), after))
}

/// `sql` with each placeholder `$n` made `$(n + offset)` (quoted names left as they are).
fn renumbered(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        if c == '"' {
            quoted = !quoted;
        }
        if c != '$' || quoted {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(&(_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + offset)),
            Err(_) => {
                out.push('$');
                out.push_str(&digits);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use sea_orm::Value;

    use super::*;

    fn statement(sql: &str, values: &[i32]) -> Statement {
        let values = values.iter().map(|v| Value::Int(Some(*v))).collect();
        Statement { sql: sql.to_owned(), values: Some(Values(values)), db_backend: DbBackend::Postgres }
    }

    fn bound(statement: &Statement) -> Vec<i32> {
        let values = statement.values.as_ref().map(|v| v.0.clone()).unwrap_or_default();
        values.into_iter().map(|v| if let Value::Int(Some(v)) = v { v } else { panic!("{v:?}") }).collect()
    }

    #[test]
    fn writes_to_different_tables_go_as_one_statement_with_their_values_in_order() {
        let sent = together(vec![
            statement(r#"UPDATE "audits" SET "completed_at" = $1 WHERE "id" = $2"#, &[1, 2]),
            statement(r#"INSERT INTO "engagement_history" ("id", "action") VALUES ($1, $2)"#, &[3, 4]),
            statement(r#"UPDATE "engagements" SET "version" = $1 WHERE "id" = $2"#, &[5, 6]),
        ]);

        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].sql,
            r#"WITH "cf_deferred_1" AS (UPDATE "audits" SET "completed_at" = $1 WHERE "id" = $2), "cf_deferred_2" AS (INSERT INTO "engagement_history" ("id", "action") VALUES ($3, $4)) UPDATE "engagements" SET "version" = $5 WHERE "id" = $6"#
        );
        assert_eq!(bound(&sent[0]), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn the_plan_of_a_list_of_statements_is_made_once_and_serves_it_with_other_values() {
        let list = |a: i32, b: i32| {
            vec![
                statement(r#"UPDATE "plan_a" SET "n" = $1 WHERE "id" = $2"#, &[a, a]),
                statement(r#"INSERT INTO "plan_b" ("id") VALUES ($1)"#, &[b]),
            ]
        };
        let first = PLANS.plan_of(&list(1, 2));
        let again = PLANS.plan_of(&list(3, 4));
        assert!(Arc::ptr_eq(&first, &again), "one plan for the same texts");
        let sent = together(list(5, 6));
        assert_eq!(bound(&sent[0]), [5, 5, 6]);
        // Another number of values is another list.
        let other =
            vec![statement(r#"UPDATE "plan_a" SET "n" = $1 WHERE "id" = $2"#, &[1, 2, 3]), list(0, 0).remove(1)];
        assert!(!Arc::ptr_eq(&first, &PLANS.plan_of(&other)));
    }

    #[test]
    fn a_second_write_to_a_table_or_a_read_of_one_written_starts_the_next_statement() {
        let event = r#"INSERT INTO "webhook_events" ("id", "sequence") SELECT $1, COALESCE(MAX(sequence), 0) + 1 FROM "webhook_events" WHERE "engagement_id" = $2"#;
        let sent = together(vec![
            statement(event, &[1, 2]),
            statement(event, &[3, 4]),
            statement(r#"INSERT INTO "engagement_history" ("id") VALUES ($1)"#, &[5]),
            statement(
                r#"UPDATE "engagements" SET "x" = $1 WHERE "id" IN (SELECT "id" FROM "engagement_history")"#,
                &[6],
            ),
        ]);

        // The second event sees the first (its sequence one more); the update reads the history.
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].sql, event);
        assert!(sent[1].sql.starts_with(r#"WITH "cf_deferred_1" AS (INSERT INTO "webhook_events""#), "{}", sent[1].sql);
        assert!(sent[1].sql.ends_with(r#"INSERT INTO "engagement_history" ("id") VALUES ($3)"#), "{}", sent[1].sql);
        assert_eq!(bound(&sent[1]), [3, 4, 5]);
        assert_eq!(bound(&sent[2]), [6]);
    }

    #[test]
    fn what_cannot_be_read_for_certain_goes_alone_in_its_place() {
        let literal = statement(r#"UPDATE "audits" SET "gaps" = '$1' WHERE "id" = $1"#, &[1]);
        let select = statement(r#"SELECT "id" FROM "audits" WHERE "id" = $1"#, &[2]);
        let unquoted = statement(r#"DELETE FROM audits WHERE "id" = $1"#, &[3]);
        let schema = statement(r#"INSERT INTO "public"."audits" ("id") VALUES ($1)"#, &[4]);
        let lowercase = statement(r#"UPDATE "audits" SET "n" = (select max(n) from t) WHERE "id" = $1"#, &[6]);
        let comment = statement(r#"UPDATE "audits" SET "n" = $1 -- the rest"#, &[7]);
        let dollar_quote = statement(r#"UPDATE "audits" SET "n" = $a$x$a$ WHERE "id" = $1"#, &[8]);
        let history = |v| statement(r#"INSERT INTO "engagement_history" ("id") VALUES ($1)"#, &[v]);
        let sent =
            together(vec![history(0), literal, history(5), select, unquoted, schema, lowercase, comment, dollar_quote]);

        let sql: Vec<&str> = sent.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sent.len(), 9, "{sql:?}");
        assert!(sql.iter().all(|s| !s.starts_with("WITH")), "{sql:?}");
        assert_eq!(bound(&sent[2]), [5]);
    }

    #[test]
    fn placeholders_in_quoted_names_stay_and_reads_are_found_in_subqueries_and_joins() {
        assert_eq!(
            renumbered(r#"SELECT "a$1" FROM "t" WHERE "x" = $1 AND "y" = $12"#, 3),
            r#"SELECT "a$1" FROM "t" WHERE "x" = $4 AND "y" = $15"#
        );
        let shape = shape_of(&statement(
            r#"UPDATE "t" SET "datefrom" = $1, "xjoin" = $2 WHERE "id" IN (SELECT "id" FROM "u" INNER JOIN "v" ON true)"#,
            &[1, 2],
        ));
        let reads = ["u", "v"].map(str::to_owned).into_iter().collect();
        assert_eq!(shape, Some(Shape { writes: "t".to_owned(), reads }));
        // Lists of tables, aliases, keywords in any case; a name's own case is kept.
        let shape = shape_of(&statement(
            r#"update "t" set "n" = $1 from "U" as "x", "v" where "id" in (select "id" from "w" left join "z" on true)"#,
            &[1],
        ));
        let reads = ["U", "v", "w", "z"].map(str::to_owned).into_iter().collect();
        assert_eq!(shape, Some(Shape { writes: "t".to_owned(), reads }));
    }

    /// The PostgreSQL of the test machine (`TEST_POSTGRES_URL`, default 127.0.0.1:5432, database `test`).
    fn postgres_url() -> String {
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    #[tokio::test]
    async fn on_postgres_a_write_s_deferred_statements_do_together_what_they_did_one_by_one() {
        use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
        use sea_orm::{ConnectionTrait, DbBackend};

        use crate::store::{Tuning, begin_write, connect, connect_writer};

        // Arrange: a parent table, and a child whose rows name a parent (a foreign key) and are
        // numbered one more than the last, as the outbox numbers an engagement's events.
        let db = connect(&postgres_url(), 2).await.expect("PostgreSQL runs on this machine");
        let writer = connect_writer(&postgres_url(), &db, 2, Tuning::default()).await.expect("writer");
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let (parent, child) = (format!("together_parent_{suffix}"), format!("together_child_{suffix}"));
        db.execute_unprepared(&format!(
            "CREATE TABLE {parent} (id INTEGER PRIMARY KEY, version INTEGER NOT NULL); \
             CREATE TABLE {child} (n INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES {parent} (id))"
        ))
        .await
        .expect("create");
        let insert_parent = |id: i32| {
            Query::insert()
                .into_table(Alias::new(&parent))
                .columns(["id", "version"])
                .values_panic([id.into(), 1.into()])
                .to_owned()
        };
        let next_child = |of: i32| {
            let next = Query::select()
                .expr(Expr::cust("COALESCE(MAX(n), 0) + 1"))
                .expr(Expr::val(of))
                .from(Alias::new(&child))
                .to_owned();
            Query::insert()
                .into_table(Alias::new(&child))
                .columns(["n", "parent"])
                .select_from(next)
                .expect("insert")
                .to_owned()
        };
        let bump = |id: i32| {
            Query::update()
                .table(Alias::new(&parent))
                .value(Alias::new("version"), Expr::col(Alias::new("version")).add(1))
                .and_where(Expr::col(Alias::new("id")).eq(id))
                .to_owned()
        };

        // Act: a parent and its child (one statement: the key is checked once both are in), a
        // second child (numbered after the first: a statement of its own), the parent bumped.
        let txn = begin_write(&writer).await.expect("begin");
        txn.defer(&insert_parent(7));
        txn.defer(&next_child(7));
        txn.defer(&next_child(7));
        txn.defer(&bump(7));
        txn.commit().await.expect("commit");

        // Act: a child of no parent, deferred with a valid parent: the commit fails, nothing stays.
        let txn = begin_write(&writer).await.expect("begin");
        txn.defer(&insert_parent(8));
        txn.defer(&next_child(99));
        let refused = txn.commit().await;

        let read = |sql: String| {
            let db = &db;
            async move {
                let rows = db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await.expect("select");
                rows.iter()
                    .map(|r| (r.try_get_by_index::<i32>(0).unwrap(), r.try_get_by_index::<i32>(1).unwrap()))
                    .collect::<Vec<_>>()
            }
        };
        let (parents, children) = (
            read(format!("SELECT id, version FROM {parent} ORDER BY id")).await,
            read(format!("SELECT n, parent FROM {child} ORDER BY n")).await,
        );
        db.execute_unprepared(&format!("DROP TABLE {child}; DROP TABLE {parent}")).await.expect("drop");

        // Assert
        assert_eq!(parents, [(7, 2)]);
        assert_eq!(children, [(1, 7), (2, 7)]);
        assert!(refused.is_err(), "a child of no parent");
    }

    #[test]
    fn a_group_stops_before_postgres_s_limit_of_bound_values() {
        let big = |table: &str| {
            let values: Vec<i32> = (0..40_000).collect();
            statement(&format!(r#"INSERT INTO "{table}" ("id") VALUES ($1)"#), &values)
        };
        let sent = together(vec![big("a"), big("b")]);
        assert_eq!(sent.len(), 2);
    }
}
