//! `parley`: parse the command line and run it.

use clap::Parser;

/// See `Cargo.toml`'s `jemalloc` feature for why the server does not use
/// the system allocator.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    parley::cli::run(parley::cli::Cli::parse()).await
}
