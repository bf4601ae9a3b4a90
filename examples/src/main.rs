//! `rustico`: a threaded BitTorrent client and seeder.
//!
//! The binary is glue: the command line ([`cli`]) picks a command, and the
//! [`engine`] wires the rustico library crates together as actors (threads
//! that own their state, reached through channels). Protocol state per peer
//! is a sans-IO state machine ([`session`]); each torrent's decisions are
//! the `rustico_swarm` state machine's.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod config;
mod engine;
mod logging;
mod magnet;
mod meta;
mod progress;
mod run;
mod session;

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
    };
    log::logger().flush();
    if let Err(e) = result {
        eprintln!("rustico: {e}");
        std::process::exit(1);
    }
}
