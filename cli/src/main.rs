//! The `certflow` binary: a shim over [`certflow::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    certflow::run(std::env::args()).await
}
