//! `parley`: parse the command line and run it.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    parley::cli::run(parley::cli::Cli::parse()).await
}
