//! The `certflow` command, built inside the test package so tests can run it as a process of its
//! own (and kill it): the same code as the real binary.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    certflow::run(std::env::args()).await
}
