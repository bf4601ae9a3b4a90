//! `rustico`: a threaded BitTorrent client and seeder.
//!
//! The binary is glue: the command line ([`cli`]) picks a command, and the
//! engine wires the rustico library crates together as actors (threads that
//! own their state, reached through channels). Policies that need no I/O
//! ([`choker`], [`peer_policy`]) are pure logic with their own tests.
#![forbid(unsafe_code)]

#[allow(dead_code)] // wired in by the engine, next
mod choker;
mod cli;
#[allow(dead_code)]
mod config;
mod logging;
#[allow(dead_code)]
mod peer_policy;
#[allow(dead_code)]
mod progress;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let _ = logging::init(cli.verbose, None);
    eprintln!("rustico: not implemented yet: {:?}", cli.command);
    std::process::exit(2);
}
