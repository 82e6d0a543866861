//! The SQLite writer's thread kept on the CPU of the thread that writes through it.
//!
//! sqlx runs each SQLite connection on a thread of its own: a write's task hands it every
//! statement and waits for the answer, about ten hand-offs each way in one transition. Between two
//! threads on two CPUs each hand-off wakes the other CPU; on a virtual machine whose idle CPUs halt,
//! that costs tens of microseconds, more than SQLite's own work on most statements, and the
//! writer, which SQLite lets run one at a time, sat idle most of each transaction. On one CPU a
//! hand-off is a context switch. So once a write holds the writer's connection, its thread is moved
//! to the CPU the writing thread runs on (`sched_setaffinity`, only when that CPU changed). The
//! writer's threads are found by their name; `SQLITE_WRITER_COLOCATE=false` leaves them alone.
//! Measured in docs/benchmarks.md ("Writes on SQLite", issue 21).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The name the writer pool's connection threads are given (`cf-writer-<n>`; Linux keeps 15
/// bytes of a thread's name).
pub(crate) fn thread_name(connection: u64) -> String {
    format!("{THREAD_PREFIX}{connection}")
}

const THREAD_PREFIX: &str = "cf-writer-";

/// Whether some writer pool named its threads to be followed.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The CPU the writers' threads were last moved to (`usize::MAX`: none yet).
static PINNED_TO: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A writer pool was opened with its threads named by [`thread_name`]: writes follow them.
pub(crate) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Moves the writer's threads to the CPU this thread runs on, unless they are there already.
/// Called by a write that holds the writer's connection; costs nothing when the CPU did not change.
pub(crate) fn follow() {
    if ENABLED.load(Ordering::Relaxed) {
        #[cfg(target_os = "linux")]
        linux::follow();
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use nix::sched::{CpuSet, sched_getcpu, sched_setaffinity};
    use nix::unistd::Pid;

    use super::{PINNED_TO, THREAD_PREFIX};

    /// How long a list of the writer's threads is trusted: a connection sqlx replaced (after an
    /// error) runs on a new thread, found at the next look.
    const LOOK_AGAIN: Duration = Duration::from_secs(1);

    struct Threads {
        ids: Vec<Pid>,
        found_at: Option<Instant>,
    }

    static THREADS: Mutex<Threads> = Mutex::new(Threads { ids: Vec::new(), found_at: None });

    pub(super) fn follow() {
        let Ok(cpu) = sched_getcpu() else { return };
        let mut threads = THREADS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = threads.found_at.is_none_or(|at| at.elapsed() > LOOK_AGAIN);
        if !stale && PINNED_TO.load(Ordering::Relaxed) == cpu {
            return;
        }
        if stale {
            threads.ids = writer_threads();
            threads.found_at = Some(Instant::now());
        }
        let mut set = CpuSet::new();
        if set.set(cpu).is_err() {
            return;
        }
        // A thread that is gone (or a CPU this process may no longer use) is dropped until the
        // next look.
        threads.ids.retain(|&id| sched_setaffinity(id, &set).is_ok());
        PINNED_TO.store(cpu, Ordering::Relaxed);
    }

    /// This process's threads named as a writer's.
    fn writer_threads() -> Vec<Pid> {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
        tasks
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with(THREAD_PREFIX))
            })
            .filter_map(|task| task.file_name().to_str()?.parse().ok().map(Pid::from_raw))
            .collect()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::{Pid, gettid};

    use super::{enable, follow, thread_name};

    fn cpus_of(id: Pid) -> Vec<usize> {
        let affinity = sched_getaffinity(id).expect("an affinity");
        (0..CpuSet::count()).filter(|&cpu| affinity.is_set(cpu).unwrap_or(false)).collect()
    }

    #[test]
    fn a_writer_thread_is_moved_to_the_cpu_of_the_thread_that_writes_and_others_are_left_alone() {
        let spawn = |name: String| {
            let (found, found_rx) = std::sync::mpsc::channel();
            let (done, done_rx) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    found.send(gettid()).expect("send");
                    done_rx.recv().ok();
                })
                .expect("spawn");
            (found_rx.recv().expect("its thread id"), done, thread)
        };
        let (writer, stop_writer, writer_thread) = spawn(thread_name(9));
        let (reader, stop_reader, reader_thread) = spawn("sqlx-sqlite-worker-3".to_owned());
        let allowed = cpus_of(Pid::from_raw(0));
        // This thread (the one that writes) is put on the last CPU it may use.
        let mut here = CpuSet::new();
        here.set(*allowed.last().expect("a CPU")).expect("a CPU");
        sched_setaffinity(Pid::from_raw(0), &here).expect("pin this thread");
        enable();
        follow();
        assert_eq!(cpus_of(writer), vec![*allowed.last().expect("a CPU")], "the writer follows the writing thread");
        assert_eq!(cpus_of(reader), allowed, "a thread of another name is left alone");
        for (stop, thread) in [(stop_writer, writer_thread), (stop_reader, reader_thread)] {
            stop.send(()).ok();
            thread.join().expect("join");
        }
    }
}
