//! Group commit on the SQLite writer: several writes in one SQLite transaction, each answered only
//! once the commit that holds it is done.
//!
//! A SQLite commit writes every page its transaction changed to the WAL (no `fsync` with
//! `synchronous=NORMAL`): with a transition's statements it was half of SQLite's own time
//! (docs/benchmarks.md, "Group commit"), and the pages of consecutive writes overlap (the last
//! page of the history, of the outbox, of their indexes): eight transitions in one commit write
//! fewer pages than eight commits.
//!
//! So the writer's writes take turns (first come, first served) and a write that ends while others
//! wait for their turn does not commit: it leaves its transaction open on the writer's connection
//! for them, and waits. The next write joins the group inside a savepoint of its own (its rollback
//! undoes its own work only), and so on, until a write ends with nobody waiting or the group holds
//! [`Gate::most`] writes: that one commits, and every write of the group is answered with the
//! commit's outcome. A group does not wait for long for writes that come later: when it opens, a
//! closer task queues for the writer (behind the writes waiting then, and those that come before
//! the task first runs), and commits the group if it is
//! still open when its turn comes (a write that joined and went away, a refusal). If the commit
//! fails, every write of the group that kept its work fails: none was told it committed before the
//! commit (nothing is acknowledged before it is as durable as the configured `synchronous` makes
//! a commit). A write's end runs in a task of its own, so a request that goes away half way through
//! it (its client gone) does not leave its group half ended. [`Gate::most`] counts the writes that
//! joined, those that went away included.
//!
//! A write of a group that is refused or goes away (dropped before its commit) is answered without
//! waiting for the group: it wrote nothing, but what it read included the work of the writes
//! before it in the group. Only a failed commit of the group (a full disk, an I/O error) makes
//! that differ from what was committed when it was answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use sea_orm::DbErr;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{Executor, Sqlite, SqlitePool};
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard, watch};

/// The writer's turns and the group open on its connection, for one SQLite writer pool.
#[derive(Debug)]
pub(super) struct Gate {
    slot: Arc<TurnLock<Slot>>,
    /// Writes queued for their turn (the closers are not counted).
    waiting: AtomicUsize,
    /// The most writes one commit carries.
    most: usize,
}

/// What the write holding the turn finds: the group left open by the write before it, if any.
#[derive(Debug, Default)]
pub(super) struct Slot {
    open: Option<OpenGroup>,
}

/// A group's transaction, open on the writer's connection between two of its writes.
#[derive(Debug)]
pub(super) struct OpenGroup {
    pub(super) connection: PoolConnection<Sqlite>,
    pub(super) group: Arc<Group>,
}

/// The writes of one SQLite transaction, and its outcome once committed.
#[derive(Debug)]
pub(super) struct Group {
    /// Writes that joined (the first included).
    joined: AtomicUsize,
    /// Writes whose work it holds (committed into it, not rolled back).
    kept: AtomicUsize,
    outcome: watch::Sender<Option<Outcome>>,
}

/// A write's turn on the writer (held from its begin to its end).
#[derive(Debug)]
pub(super) struct Turn {
    slot: OwnedMutexGuard<Slot>,
    gate: Arc<Gate>,
}

/// The gates of the writer pools that group their commits (a pool is known by its options).
static GATES: Mutex<Vec<(Weak<SqliteConnectOptions>, Arc<Gate>)>> = Mutex::new(Vec::new());

/// Groups the commits of the writes on `pool` (SQLite's one writer connection), at most `most` a
/// commit. `most` below 2: each write commits alone.
pub(super) fn group_commits_of(pool: &SqlitePool, most: usize) {
    let mut gates = GATES.lock().unwrap_or_else(PoisonError::into_inner);
    gates.retain(|(options, _)| options.strong_count() > 0);
    if most >= 2 {
        let gate = Gate { slot: Arc::default(), waiting: AtomicUsize::new(0), most };
        gates.push((Arc::downgrade(&pool.connect_options()), Arc::new(gate)));
    }
}

/// The gate of `pool`, when its commits are grouped.
pub(super) fn gate_of(pool: &SqlitePool) -> Option<Arc<Gate>> {
    let options = pool.connect_options();
    let gates = GATES.lock().unwrap_or_else(PoisonError::into_inner);
    gates.iter().find(|(known, _)| std::ptr::eq(known.as_ptr(), Arc::as_ptr(&options))).map(|(_, gate)| gate.clone())
}

