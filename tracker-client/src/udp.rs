//! The UDP tracker protocol (BEP 15) as a sans-IO state machine.
//!
//! A [`UdpSession`] talks to one tracker address. It does no I/O and reads
//! no clock: the caller owns the socket and passes `now`. Drive it so:
//!
//! 1. [`UdpSession::start_announce`] or [`UdpSession::start_scrape`];
//! 2. loop: send what [`UdpSession::poll_transmit`] writes; wait for a
//!    datagram until [`UdpSession::poll_timeout`]; hand a datagram to
//!    [`UdpSession::handle_datagram`], or the deadline to
//!    [`UdpSession::handle_timeout`]; stop once [`UdpSession::poll_outcome`]
//!    returns the result.
//!
//! The session keeps its connection id for [`UdpConfig::connection_lifetime`]
//! (one minute in BEP 15), so the next request skips the connect round trip.
//! A request unanswered after `base * 2^n` (n = 0, 1, ...) is sent again;
//! after [`UdpConfig::max_retransmits`] retransmissions the operation fails.
//! One counter spans the whole operation (connect and request), so a tracker
//! that answers connects but never announces still fails in bounded time.
//! Over all of it sits one deadline, [`UdpConfig::attempt_timeout`] after
//! the operation started: whatever arrives, the operation has its outcome
//! by then.
//!
//! Datagrams that are not for the request in flight (another transaction
//! id, or too short to carry one) are dropped and reported by
//! `handle_datagram`: an off-path attacker must not be able to end an
//! announce with one spoofed packet, and no number of them moves a
//! deadline. If the operation runs out of time after
//! such a datagram, it fails with what was wrong with the last
//! one rather than with a plain [`UdpError::TimedOut`]. A datagram with the
//! right transaction id is the tracker's answer: a malformed one (truncated,
//! wrong action) ends the operation with that error at once. So does an
//! ICMP port unreachable the caller's socket reports
//! ([`UdpSession::handle_port_unreachable`]): nobody listens there, and
//! waiting out the retransmissions would only hold up the next tracker.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use byteorder::{BigEndian, ByteOrder};

use crate::announce::{parse_compact_v4, parse_compact_v6, AnnounceRequest, AnnounceResponse};
use crate::scrape::{ScrapeResponse, ScrapeStats};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;
/// Most info-hashes one UDP scrape may carry (BEP 15).
pub const MAX_SCRAPE_HASHES: usize = 74;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// Timing of the UDP protocol.
///
/// The defaults keep BEP 15's shape (a timeout of `base * 2^n` after the
/// n-th send) but not its numbers: 15 s doubling eight times adds up to
/// over two hours for one attempt, during which a dead tracker holds up
/// every other. Like libtorrent, whose whole tracker attempt must end within
/// `tracker_completion_timeout` (30 s) and which retransmits only a few
/// times, we give an attempt 15 s in all ([`UdpConfig::attempt_timeout`]):
/// sends at 0, 2 and 6 s, giving up at 14 s. A UDP tracker answers in one
/// round trip, so three sends over 14 s cover a lossy path; an announce
/// that fails is retried by the re-announce schedule anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// First retransmission timeout (2 s; BEP 15 says 15 s). Tests make it
    /// small. Each timeout is capped at one day.
    pub retransmit_base: Duration,
    /// Retransmissions before giving up (2; BEP 15 says up to n = 8).
    pub max_retransmits: u32,
    /// The whole operation (connect and request, every retransmission)
    /// ends within this after it started (15 s), whatever the tracker or
    /// anyone else sends meanwhile.
    pub attempt_timeout: Duration,
    /// How long a connection id stays usable after it arrived (60 s).
    pub connection_lifetime: Duration,
}

impl Default for UdpConfig {
    fn default() -> UdpConfig {
        UdpConfig {
            retransmit_base: Duration::from_secs(2),
            max_retransmits: 2,
            attempt_timeout: Duration::from_secs(15),
            connection_lifetime: Duration::from_secs(60),
        }
    }
}

impl UdpConfig {
    /// The worst-case time an operation takes before it fails with
    /// [`UdpError::TimedOut`]: the sum of every timeout, or
    /// [`UdpConfig::attempt_timeout`] if that is shorter.
    pub fn max_operation_time(&self) -> Duration {
        let schedule: Duration = (0..=self.max_retransmits).map(|n| self.timeout(n)).sum();
        schedule.min(self.attempt_timeout)
    }

    /// `base * 2^attempt`, capped at a day so that no configuration can
    /// push a deadline past what an `Instant` holds.
    fn timeout(&self, attempt: u32) -> Duration {
        self.retransmit_base
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(Duration::from_secs(86_400))
    }
}

/// What a UDP tracker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpResponse {
    /// The answer to an announce (`min_interval`, `tracker_id` and
    /// `warning` are always `None` over UDP).
    Announce(AnnounceResponse),
    /// The answer to a scrape.
    Scrape(ScrapeResponse),
}

