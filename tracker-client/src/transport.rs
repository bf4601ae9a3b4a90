//! Blocking transports: HTTP(S) through ureq (cargo feature `http`) and
//! UDP through `std::net::UdpSocket`, behind one [`Client`] that picks the
//! transport by the URL's scheme.
//!
//! Every call is bounded in time and memory: HTTP by
//! [`TransportConfig::timeout`] (end to end, body included) and
//! [`TransportConfig::max_response_size`] (enforced while reading), UDP by
//! [`UdpConfig::attempt_timeout`] over its retransmission schedule. An ICMP
//! port unreachable ends a UDP call at once.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::announce::{AnnounceRequest, AnnounceResponse, ResponseError, UrlError};
use crate::scrape::ScrapeResponse;
use crate::udp::{UdpConfig, UdpError, UdpResponse, UdpSession};

/// Limits and timing of the blocking transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// HTTP: the whole call (connect, redirects, headers and body) must end
    /// within this (30 s, libtorrent's `tracker_completion_timeout`). A
    /// tracker trickling bytes (slowloris) hits it.
    pub timeout: Duration,
    /// HTTP: connecting (including TLS) must end within this.
    pub connect_timeout: Duration,
    /// HTTP: the most body bytes read; more is [`Error::ResponseTooLarge`].
    pub max_response_size: u64,
    /// HTTP: redirects followed before [`Error::TooManyRedirects`].
    pub max_redirects: u32,
    /// HTTP `User-Agent`.
    pub user_agent: String,
    /// UDP retransmission timing, the deadline of a whole UDP call, and
    /// connection id lifetime.
    pub udp: UdpConfig,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_size: 1024 * 1024,
            max_redirects: 5,
            user_agent: format!("rustico/{}", env!("CARGO_PKG_VERSION")),
            udp: UdpConfig::default(),
        }
    }
}

/// Why an announce or scrape through a transport failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tracker URL is unusable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The tracker refused and said why (HTTP `failure reason`, UDP error
    /// action).
    #[error("tracker failure: {reason}")]
    Failure {
        /// The tracker's text.
        reason: String,
    },
    /// The HTTP body is not a valid tracker response.
    #[error("bad tracker response: {0}")]
    Response(ResponseError),
    /// The UDP tracker answered only with wrong datagrams, answered
    /// wrongly, or its port is unreachable ([`UdpError::PortUnreachable`]).
    #[error("UDP tracker: {0}")]
    Udp(UdpError),
    /// No (complete) answer in time: the HTTP timeout passed, or every UDP
    /// retransmission went unanswered.
    #[error("tracker timed out after {elapsed:?}")]
    TimedOut {
        /// How long the call took.
        elapsed: Duration,
    },
    /// The HTTP body is longer than [`TransportConfig::max_response_size`].
    #[error("tracker response larger than {limit} bytes")]
    ResponseTooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// An HTTP status other than 200, without a bencoded failure reason.
    #[error("tracker answered HTTP {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// More HTTP redirects than [`TransportConfig::max_redirects`].
    #[error("more than {max} HTTP redirects")]
    TooManyRedirects {
        /// The limit in force.
        max: u32,
    },
    /// The tracker's host name has no address.
    #[error("cannot resolve tracker host {host:?}")]
    Resolve {
        /// The host name.
        host: String,
    },
    /// Any other HTTP or TLS failure, as ureq describes it.
    #[error("HTTP error: {0}")]
    Http(String),
    /// HTTP(S) tracker, but the crate was built without the `http` feature.
    #[error("HTTP trackers need the `http` cargo feature")]
    HttpDisabled,
    /// A socket error.
    #[error("tracker I/O error: {0}")]
    Io(#[from] io::Error),
}

impl From<ResponseError> for Error {
    fn from(error: ResponseError) -> Error {
        match error {
            ResponseError::Failure { reason } => Error::Failure { reason },
            other => Error::Response(other),
        }
    }
}

/// Announces once with a fresh [`Client`]: HTTP(S) or UDP by `url`'s scheme.
///
/// ```no_run
/// use rustico_tracker_client::{announce, AnnounceRequest, Event, TransportConfig};
/// let mut request = AnnounceRequest::new([0xab; 20], *b"-RS0100-abcdefghijkl", 6881);
/// request.event = Event::Started;
/// let response = announce("udp://127.0.0.1:6969/announce", &request, &TransportConfig::default())?;
/// println!("{} peers, next in {:?}", response.peers.len(), response.interval);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn announce(
    url: &str,
    request: &AnnounceRequest,
    config: &TransportConfig,
) -> Result<AnnounceResponse, Error> {
    Client::new(config.clone()).announce(url, request)
}

/// Scrapes once with a fresh [`Client`]: `announce_url` is the tracker's
/// announce URL (the HTTP scrape URL is derived from it, BEP 48).
pub fn scrape(
    announce_url: &str,
    info_hashes: &[[u8; 20]],
    config: &TransportConfig,
) -> Result<ScrapeResponse, Error> {
    Client::new(config.clone()).scrape(announce_url, info_hashes)
}

