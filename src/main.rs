//! Thin entry point: parse the command line, run, exit with the command's status.
use clap::Parser;

fn main() {
    let cli = smartdesk::cli::Cli::parse();
    if !matches!(cli.command, smartdesk::cli::Command::Serve(_)) {
        // Admin commands end quietly when their reader goes away (`calls --json | head`),
        // as Unix tools do, instead of panicking on EPIPE. The daemon keeps Rust's
        // ignored SIGPIPE: a peer closing a socket is an error to handle, not a death.
        // SAFETY: called before any thread is started; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    std::process::exit(smartdesk::cli::run(cli));
}
