//! `parley-loadtest`: the load harness for Parley.
//!
//! For now this is a stub that only parses its command line. The harness
//! proper (scenarios that speak the real protocol through `parley-actors`,
//! end-to-end latency and loss measurements, a report) arrives with the
//! load-harness issue (issue 4); until then it says so and exits 0, so the
//! workspace builds and `--help` works.

use clap::Parser;

/// Load harness for Parley (a stub until the load-harness issue lands).
#[derive(Debug, Parser)]
#[command(name = "parley-loadtest", version, about)]
struct Cli {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
}

fn main() {
    let cli = Cli::parse();
    println!(
        "parley-loadtest: no scenarios yet (target {}); they arrive with the load-harness issue (issue 4).",
        cli.target
    );
}
