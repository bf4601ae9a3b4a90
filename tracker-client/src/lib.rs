//! BitTorrent tracker clients: announce and scrape over HTTP(S) (BEP 3, 23,
//! 7, 48) and UDP (BEP 15), announce-list tiers (BEP 12) and re-announce
//! timing. The protocol is sans-IO; two blocking transports sit on top.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rustico_tracker_client::{parse_announce_response, AnnounceRequest, Event, ReannounceSchedule, ScheduleConfig};
//!
//! // Build the request URL (the caller does the HTTP GET)...
//! let mut request = AnnounceRequest::new([0xab; 20], *b"-RS0100-abcdefghijkl", 6881);
//! request.left = 1 << 20;
//! request.event = Event::Started;
//! let url = request.http_url("http://tracker.test/announce")?;
//! assert!(url.contains("info_hash=%AB%AB") && url.contains("&event=started"));
//!
//! // ...parse what came back, and schedule the next announce.
//! let response = parse_announce_response(b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x1a\xe1e")?;
//! assert_eq!(response.peers[0].to_string(), "127.0.0.1:6881");
//! let now = Instant::now();
//! let mut schedule = ReannounceSchedule::new(ScheduleConfig::default(), now);
//! assert_eq!(schedule.poll_announce(now), Some(Event::Started));
//! schedule.handle_response(now, &response);
//! assert_eq!(schedule.poll_timeout(), Some(now + Duration::from_secs(900)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the transports (blocking; call them from a tracker thread):
//!
//! ```no_run
//! use rustico_tracker_client::{announce, scrape, AnnounceRequest, TransportConfig};
//! let request = AnnounceRequest::new([0xab; 20], *b"-RS0100-abcdefghijkl", 6881);
//! let config = TransportConfig::default();
//! let response = announce("http://127.0.0.1:6969/announce", &request, &config)?;
//! let counts = scrape("udp://127.0.0.1:6969/announce", &[[0xab; 20]], &config)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`AnnounceRequest`] (→ [`AnnounceRequest::http_url`]), [`Event`],
//!   [`parse_announce_response`] → [`AnnounceResponse`] or [`ResponseError`]
//!   (a tracker's `failure reason` is [`ResponseError::Failure`]).
//! - [`scrape_url`], [`scrape_request_url`], [`parse_scrape_response`] →
//!   [`ScrapeResponse`].
//! - [`udp`]: the BEP 15 codec and the [`udp::UdpSession`] state machine.
//! - [`TrackerList`]: BEP 12 tiers; [`AnnouncePass`]: one announce over
//!   them, overlapping a slow tracker with the next. [`ReannounceSchedule`]:
//!   when to announce.
//! - [`Client`], [`announce`], [`scrape`], [`TransportConfig`], [`Error`]:
//!   the blocking transports.
//!
//! # Cargo features
//! - `http` (default): the HTTP(S) transport, through ureq with rustls.
//!   Without it the crate is the sans-IO core plus the UDP transport (std
//!   only), and HTTP URLs fail with [`Error::HttpDisabled`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod announce;
mod schedule;
mod scrape;
mod tiers;
mod transport;
pub mod udp;

pub use announce::{
    parse_announce_response, percent_encode_into, AnnounceRequest, AnnounceResponse, Event,
    ResponseError, UrlError,
};
pub use schedule::{ReannounceSchedule, ScheduleConfig};
pub use scrape::{
    parse_scrape_response, scrape_request_url, scrape_url, ScrapeResponse, ScrapeStats,
};
pub use tiers::{AnnouncePass, PassConfig, TrackerList, TrackerPosition};
pub use transport::{announce, scrape, Client, Error, TransportConfig};
pub use udp::{UdpConfig, UdpError};