/// Counts a write as queued for its turn while it lives.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    /// Waits for the writer's turn, in order of arrival, until `deadline` (the pool's acquire
    /// timeout: a write waits no longer for its turn than it would for the connection).
    pub(super) async fn turn(self: &Arc<Self>, deadline: tokio::time::Instant) -> Result<Turn, DbErr> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _queued = Queued(&self.waiting);
        match tokio::time::timeout_at(deadline, self.slot.clone().lock_owned()).await {
            Ok(slot) => Ok(Turn { slot, gate: self.clone() }),
            Err(_) => Err(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)),
        }
    }
}

#[cfg(test)]
impl Gate {
    /// Writes queued for their turn.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl Turn {
    /// The group left open on the writer's connection: the write holding the turn joins it.
    pub(super) fn join(&mut self) -> Option<OpenGroup> {
        let open = self.slot.open.take()?;
        open.group.joined.fetch_add(1, Ordering::Relaxed);
        Some(open)
    }

    /// Whether the write holding the turn, ending, leaves its transaction open for the writes
    /// waiting: some wait, and `group` (its group, if it joined one) holds fewer than the most.
    pub(super) fn hands_on(&self, group: Option<&Group>) -> bool {
        let room = group.is_none_or(|group| group.joined.load(Ordering::Relaxed) < self.gate.most);
        room && self.gate.waiting.load(Ordering::Relaxed) > 0
    }

    /// Opens a group with the transaction of the write holding the turn on `connection`, and
    /// gives the turn on: the group's outcome, to wait for. Its closer queues now.
    pub(super) fn open_group(mut self, connection: PoolConnection<Sqlite>) -> watch::Receiver<Option<Outcome>> {
        let (outcome, answer) = watch::channel(None);
        let group = Arc::new(Group { joined: AtomicUsize::new(1), kept: AtomicUsize::new(1), outcome });
        tokio::spawn(close(self.gate.clone(), group.clone()));
        self.slot.open = Some(OpenGroup { connection, group });
        answer
    }

    /// Leaves `open` for the next write (or the group's closer), the work of the write holding
    /// the turn kept in it when `kept`: the group's outcome.
    pub(super) fn hand_on(mut self, open: OpenGroup, kept: bool) -> watch::Receiver<Option<Outcome>> {
        if kept {
            open.group.kept.fetch_add(1, Ordering::Relaxed);
        }
        let answer = open.group.outcome.subscribe();
        self.slot.open = Some(open);
        answer
    }
}

/// What a group's commit came to: every write of the group is told the same (its error as it is,
/// so a full disk is a 503 for each of them).
pub(super) type Outcome = Result<(), DbErr>;

/// Waits for the commit of the group a write was left in. The caller holds nothing of the group
/// meanwhile: a group lost before its commit (its connection closed while a write of it went
/// away) ends when its closer finds it gone, and its writes are told so.
pub(super) async fn committed(mut answer: watch::Receiver<Option<Outcome>>) -> Result<(), DbErr> {
    match answer.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or_else(|| Err(lost())),
        Err(_) => Err(lost()),
    }
}

fn lost() -> DbErr {
    DbErr::Custom("the group this write was committed in was lost before its commit: rolled back".into())
}

impl Group {
    /// Tells every write of the group its outcome.
    pub(super) fn publish(&self, outcome: &Result<(), DbErr>) {
        let kept = self.kept.load(Ordering::Relaxed);
        if outcome.is_ok() && kept > 1 {
            metrics::counter!("certflow_sqlite_group_commits_total").increment(1);
            metrics::counter!("certflow_sqlite_grouped_writes_total").increment(kept as u64);
        }
        self.outcome.send_replace(Some(outcome.clone()));
    }

    /// Counts the work of the write ending now as kept (it commits the group itself).
    pub(super) fn keep(&self) {
        self.kept.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tells the writes of `group` how its commit on `connection` went (`committed`), first rolling the
/// group back when it failed; the connection goes back to the pool (closed when its transaction
/// could not be ended).
pub(super) async fn settle(mut connection: PoolConnection<Sqlite>, group: &Group, committed: &Result<(), DbErr>) {
    if committed.is_err() && (&mut *connection).execute("ROLLBACK").await.is_err() {
        // "no transaction is active" (SQLite rolled it back already), or a connection in doubt.
        connection.close_on_drop();
    }
    group.publish(committed);
}

/// A group's closer: once its turn comes, commits the group if it is still open (its last write
/// left it for writes that were queued and went away, or that rolled back).
async fn close(gate: Arc<Gate>, group: Arc<Group>) {
    let mut slot = gate.slot.clone().lock_owned().await;
    let Some(mut open) = slot.open.take_if(|open| Arc::ptr_eq(&open.group, &group)) else { return };
    let committed = (&mut *open.connection)
        .execute("COMMIT")
        .await
        .map(|_| ())
        .map_err(|error| DbErr::Exec(super::transaction::sqlx_error(error)));
    settle(open.connection, &group, &committed).await;
}