/// Why a UDP tracker operation failed, or why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The tracker answered with an error action and this message.
    #[error("tracker failure: {message}")]
    Failure {
        /// The tracker's text, lossily decoded as UTF-8.
        message: String,
    },
    /// No answer after every retransmission.
    #[error("no answer from the UDP tracker after {attempts} attempts")]
    TimedOut {
        /// Datagrams sent (the first plus retransmissions).
        attempts: u32,
    },
    /// A datagram shorter than its action requires.
    #[error("truncated datagram: {len} bytes, need at least {min}")]
    Truncated {
        /// Its length.
        len: usize,
        /// The least length the action needs.
        min: usize,
    },
    /// A datagram whose transaction id is not the one of the request in flight.
    #[error("transaction id 0x{got:08x} does not match the request's 0x{expected:08x}")]
    TransactionIdMismatch {
        /// The id sent.
        expected: u32,
        /// The id received.
        got: u32,
    },
    /// A datagram whose action is not the answer to the request in flight.
    #[error("action {got} where {expected} was expected")]
    UnexpectedAction {
        /// The action that would answer the request.
        expected: u32,
        /// The action received.
        got: u32,
    },
    /// ICMP port unreachable: nothing listens at the tracker's address
    /// (the caller's connected socket reported `ConnectionRefused`).
    #[error("the tracker's port is unreachable (ICMP port unreachable)")]
    PortUnreachable,
    /// A datagram arrived while no request was in flight.
    #[error("datagram with no request in flight")]
    Unsolicited,
    /// A request was started while another was in flight.
    #[error("a request is already in flight")]
    Busy,
    /// A scrape with more info-hashes than fit in one request.
    #[error("{count} info-hashes in one scrape; at most {max}")]
    TooManyHashes {
        /// How many were asked for.
        count: usize,
        /// [`MAX_SCRAPE_HASHES`].
        max: usize,
    },
}

#[derive(Debug, Clone)]
enum Request {
    Announce(Box<AnnounceRequest>),
    Scrape(Vec<[u8; 20]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Requesting,
}

#[derive(Debug)]
struct Operation {
    request: Request,
    stage: Stage,
    transaction_id: u32,
    /// Datagrams sent so far in this operation.
    sent: u32,
    /// When the datagram in flight times out; `None` until it is sent.
    deadline: Option<Instant>,
    /// When the whole operation times out; `None` if beyond what an
    /// `Instant` holds.
    expires: Option<Instant>,
    needs_send: bool,
    last_rejected: Option<UdpError>,
}

/// One UDP tracker: connection id, request in flight, retransmission timer.
/// See the [module docs](self) for how to drive it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_tracker_client::udp::{UdpConfig, UdpError, UdpSession};
/// use rustico_tracker_client::AnnounceRequest;
///
/// let config = UdpConfig { retransmit_base: Duration::from_secs(1), max_retransmits: 1, ..UdpConfig::default() };
/// assert_eq!(config.max_operation_time(), Duration::from_secs(3));
/// let mut session = UdpSession::new(config, false, 7);
/// let start = Instant::now();
/// session.start_announce(&AnnounceRequest::new([1; 20], [2; 20], 6881), start)?;
/// let mut datagram = Vec::new();
/// assert!(session.poll_transmit(start, &mut datagram)); // a connect request
/// assert_eq!(datagram.len(), 16);
/// // Nobody answers: retransmit after 1 s, give up 2 s later.
/// session.handle_timeout(start + Duration::from_secs(1));
/// assert!(session.poll_transmit(start + Duration::from_secs(1), &mut datagram));
/// session.handle_timeout(start + Duration::from_secs(3));
/// assert_eq!(session.poll_outcome(), Some(Err(UdpError::TimedOut { attempts: 2 })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct UdpSession {
    config: UdpConfig,
    ipv6: bool,
    rng: u64,
    connection: Option<(u64, Instant)>,
    operation: Option<Operation>,
    outcome: Option<Result<UdpResponse, UdpError>>,
}

impl UdpSession {
    /// A session for one tracker. `ipv6` says whether the tracker is reached
    /// over IPv6 (its compact peers are then 18 bytes each); `seed` seeds the
    /// transaction ids (take it from a real random source outside tests).
    pub fn new(config: UdpConfig, ipv6: bool, seed: u64) -> UdpSession {
        UdpSession {
            config,
            ipv6,
            rng: seed,
            connection: None,
            operation: None,
            outcome: None,
        }
    }

    /// A session whose tracker is at `addr` (picks the peer format from it).
    pub fn for_addr(config: UdpConfig, addr: SocketAddr, seed: u64) -> UdpSession {
        UdpSession::new(config, addr.is_ipv6(), seed)
    }

