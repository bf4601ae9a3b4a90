//! `rustico`: a threaded BitTorrent client and seeder.
//!
//! Not implemented yet; see the client issue.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("rustico: the client is not implemented yet");
    std::process::exit(2);
}
