//! Thin entry point: parse the command line, run, exit with the command's status.
use clap::Parser;

fn main() {
    let cli = smartdesk::cli::Cli::parse();
    std::process::exit(smartdesk::cli::run(cli));
}