    /// The connection id in hand, if it is still usable at `now`.
    pub fn connection_id(&self, now: Instant) -> Option<u64> {
        self.connection
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.config.connection_lifetime)
            .map(|(id, _)| id)
    }

    /// Whether a request is in flight.
    pub fn is_busy(&self) -> bool {
        self.operation.is_some()
    }

    /// Starts an announce.
    pub fn start_announce(
        &mut self,
        request: &AnnounceRequest,
        now: Instant,
    ) -> Result<(), UdpError> {
        self.start(Request::Announce(Box::new(request.clone())), now)
    }

    /// Starts a scrape of up to [`MAX_SCRAPE_HASHES`] info-hashes.
    pub fn start_scrape(&mut self, info_hashes: &[[u8; 20]], now: Instant) -> Result<(), UdpError> {
        if info_hashes.len() > MAX_SCRAPE_HASHES {
            return Err(UdpError::TooManyHashes {
                count: info_hashes.len(),
                max: MAX_SCRAPE_HASHES,
            });
        }
        self.start(Request::Scrape(info_hashes.to_vec()), now)
    }

    fn start(&mut self, request: Request, now: Instant) -> Result<(), UdpError> {
        if self.operation.is_some() {
            return Err(UdpError::Busy);
        }
        let stage = if self.connection_id(now).is_some() {
            Stage::Requesting
        } else {
            Stage::Connecting
        };
        self.outcome = None;
        let transaction_id = self.next_transaction_id();
        self.operation = Some(Operation {
            request,
            stage,
            transaction_id,
            sent: 0,
            deadline: None,
            expires: now.checked_add(self.config.attempt_timeout),
            needs_send: true,
            last_rejected: None,
        });
        Ok(())
    }

    /// Writes the next datagram to send into `out` (cleared first) and
    /// returns true, or returns false when there is nothing to send.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let connection_id = self.connection_id(now);
        // A connection id may expire while a request waits for an answer.
        let reconnect = matches!(&self.operation,
            Some(op) if op.needs_send && op.stage == Stage::Requesting && connection_id.is_none());
        let fresh_transaction_id = if reconnect {
            Some(self.next_transaction_id())
        } else {
            None
        };
        let config = self.config;
        let Some(op) = self.operation.as_mut() else {
            return false;
        };
        if !op.needs_send {
            return false;
        }
        if let Some(transaction_id) = fresh_transaction_id {
            op.stage = Stage::Connecting;
            op.transaction_id = transaction_id;
        }
        out.clear();
        match (op.stage, connection_id) {
            (Stage::Requesting, Some(id)) => match &op.request {
                Request::Announce(request) => encode_announce(out, id, op.transaction_id, request),
                Request::Scrape(hashes) => encode_scrape(out, id, op.transaction_id, hashes),
            },
            _ => encode_connect(out, op.transaction_id),
        }
        let retransmit = now.checked_add(config.timeout(op.sent));
        op.deadline = match (retransmit, op.expires) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        };
        op.sent += 1;
        op.needs_send = false;
        true
    }

    /// When [`UdpSession::handle_timeout`] should be called next: the
    /// retransmission timer, never later than the operation's deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let op = self.operation.as_ref()?;
        match (op.deadline, op.expires) {
            (Some(d), Some(e)) => Some(d.min(e)),
            (d, e) => d.or(e),
        }
    }

    /// The time is `now`: retransmit, or give up if the retransmissions ran
    /// out or the operation's deadline ([`UdpConfig::attempt_timeout`])
    /// passed. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let max = self.config.max_retransmits;
        let Some(op) = self.operation.as_mut() else {
            return;
        };
        let expired = op.expires.is_some_and(|e| now >= e);
        if !expired && op.deadline.is_none_or(|d| now < d) {
            return;
        }
        if expired || op.sent > max {
            let error = op
                .last_rejected
                .take()
                .unwrap_or(UdpError::TimedOut { attempts: op.sent });
            self.finish(Err(error));
        } else {
            op.deadline = None;
            op.needs_send = true;
        }
    }

    /// A datagram arrived from the tracker. `Err` says what was wrong with it.
    ///
    /// A datagram that is not for the request in flight (shorter than the
    /// 8-byte header, or another transaction id) is dropped and the
    /// operation goes on. One that carries the right transaction id is the
    /// tracker's answer: if it is malformed (truncated, wrong action, a
    /// partial peer entry) the operation ends with that error, as it does
    /// with a failure the tracker reports. Either way the outcome shows in
    /// [`UdpSession::poll_outcome`].
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), UdpError> {
        let Some(op) = self.operation.as_mut() else {
            return Err(UdpError::Unsolicited);
        };
        let (action, transaction_id) = match (datagram.get(0..4), datagram.get(4..8)) {
            (Some(action), Some(id)) => (BigEndian::read_u32(action), BigEndian::read_u32(id)),
            _ => {
                let error = UdpError::Truncated {
                    len: datagram.len(),
                    min: 8,
                };
                op.last_rejected = Some(error.clone());
                return Err(error);
            }
        };
        if transaction_id != op.transaction_id {
            let error = UdpError::TransactionIdMismatch {
                expected: op.transaction_id,
                got: transaction_id,
            };
            op.last_rejected = Some(error.clone());
            return Err(error);
        }
        match self.accept_answer(action, datagram, now) {
            Err(error) => {
                self.finish(Err(error.clone()));
                Err(error)
            }
            Ok(()) => Ok(()),
        }
    }

    /// Handles a datagram whose header matches the request in flight.
    fn accept_answer(
        &mut self,
        action: u32,
        datagram: &[u8],
        now: Instant,
    ) -> Result<(), UdpError> {
        let Some(op) = self.operation.as_ref() else {
            return Err(UdpError::Unsolicited);
        };
        // `handle_datagram` refused datagrams shorter than the header.
        let Some(body) = datagram.get(8..) else {
            debug_assert!(false, "an answer shorter than its header");
            return Err(UdpError::Truncated {
                len: datagram.len(),
                min: 8,
            });
        };
        if action == ACTION_ERROR {
            let message = String::from_utf8_lossy(body).into_owned();
            self.finish(Err(UdpError::Failure { message }));
            return Ok(());
        }
        let expected = match (op.stage, &op.request) {
            (Stage::Connecting, _) => ACTION_CONNECT,
            (Stage::Requesting, Request::Announce(_)) => ACTION_ANNOUNCE,
            (Stage::Requesting, Request::Scrape(_)) => ACTION_SCRAPE,
        };
        if action != expected {
            return Err(UdpError::UnexpectedAction {
                expected,
                got: action,
            });
        }
        match (op.stage, &op.request) {
            (Stage::Connecting, _) => {
                if body.len() < 8 {
                    return Err(UdpError::Truncated {
                        len: datagram.len(),
                        min: 16,
                    });
                }
                self.connection = Some((BigEndian::read_u64(&body[0..8]), now));
                let transaction_id = self.next_transaction_id();
                if let Some(op) = self.operation.as_mut() {
                    op.stage = Stage::Requesting;
                    op.transaction_id = transaction_id;
                    op.deadline = None;
                    op.needs_send = true;
                }
            }
            (Stage::Requesting, Request::Announce(_)) => {
                let response = parse_udp_announce(datagram, self.ipv6)?;
                self.finish(Ok(UdpResponse::Announce(response)));
            }
            (Stage::Requesting, Request::Scrape(hashes)) => {
                let response = parse_udp_scrape(datagram, hashes)?;
                self.finish(Ok(UdpResponse::Scrape(response)));
            }
        }
        Ok(())
    }

    /// The caller's socket reported ICMP port unreachable
    /// (`ConnectionRefused` on a connected socket): the operation in
    /// flight ends at once with [`UdpError::PortUnreachable`]. Nothing
    /// happens if no request is in flight.
    pub fn handle_port_unreachable(&mut self) {
        if self.operation.is_some() {
            self.finish(Err(UdpError::PortUnreachable));
        }
    }

    /// The result of the finished operation, once (then `None`).
    pub fn poll_outcome(&mut self) -> Option<Result<UdpResponse, UdpError>> {
        self.outcome.take()
    }

    /// Abandons the request in flight (the connection id is kept).
    pub fn cancel(&mut self) {
        self.operation = None;
    }

    fn finish(&mut self, outcome: Result<UdpResponse, UdpError>) {
        self.operation = None;
        self.outcome = Some(outcome);
    }

    fn next_transaction_id(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (splitmix64(self.rng) >> 32) as u32
    }
}