/// The transports of one tracker thread: an HTTP agent (TLS settings; no
/// keep-alive, announces are minutes apart)
/// and one UDP socket and session per UDP tracker, so connection ids are
/// reused within their lifetime.
///
/// With a [`TrackerList`](crate::TrackerList), as a tracker thread would:
///
/// ```no_run
/// use rustico_tracker_client::{AnnounceRequest, Client, TrackerList, TransportConfig};
/// let mut client = Client::new(TransportConfig::default());
/// let mut trackers = TrackerList::new(vec![
///     vec!["udp://127.0.0.1:6969/announce".into(), "http://127.0.0.1:6969/announce".into()],
/// ], 1);
/// let request = AnnounceRequest::new([0xab; 20], *b"-RS0100-abcdefghijkl", 6881);
/// match trackers.try_in_order(|url| client.announce(url, &request)) {
///     Ok((_, url, response)) => println!("{url}: {} peers", response.peers.len()),
///     Err(failures) => eprintln!("every tracker failed: {failures:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Client {
    config: TransportConfig,
    #[cfg(feature = "http")]
    agent: ureq::Agent,
    udp: HashMap<SocketAddr, (UdpSocket, UdpSession)>,
    seed: u64,
}

impl Client {
    /// A client with these limits.
    pub fn new(config: TransportConfig) -> Client {
        Client {
            #[cfg(feature = "http")]
            agent: http::agent(&config),
            config,
            udp: HashMap::new(),
            seed: random_seed(),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Announces to `url` (`http`, `https` or `udp`).
    pub fn announce(
        &mut self,
        url: &str,
        request: &AnnounceRequest,
    ) -> Result<AnnounceResponse, Error> {
        match Tracker::parse(url)? {
            Tracker::Http => {
                let body = self.http_get(&request.http_url(url)?)?;
                Ok(crate::announce::parse_announce_response(&body)?)
            }
            Tracker::Udp { host, port } => {
                match self.udp_call(&host, port, |session, now| {
                    session.start_announce(request, now)
                })? {
                    UdpResponse::Announce(response) => Ok(response),
                    UdpResponse::Scrape(_) => Err(Error::Udp(UdpError::UnexpectedAction {
                        expected: 1,
                        got: 2,
                    })),
                }
            }
        }
    }

    /// Scrapes the tracker whose announce URL is `announce_url`.
    pub fn scrape(
        &mut self,
        announce_url: &str,
        info_hashes: &[[u8; 20]],
    ) -> Result<ScrapeResponse, Error> {
        match Tracker::parse(announce_url)? {
            Tracker::Http => {
                let body = self.http_get(&crate::scrape::scrape_request_url(
                    announce_url,
                    info_hashes,
                )?)?;
                Ok(crate::scrape::parse_scrape_response(&body)?)
            }
            Tracker::Udp { host, port } => {
                match self.udp_call(&host, port, |session, now| {
                    session.start_scrape(info_hashes, now)
                })? {
                    UdpResponse::Scrape(response) => Ok(response),
                    UdpResponse::Announce(_) => Err(Error::Udp(UdpError::UnexpectedAction {
                        expected: 2,
                        got: 1,
                    })),
                }
            }
        }
    }

    #[cfg(feature = "http")]
    fn http_get(&self, url: &str) -> Result<Vec<u8>, Error> {
        http::get(&self.agent, &self.config, url)
    }

    #[cfg(not(feature = "http"))]
    fn http_get(&self, _url: &str) -> Result<Vec<u8>, Error> {
        Err(Error::HttpDisabled)
    }

    fn udp_call(
        &mut self,
        host: &str,
        port: u16,
        start: impl FnOnce(&mut UdpSession, Instant) -> Result<(), UdpError>,
    ) -> Result<UdpResponse, Error> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|_| Error::Resolve {
                host: host.to_owned(),
            })?
            .next()
            .ok_or_else(|| Error::Resolve {
                host: host.to_owned(),
            })?;
        if !self.udp.contains_key(&addr) {
            let local: SocketAddr = if addr.is_ipv6() {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local)?;
            // Connected: the kernel drops datagrams from anyone else.
            socket.connect(addr)?;
            self.seed = crate::udp::splitmix64(self.seed);
            let session = UdpSession::for_addr(self.config.udp, addr, self.seed);
            self.udp.insert(addr, (socket, session));
        }
        let (socket, session) = self.udp.get_mut(&addr).ok_or_else(|| Error::Resolve {
            host: host.to_owned(),
        })?;
        let started = Instant::now();
        start(session, started).map_err(Error::Udp)?;
        let result = drive_udp(socket, session);
        session.cancel();
        match result {
            Err(Error::Udp(UdpError::TimedOut { .. })) => Err(Error::TimedOut {
                elapsed: started.elapsed(),
            }),
            other => other,
        }
    }
}

