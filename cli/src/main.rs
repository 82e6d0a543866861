//! The `certflow` binary: a shim over [`certflow::run`].

/// mimalloc instead of the system allocator: rows are allocated on the database driver's threads
/// and freed on the HTTP workers', which glibc's arenas serialize on a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    certflow::run(std::env::args()).await
}