/// One step of splitmix64: a small, seedable, good-enough generator.
pub(crate) fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes a connect request (16 bytes).
pub fn encode_connect(out: &mut Vec<u8>, transaction_id: u32) {
    out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
}

/// Writes an announce request (98 bytes). `numwant: None` is sent as -1
/// (the tracker's default), `key: None` as 0; the IP field is always 0.
pub fn encode_announce(
    out: &mut Vec<u8>,
    connection_id: u64,
    transaction_id: u32,
    request: &AnnounceRequest,
) {
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    out.extend_from_slice(&request.info_hash);
    out.extend_from_slice(&request.peer_id);
    out.extend_from_slice(&request.downloaded.to_be_bytes());
    out.extend_from_slice(&request.left.to_be_bytes());
    out.extend_from_slice(&request.uploaded.to_be_bytes());
    out.extend_from_slice(&request.event.udp_code().to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(request.key.unwrap_or(0)).to_be_bytes());
    out.extend_from_slice(&(request.numwant.unwrap_or(u32::MAX)).to_be_bytes());
    out.extend_from_slice(&request.port.to_be_bytes());
}

/// Writes a scrape request (16 + 20 per info-hash bytes).
pub fn encode_scrape(
    out: &mut Vec<u8>,
    connection_id: u64,
    transaction_id: u32,
    info_hashes: &[[u8; 20]],
) {
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for hash in info_hashes {
        out.extend_from_slice(hash);
    }
}

/// Parses an announce response datagram (header included).
fn parse_udp_announce(datagram: &[u8], ipv6: bool) -> Result<AnnounceResponse, UdpError> {
    if datagram.len() < 20 {
        return Err(UdpError::Truncated {
            len: datagram.len(),
            min: 20,
        });
    }
    let peers = &datagram[20..];
    let mut response = AnnounceResponse {
        interval: Duration::from_secs(u64::from(BigEndian::read_u32(&datagram[8..12]))),
        incomplete: Some(BigEndian::read_u32(&datagram[12..16])),
        complete: Some(BigEndian::read_u32(&datagram[16..20])),
        ..AnnounceResponse::default()
    };
    // Lenient as over HTTP: whole entries kept, stray bytes reported.
    let stray = if ipv6 {
        parse_compact_v6(peers, 20, &mut response.peers)
    } else {
        parse_compact_v4(peers, 20, &mut response.peers)
    };
    response.skipped.extend(stray);
    Ok(response)
}

