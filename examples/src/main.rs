//! `rustico`: a threaded BitTorrent client and seeder.
//!
//! The binary is glue: the command line ([`cli`]) picks a command, and the
//! [`engine`] wires the rustico library crates together as actors (threads
//! that own their state, reached through channels). Protocol state per peer
//! is peer-wire's sans-IO `Session`, driven by [`engine::conn`] and
//! [`magnet`]; each torrent's decisions are the `rustico_swarm` state
//! machine's, driven by the torrent manager.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod daemon;
mod dht;
mod engine;
mod logging;
mod magnet;
mod meta;
mod progress;
mod run;
mod text;

/// The channel types between connections and torrent managers, under the
/// path `engine::manager` and `engine::webseed` name them by (the peer
/// session itself now lives in `rustico_peer_wire::session`).
mod session {
    pub use crate::engine::Command;
}

use clap::Parser;

use cli::{Cli, Command};

/// Why a command failed: each command's own error, printed on stderr.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// `info`.
    #[error(transparent)]
    Info(#[from] commands::InfoError),
    /// `create`.
    #[error(transparent)]
    Create(#[from] commands::CreateError),
    /// `download`, `seed` and `demo`.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// `daemon`.
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
}

impl Error {
    /// The process's exit status for this error. Every failure is 1 (the
    /// command-line contract: non-zero with a message; clap's own usage
    /// errors are 2).
    fn exit_code(&self) -> i32 {
        match self {
            Error::Info(_) | Error::Create(_) | Error::Run(_) | Error::Daemon(_) => 1,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result: Result<(), Error> = match &cli.command {
        Command::Info {
            torrent,
            json,
            peers,
            timeout,
        } => commands::info(
            torrent,
            *json,
            &commands::MagnetFetch {
                peers: peers.clone(),
                timeout: std::time::Duration::from_secs(*timeout),
                verbose: cli.verbose,
            },
        )
        .map_err(Error::from),
        Command::Create(args) => commands::create(args).map_err(Error::from),
        Command::Download(args) => run::download(args, cli.verbose).map_err(Error::from),
        Command::Seed(args) => run::seed(args, cli.verbose).map_err(Error::from),
        Command::Demo(args) => run::demo(args, cli.verbose).map_err(Error::from),
        Command::Daemon(args) => daemon::run(args, cli.verbose).map_err(Error::from),
    };
    log::logger().flush();
    if let Err(e) = result {
        // Every error's message already includes its sources' (the
        // workspace's convention), so only the outermost is printed.
        eprintln!("rustico: {}", text::shown(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
