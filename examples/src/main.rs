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
    pub use crate::engine::{Command, Event};
}

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
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
        ),
        Command::Create(args) => commands::create(args),
        Command::Download(args) => run::download(args, cli.verbose),
        Command::Seed(args) => run::seed(args, cli.verbose),
        Command::Demo(args) => run::demo(args, cli.verbose),
        Command::Daemon(args) => daemon::run(args, cli.verbose),
    };
    log::logger().flush();
    if let Err(e) = result {
        eprintln!("rustico: {}", text::shown(&e));
        std::process::exit(1);
    }
}