/// Runs a started session to its outcome over a connected socket.
fn drive_udp(socket: &UdpSocket, session: &mut UdpSession) -> Result<UdpResponse, Error> {
    let mut outgoing = Vec::with_capacity(128);
    // The largest UDP payload; an announce answer is far smaller.
    let mut incoming = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        while session.poll_transmit(now, &mut outgoing) {
            match socket.send(&outgoing) {
                Ok(_) => {}
                // An ICMP "port unreachable" from an earlier datagram:
                // nobody listens there; waiting would only hold up the
                // next tracker.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    session.handle_port_unreachable();
                    break;
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
        if let Some(outcome) = session.poll_outcome() {
            return outcome.map_err(|e| match e {
                UdpError::Failure { message } => Error::Failure { reason: message },
                other => Error::Udp(other),
            });
        }
        let Some(deadline) = session.poll_timeout() else {
            return Err(Error::Udp(UdpError::TimedOut { attempts: 0 }));
        };
        let wait = deadline.saturating_duration_since(now);
        if wait.is_zero() {
            session.handle_timeout(now);
            continue;
        }
        socket.set_read_timeout(Some(wait))?;
        match socket.recv(&mut incoming) {
            Ok(len) => {
                // `recv` returns at most the buffer's length; an empty
                // datagram would be refused as truncated.
                debug_assert!(len <= incoming.len(), "recv returned {len}");
                let datagram = incoming.get(..len).unwrap_or_default();
                // A wrong datagram is dropped; the session remembers why
                // and reports it as the outcome if nothing right follows.
                let _ = session.handle_datagram(datagram, Instant::now());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                session.handle_port_unreachable();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

/// Transaction ids must be unpredictable to an off-path attacker; std's
/// hasher keys are random per process, which is enough here.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

enum Tracker {
    Http,
    Udp { host: String, port: u16 },
}

impl Tracker {
    fn parse(url: &str) -> Result<Tracker, UrlError> {
        let parsed = url::Url::parse(url).map_err(|e| UrlError::Invalid {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "http" | "https" => Ok(Tracker::Http),
            "udp" => match (parsed.host_str(), parsed.port()) {
                (Some(host), Some(port)) => Ok(Tracker::Udp {
                    // `[::1]` in a URL is `::1` to the resolver.
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port,
                }),
                _ => Err(UrlError::MissingHostOrPort {
                    url: url.to_owned(),
                }),
            },
            other => Err(UrlError::UnsupportedScheme {
                scheme: other.to_owned(),
            }),
        }
    }
}

#[cfg(feature = "http")]
mod http {
    use super::{Error, TransportConfig};

    pub(super) fn agent(config: &TransportConfig) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(config.max_redirects)
            .max_redirects_will_error(true)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.connect_timeout))
            .user_agent(config.user_agent.as_str())
            // No keep-alive pool: announces are minutes apart, and a pooled
            // connection the tracker already closed fails the next request
            // (seen in tests with a redirect from a server that closes).
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into()
    }

    pub(super) fn get(
        agent: &ureq::Agent,
        config: &TransportConfig,
        url: &str,
    ) -> Result<Vec<u8>, Error> {
        let started = std::time::Instant::now();
        let map = |error: ureq::Error| match error {
            ureq::Error::Timeout(_) => Error::TimedOut {
                elapsed: started.elapsed(),
            },
            ureq::Error::BodyExceedsLimit(limit) => Error::ResponseTooLarge { limit },
            ureq::Error::TooManyRedirects => Error::TooManyRedirects {
                max: config.max_redirects,
            },
            ureq::Error::StatusCode(status) => Error::HttpStatus { status },
            ureq::Error::HostNotFound => Error::Resolve {
                host: url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default(),
            },
            ureq::Error::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Error::TimedOut {
                    elapsed: started.elapsed(),
                }
            }
            ureq::Error::Io(e) => Error::Io(e),
            other => Error::Http(other.to_string()),
        };
        let response = agent.get(url).call().map_err(map)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .into_with_config()
            .limit(config.max_response_size)
            .read_to_vec()
            .map_err(map)?;
        if status != 200 {
            // Some trackers send their failure reason with an error status.
            return Err(match crate::announce::decode_dict(&body) {
                Err(crate::ResponseError::Failure { reason }) => Error::Failure { reason },
                _ => Error::HttpStatus { status },
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_transport() {
        assert!(matches!(
            Tracker::parse("http://a.test/announce"),
            Ok(Tracker::Http)
        ));
        assert!(matches!(
            Tracker::parse("https://a.test/announce"),
            Ok(Tracker::Http)
        ));
        assert!(matches!(
            Tracker::parse("udp://[::1]:6969/announce"),
            Ok(Tracker::Udp { host, port: 6969 }) if host == "::1"
        ));
        assert!(matches!(
            Tracker::parse("udp://a.test/announce"),
            Err(UrlError::MissingHostOrPort { .. })
        ));
        assert!(matches!(
            Tracker::parse("wss://a.test/announce"),
            Err(UrlError::UnsupportedScheme { scheme }) if scheme == "wss"
        ));
    }

    #[test]
    fn failure_reason_maps_to_failure() {
        let error = Error::from(ResponseError::Failure {
            reason: "no".into(),
        });
        assert!(matches!(error, Error::Failure { reason } if reason == "no"));
    }
}