/// Parses a scrape response datagram: 12 bytes per hash, in request order.
/// A tracker may answer fewer hashes than asked, never a partial entry.
fn parse_udp_scrape(datagram: &[u8], hashes: &[[u8; 20]]) -> Result<ScrapeResponse, UdpError> {
    let Some(entries) = datagram.get(8..) else {
        return Err(UdpError::Truncated {
            len: datagram.len(),
            min: 8,
        });
    };
    if entries.len() % 12 != 0 {
        return Err(UdpError::Truncated {
            len: datagram.len(),
            min: 8 + entries.len().div_ceil(12) * 12,
        });
    }
    let mut response = ScrapeResponse::default();
    for (hash, entry) in hashes.iter().zip(entries.chunks_exact(12)) {
        response.files.insert(
            *hash,
            ScrapeStats {
                complete: BigEndian::read_u32(&entry[0..4]),
                downloaded: BigEndian::read_u32(&entry[4..8]),
                incomplete: BigEndian::read_u32(&entry[8..12]),
            },
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::Event;

    fn config() -> UdpConfig {
        // BEP 15's own numbers, no overall deadline.
        UdpConfig {
            retransmit_base: Duration::from_secs(15),
            max_retransmits: 8,
            attempt_timeout: Duration::MAX,
            connection_lifetime: Duration::from_secs(60),
        }
    }

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [0x11; 20],
            peer_id: [0x22; 20],
            port: 0x1ae1,
            uploaded: 0x0102_0304_0506_0708,
            downloaded: 0x1112_1314_1516_1718,
            left: 0x2122_2324_2526_2728,
            event: Event::Started,
            numwant: Some(50),
            key: Some(0xdead_beef),
            tracker_id: None,
            compact: true,
        }
    }

    fn header(action: u32, tid: u32) -> Vec<u8> {
        let mut d = action.to_be_bytes().to_vec();
        d.extend_from_slice(&tid.to_be_bytes());
        d
    }

    fn tid_of(datagram: &[u8]) -> u32 {
        BigEndian::read_u32(&datagram[12..16])
    }

    /// Connects a fresh session and returns it with the announce datagram.
    fn connected(now: Instant) -> (UdpSession, Vec<u8>) {
        let mut s = UdpSession::new(config(), false, 1);
        s.start_announce(&request(), now).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_transmit(now, &mut out));
        let mut reply = header(0, tid_of(&out));
        reply.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        s.handle_datagram(&reply, now).unwrap();
        assert!(s.poll_transmit(now, &mut out));
        (s, out)
    }

    #[test]
    fn connect_request_byte_exact() {
        let mut out = Vec::new();
        encode_connect(&mut out, 0xaabb_ccdd);
        assert_eq!(
            out,
            [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd]
        );
    }

    #[test]
    fn announce_request_byte_exact() {
        let mut out = Vec::new();
        encode_announce(&mut out, 0x0102_0304_0506_0708, 0xaabb_ccdd, &request());
        let mut want = vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd];
        want.extend_from_slice(&[0x11; 20]);
        want.extend_from_slice(&[0x22; 20]);
        want.extend_from_slice(&[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]);
        want.extend_from_slice(&[0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28]);
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        want.extend_from_slice(&[0, 0, 0, 2]); // started
        want.extend_from_slice(&[0, 0, 0, 0]); // ip
        want.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        want.extend_from_slice(&[0, 0, 0, 50]);
        want.extend_from_slice(&[0x1a, 0xe1]);
        assert_eq!(out, want);
        assert_eq!(out.len(), 98);

        let mut r = request();
        r.numwant = None;
        r.key = None;
        r.event = Event::Stopped;
        out.clear();
        encode_announce(&mut out, 0, 0, &r);
        assert_eq!(&out[80..84], &[0, 0, 0, 3]);
        assert_eq!(&out[88..96], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        for (event, code) in [
            (Event::None, 0),
            (Event::Completed, 1),
            (Event::Started, 2),
            (Event::Stopped, 3),
        ] {
            assert_eq!(event.udp_code(), code);
        }
    }

    #[test]
    fn scrape_request_byte_exact() {
        let mut out = Vec::new();
        encode_scrape(&mut out, 7, 9, &[[0xaa; 20], [0xbb; 20]]);
        let mut want = vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9];
        want.extend_from_slice(&[0xaa; 20]);
        want.extend_from_slice(&[0xbb; 20]);
        assert_eq!(out, want);
    }

    #[test]
    fn announce_flow_every_response_field() {
        let now = Instant::now();
        let (mut s, out) = connected(now);
        assert_eq!(
            &out[0..8],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "announce carries the connection id"
        );
        let mut reply = header(1, tid_of(&out[..]));
        reply.extend_from_slice(&[0, 0, 0x07, 0x08]); // interval 1800
        reply.extend_from_slice(&[0, 0, 0, 3]); // leechers
        reply.extend_from_slice(&[0, 0, 0, 9]); // seeders
        reply.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80]);
        s.handle_datagram(&reply, now).unwrap();
        let Some(Ok(UdpResponse::Announce(r))) = s.poll_outcome() else {
            panic!("no announce outcome")
        };
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.incomplete, Some(3));
        assert_eq!(r.complete, Some(9));
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap()
            ]
        );
        assert!(!s.is_busy());
    }

    #[test]
    fn ipv6_tracker_peers_are_18_bytes() {
        let now = Instant::now();
        let mut s = UdpSession::new(config(), true, 3);
        s.start_announce(&request(), now).unwrap();
        let mut out = Vec::new();
        s.poll_transmit(now, &mut out);
        let mut reply = header(0, tid_of(&out));
        reply.extend_from_slice(&[0; 8]);
        s.handle_datagram(&reply, now).unwrap();
        s.poll_transmit(now, &mut out);
        let mut reply = header(1, tid_of(&out));
        reply.extend_from_slice(&[0; 12]);
        let mut peer = [0u8; 18];
        peer[15] = 1;
        peer[17] = 80;
        reply.extend_from_slice(&peer);
        s.handle_datagram(&reply, now).unwrap();
        let Some(Ok(UdpResponse::Announce(r))) = s.poll_outcome() else {
            panic!()
        };
        assert_eq!(r.peers, vec!["[::1]:80".parse().unwrap()]);
    }

    #[test]
    fn scrape_flow_and_connection_reuse_for_a_minute() {
        let t0 = Instant::now();
        let (mut s, out) = connected(t0);
        let mut reply = header(1, tid_of(&out));
        reply.extend_from_slice(&[0; 12]);
        s.handle_datagram(&reply, t0).unwrap();
        assert!(s.poll_outcome().unwrap().is_ok());

        // 59 s later: the scrape goes out directly with the same connection id.
        let t1 = t0 + Duration::from_secs(59);
        s.start_scrape(&[[0xaa; 20], [0xbb; 20]], t1).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_transmit(t1, &mut out));
        assert_eq!(out.len(), 16 + 40);
        assert_eq!(&out[0..12], &[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 2]);
        let mut reply = header(2, tid_of(&out));
        reply.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        reply.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6]);
        s.handle_datagram(&reply, t1).unwrap();
        let Some(Ok(UdpResponse::Scrape(r))) = s.poll_outcome() else {
            panic!()
        };
        assert_eq!(
            r.files[&[0xaa; 20]],
            ScrapeStats {
                complete: 1,
                downloaded: 2,
                incomplete: 3
            }
        );
        assert_eq!(
            r.files[&[0xbb; 20]],
            ScrapeStats {
                complete: 4,
                downloaded: 5,
                incomplete: 6
            }
        );

        // 60 s after the connect: the id has expired, a new connect goes out.
        let t2 = t0 + Duration::from_secs(60);
        assert_eq!(s.connection_id(t2), None);
        s.start_announce(&request(), t2).unwrap();
        assert!(s.poll_transmit(t2, &mut out));
        assert_eq!(out.len(), 16);
        assert_eq!(&out[0..8], &PROTOCOL_ID.to_be_bytes());
    }

    #[test]
    fn retransmits_at_15_times_2_to_the_n_then_times_out() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(config(), false, 5);
        s.start_announce(&request(), t0).unwrap();
        let mut out = Vec::new();
        let mut now = t0;
        let mut first = Vec::new();
        assert!(s.poll_transmit(now, &mut first));
        for n in 0..=8u32 {
            let timeout = Duration::from_secs(15 << n);
            assert_eq!(s.poll_timeout(), Some(now + timeout), "n = {n}");
            s.handle_timeout(now + timeout - Duration::from_millis(1));
            assert!(!s.poll_transmit(now, &mut out), "early timeout is harmless");
            now += timeout;
            s.handle_timeout(now);
            if n < 8 {
                assert!(s.poll_transmit(now, &mut out));
                assert_eq!(out, first, "retransmits the same connect");
            }
        }
        assert_eq!(now - t0, Duration::from_secs(15 * 511));
        assert_eq!(config().max_operation_time(), Duration::from_secs(15 * 511));
        assert_eq!(
            s.poll_outcome(),
            Some(Err(UdpError::TimedOut { attempts: 9 }))
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn expired_connection_reconnects_on_retransmit() {
        let t0 = Instant::now();
        let (mut s, _) = connected(t0);
        let mut out = Vec::new();
        // One counter for the operation: the connect used 15 s, the announce
        // waits 30 s, then 60 s.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        s.handle_timeout(t0 + Duration::from_secs(30));
        assert!(s.poll_transmit(t0 + Duration::from_secs(30), &mut out));
        assert_eq!(out.len(), 98, "still within the minute");
        s.handle_timeout(t0 + Duration::from_secs(90));
        assert!(s.poll_transmit(t0 + Duration::from_secs(90), &mut out));
        assert_eq!(out.len(), 16, "connects again once the id expired");
    }

    #[test]
    fn datagrams_for_another_request_are_dropped() {
        let t0 = Instant::now();
        let (mut s, out) = connected(t0);
        let tid = tid_of(&out);
        assert_eq!(
            s.handle_datagram(&header(1, tid ^ 1), t0),
            Err(UdpError::TransactionIdMismatch {
                expected: tid,
                got: tid ^ 1
            })
        );
        assert!(s.is_busy(), "a spoofed datagram does not end the announce");
        assert_eq!(
            s.handle_datagram(&[0, 0, 0], t0),
            Err(UdpError::Truncated { len: 3, min: 8 })
        );
        assert_eq!(
            s.handle_datagram(&header(1, tid ^ 2), t0),
            Err(UdpError::TransactionIdMismatch {
                expected: tid,
                got: tid ^ 2
            })
        );
        assert!(s.is_busy());
        assert_eq!(s.poll_outcome(), None);
        // Retransmissions run out: the error says what was wrong last.
        while let Some(deadline) = s.poll_timeout() {
            s.handle_timeout(deadline);
            s.poll_transmit(deadline, &mut Vec::new());
        }
        assert_eq!(
            s.poll_outcome(),
            Some(Err(UdpError::TransactionIdMismatch {
                expected: tid,
                got: tid ^ 2
            }))
        );
    }

    #[test]
    fn a_malformed_answer_ends_the_operation() {
        let t0 = Instant::now();
        let cases: [(Vec<u8>, UdpError); 2] = [
            (vec![], UdpError::Truncated { len: 8, min: 20 }),
            (
                vec![],
                UdpError::UnexpectedAction {
                    expected: 1,
                    got: 2,
                },
            ),
        ];
        for (i, (tail, error)) in cases.into_iter().enumerate() {
            let (mut s, out) = connected(t0);
            let mut reply = header(if i == 1 { 2 } else { 1 }, tid_of(&out));
            reply.extend_from_slice(&tail);
            assert_eq!(s.handle_datagram(&reply, t0), Err(error.clone()));
            assert!(!s.is_busy());
            assert_eq!(s.poll_outcome(), Some(Err(error)));
        }
        // A connect answer too short for the connection id.
        let mut s = UdpSession::new(config(), false, 1);
        s.start_announce(&request(), t0).unwrap();
        let mut out = Vec::new();
        s.poll_transmit(t0, &mut out);
        let mut reply = header(0, tid_of(&out));
        reply.extend_from_slice(&[1, 2, 3]);
        let error = UdpError::Truncated { len: 11, min: 16 };
        assert_eq!(s.handle_datagram(&reply, t0), Err(error.clone()));
        assert_eq!(s.poll_outcome(), Some(Err(error)));
    }

    #[test]
    fn a_partial_peer_entry_is_skipped_not_fatal() {
        let t0 = Instant::now();
        let (mut s, out) = connected(t0);
        let mut reply = header(1, tid_of(&out));
        reply.extend_from_slice(&[0; 12]);
        reply.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 9, 9, 9]);
        s.handle_datagram(&reply, t0).unwrap();
        let Some(Ok(UdpResponse::Announce(r))) = s.poll_outcome() else {
            panic!("no announce outcome")
        };
        assert_eq!(r.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        assert_eq!(
            r.skipped,
            vec![crate::ResponseError::CompactPeersLength {
                key: "peers",
                offset: 20,
                len: 9,
                entry: 6
            }]
        );
    }

    /// Drives `s` with no answer (or only what `feed` sends at each step)
    /// until it has an outcome; returns when, and how many datagrams it sent.
    fn run_out(s: &mut UdpSession, t0: Instant) -> (Duration, u32) {
        let mut out = Vec::new();
        let mut sent = 0;
        let mut now = t0;
        loop {
            while s.poll_transmit(now, &mut out) {
                sent += 1;
            }
            let Some(deadline) = s.poll_timeout() else {
                return (now - t0, sent);
            };
            now = deadline;
            s.handle_timeout(now);
        }
    }

    #[test]
    fn default_attempt_is_short_and_keeps_the_shape() {
        let defaults = UdpConfig::default();
        assert_eq!(defaults.max_operation_time(), Duration::from_secs(14));
        let t0 = Instant::now();
        let mut s = UdpSession::new(defaults, false, 9);
        s.start_announce(&request(), t0).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_transmit(t0, &mut out));
        // 2 s, then 4 s, then 8 s: 2 * 2^n.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        s.handle_timeout(t0 + Duration::from_secs(2));
        assert!(s.poll_transmit(t0 + Duration::from_secs(2), &mut out));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(6)));
        let (took, sent) = run_out(&mut s, t0 + Duration::from_secs(2));
        assert_eq!((took, sent), (Duration::from_secs(12), 1));
        assert_eq!(
            s.poll_outcome(),
            Some(Err(UdpError::TimedOut { attempts: 3 }))
        );

        // BEP 15's own schedule under a 15 s deadline: cut at 15 s, not
        // two hours.
        let bep15 = UdpConfig {
            attempt_timeout: Duration::from_secs(15),
            ..config()
        };
        assert_eq!(bep15.max_operation_time(), Duration::from_secs(15));
        let mut s = UdpSession::new(bep15, false, 9);
        s.start_announce(&request(), t0).unwrap();
        assert_eq!(run_out(&mut s, t0), (Duration::from_secs(15), 1));
        assert_eq!(
            s.poll_outcome(),
            Some(Err(UdpError::TimedOut { attempts: 1 }))
        );
    }

    #[test]
    fn a_wrong_transaction_id_flood_cannot_extend_the_attempt() {
        let config = UdpConfig::default();
        let t0 = Instant::now();
        let mut s = UdpSession::new(config, false, 11);
        s.start_announce(&request(), t0).unwrap();
        let mut out = Vec::new();
        assert!(s.poll_transmit(t0, &mut out));
        let tid = tid_of(&out);
        // A tracker that answers the connect late, at 5 s, then floods:
        // 100 000 datagrams of other ids, short ones and stale connects
        // over the next 20 s, while the session retransmits as it likes.
        let mut now = t0;
        let step = Duration::from_micros(200);
        let mut fed = 0u32;
        let mut request_tid = tid;
        while s.is_busy() {
            now += step;
            assert!(
                s.poll_timeout()
                    .is_some_and(|t| t <= t0 + config.attempt_timeout),
                "a deadline past the attempt's"
            );
            if now >= t0 + Duration::from_secs(5) && fed == 0 {
                let mut reply = header(0, request_tid);
                reply.extend_from_slice(&7u64.to_be_bytes());
                s.handle_datagram(&reply, now).unwrap();
                fed += 1;
            }
            let junk: Vec<u8> = match fed % 3 {
                0 => vec![0, 0],
                1 => header(0, request_tid ^ 0x5a5a),
                _ => {
                    let mut d = header(1, request_tid.wrapping_add(1));
                    d.extend_from_slice(&[0; 18]);
                    d
                }
            };
            assert!(s.handle_datagram(&junk, now).is_err());
            fed += 1;
            s.handle_timeout(now);
            if s.poll_transmit(now, &mut out) {
                request_tid = BigEndian::read_u32(&out[12..16]);
            }
        }
        assert!(
            now <= t0 + config.attempt_timeout + step,
            "ended at {:?}",
            now - t0
        );
        assert!(fed >= 70_000, "{fed} datagrams fed");
        assert!(matches!(
            s.poll_outcome(),
            Some(Err(
                UdpError::TransactionIdMismatch { .. } | UdpError::Truncated { .. }
            ))
        ));
    }

    #[test]
    fn port_unreachable_ends_the_attempt_at_once() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(UdpConfig::default(), false, 13);
        s.handle_port_unreachable();
        assert_eq!(s.poll_outcome(), None, "nothing in flight: no outcome");
        s.start_announce(&request(), t0).unwrap();
        assert!(s.poll_transmit(t0, &mut Vec::new()));
        s.handle_port_unreachable();
        assert!(!s.is_busy());
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_outcome(), Some(Err(UdpError::PortUnreachable)));
        // The session is usable again.
        s.start_announce(&request(), t0).unwrap();
        assert!(s.poll_transmit(t0, &mut Vec::new()));
    }

    #[test]
    fn error_action_ends_with_the_message() {
        let t0 = Instant::now();
        let (mut s, out) = connected(t0);
        let mut reply = header(3, tid_of(&out));
        reply.extend_from_slice(b"unregistered torrent");
        s.handle_datagram(&reply, t0).unwrap();
        assert_eq!(
            s.poll_outcome(),
            Some(Err(UdpError::Failure {
                message: "unregistered torrent".into()
            }))
        );
    }

    #[test]
    fn huge_base_does_not_overflow() {
        let t0 = Instant::now();
        let config = UdpConfig {
            retransmit_base: Duration::MAX,
            ..config()
        };
        let mut s = UdpSession::new(config, false, 1);
        s.start_announce(&request(), t0).unwrap();
        assert!(s.poll_transmit(t0, &mut Vec::new()));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(86_400)));
        assert_eq!(config.max_operation_time(), Duration::from_secs(9 * 86_400));
    }

    #[test]
    fn misuse_is_an_error() {
        let t0 = Instant::now();
        let mut s = UdpSession::new(config(), false, 1);
        assert_eq!(
            s.handle_datagram(&header(0, 0), t0),
            Err(UdpError::Unsolicited)
        );
        s.start_scrape(&[[0; 20]], t0).unwrap();
        assert_eq!(s.start_announce(&request(), t0), Err(UdpError::Busy));
        s.cancel();
        assert_eq!(
            s.start_scrape(&[[0; 20]; 75], t0),
            Err(UdpError::TooManyHashes { count: 75, max: 74 })
        );
    }

    #[test]
    fn transaction_ids_follow_the_seed() {
        let now = Instant::now();
        let ids = |seed| {
            let mut s = UdpSession::new(config(), false, seed);
            s.start_announce(&request(), now).unwrap();
            let mut out = Vec::new();
            s.poll_transmit(now, &mut out);
            tid_of(&out)
        };
        assert_eq!(ids(42), ids(42));
        assert_ne!(ids(42), ids(43));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_datagrams_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), action in 0u32..5) {
            let now = Instant::now();
            let (mut s, out) = connected(now);
            let mut d = header(action, tid_of(&out));
            d.extend_from_slice(&tail);
            let _ = s.handle_datagram(&d, now);
            let _ = s.handle_datagram(&tail, now);
        }
    }
}
