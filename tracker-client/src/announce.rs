//! The announce request (to an HTTP URL) and the announce response (from a
//! bencoded body): BEP 3, with compact peers (BEP 23) and IPv6 peers (BEP 7).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rustico_bencode::Value;

/// Why an announce happens (`event=` in HTTP, the event field in UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular announce at the tracker's interval (no `event` parameter).
    #[default]
    None,
    /// The first announce of a download.
    Started,
    /// The download has just finished (sent once, not when starting complete).
    Completed,
    /// The client is leaving the swarm.
    Stopped,
}

impl Event {
    /// The value of the HTTP `event` parameter, `None` for a regular announce.
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }

    /// The 32-bit event code of the UDP tracker protocol (BEP 15).
    pub fn udp_code(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// What a client tells a tracker in an announce.
///
/// The same request serves HTTP ([`AnnounceRequest::http_url`]) and UDP
/// ([`crate::udp::UdpSession::start_announce`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// The torrent's info-hash (v1, SHA-1).
    pub info_hash: [u8; 20],
    /// This client's peer id.
    pub peer_id: [u8; 20],
    /// The port this client accepts peers on.
    pub port: u16,
    /// Bytes uploaded since the `started` announce.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` announce.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Why this announce happens.
    pub event: Event,
    /// How many peers the client wants; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// A per-session random number that lets the tracker recognise this
    /// client across IP changes (sent as 8 hex digits over HTTP).
    pub key: Option<u32>,
    /// The `tracker id` a previous response of this tracker returned.
    pub tracker_id: Option<Vec<u8>>,
    /// Ask for compact peer lists (`compact=1`, BEP 23). HTTP only; UDP is
    /// always compact.
    pub compact: bool,
}

impl AnnounceRequest {
    /// A request with zero counters, no event, no key, compact peers.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20], port: u16) -> AnnounceRequest {
        AnnounceRequest {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            numwant: None,
            key: None,
            tracker_id: None,
            compact: true,
        }
    }

    /// The full announce URL: `announce_url` with this request's parameters
    /// appended after any query parameters it already has (a passkey, say).
    /// Raw bytes (info-hash, peer id, tracker id) are percent-encoded; a
    /// fragment is dropped.
    ///
    /// ```
    /// use rustico_tracker_client::{AnnounceRequest, Event};
    /// let mut request = AnnounceRequest::new([0xab; 20], *b"-RS0100-abcdefghijkl", 6881);
    /// request.left = 1000;
    /// request.event = Event::Started;
    /// let url = request.http_url("http://tracker.test/announce?passkey=x1")?;
    /// assert!(url.starts_with("http://tracker.test/announce?passkey=x1&info_hash=%AB%AB"));
    /// assert!(url.ends_with("&left=1000&compact=1&event=started"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn http_url(&self, announce_url: &str) -> Result<String, UrlError> {
        let mut url = http_base(announce_url)?;
        url.push_str("info_hash=");
        percent_encode_into(&mut url, &self.info_hash);
        url.push_str("&peer_id=");
        percent_encode_into(&mut url, &self.peer_id);
        url.push_str(&format!(
            "&port={}&uploaded={}&downloaded={}&left={}",
            self.port, self.uploaded, self.downloaded, self.left
        ));
        if self.compact {
            url.push_str("&compact=1");
        }
        if let Some(event) = self.event.http_name() {
            url.push_str("&event=");
            url.push_str(event);
        }
        if let Some(numwant) = self.numwant {
            url.push_str(&format!("&numwant={numwant}"));
        }
        if let Some(key) = self.key {
            url.push_str(&format!("&key={key:08x}"));
        }
        if let Some(tracker_id) = &self.tracker_id {
            url.push_str("&trackerid=");
            percent_encode_into(&mut url, tracker_id);
        }
        Ok(url)
    }
}

/// Why a tracker URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a URL at all.
    #[error("invalid tracker URL {url:?}: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than `http`, `https` or `udp`.
    #[error("unsupported tracker URL scheme {scheme:?} (expected http, https or udp)")]
    UnsupportedScheme {
        /// The scheme found.
        scheme: String,
    },
    /// A UDP URL without a host or a port.
    #[error("UDP tracker URL {url:?} needs a host and a port")]
    MissingHostOrPort {
        /// The URL as given.
        url: String,
    },
    /// BEP 48: the last path segment does not start with `announce`, so the
    /// tracker has no derivable scrape URL.
    #[error("no scrape URL: last path segment {last_segment:?} does not start with \"announce\"")]
    NoScrape {
        /// The last path segment found.
        last_segment: String,
    },
}

/// Validates an HTTP(S) announce URL and returns it (without fragment)
/// ending in `?` or `&`, ready for more parameters.
pub(crate) fn http_base(announce_url: &str) -> Result<String, UrlError> {
    let mut parsed = url::Url::parse(announce_url).map_err(|e| UrlError::Invalid {
        url: announce_url.to_owned(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(UrlError::UnsupportedScheme {
                scheme: other.to_owned(),
            })
        }
    }
    parsed.set_fragment(None);
    let mut out = String::from(parsed.as_str());
    match parsed.query() {
        None => out.push('?'),
        Some("") => {}
        Some(q) if q.ends_with('&') => {}
        Some(_) => out.push('&'),
    }
    Ok(out)
}

/// Appends `bytes` percent-encoded: RFC 3986 unreserved characters stay,
/// everything else becomes `%XX` (upper-case hex).
pub fn percent_encode_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

/// What a tracker answered to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// How long to wait before the next regular announce.
    pub interval: Duration,
    /// The tracker's floor for announces (`min interval`), if it sent one.
    pub min_interval: Option<Duration>,
    /// A `tracker id` to echo in later announces (`trackerid=`).
    pub tracker_id: Option<Vec<u8>>,
    /// Seeders in the swarm, as the tracker counts them.
    pub complete: Option<u32>,
    /// Leechers in the swarm, as the tracker counts them.
    pub incomplete: Option<u32>,
    /// A `warning message`: the announce worked, but the tracker has
    /// something to say.
    pub warning: Option<String>,
    /// Peers: compact IPv4 (`peers` as a string), compact IPv6 (`peers6`)
    /// and the dictionary model (`peers` as a list), in that order.
    pub peers: Vec<SocketAddr>,
    /// Malformed parts of the answer that were skipped instead of failing
    /// it, for the caller to log: a compact peer string with a partial entry
    /// at its end is [`ResponseError::CompactPeersLength`] here, and its
    /// whole entries are in `peers` (lenient clients such as libtorrent keep
    /// them too; throwing away a good answer for three stray bytes helps
    /// nobody).
    pub skipped: Vec<ResponseError>,
}

/// Why an HTTP tracker response (announce or scrape) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The tracker refused the request and said why (`failure reason`).
    #[error("tracker failure: {reason}")]
    Failure {
        /// The tracker's text, lossily decoded as UTF-8.
        reason: String,
    },
    /// The body is not bencode.
    #[error("response is not bencode: {0}")]
    Bencode(#[from] rustico_bencode::Error),
    /// The body is bencode but not a dictionary.
    #[error("response is a bencoded {found}, not a dictionary")]
    NotADictionary {
        /// The type found.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("response has no {key:?}")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key holds a value of the wrong type or out of range.
    #[error("{key:?} at byte {offset} is not {expected}")]
    InvalidValue {
        /// The key (or, inside peer dictionaries, the peer field).
        key: &'static str,
        /// Where the value starts in the body.
        offset: usize,
        /// What was expected.
        expected: &'static str,
    },
    /// A compact peer string whose length is not a multiple of its entry
    /// size. Announce parsing keeps the whole entries and reports this in
    /// [`AnnounceResponse::skipped`] rather than failing.
    #[error(
        "{key:?} at byte {offset} is {len} bytes, not a multiple of {entry}: {} stray bytes ignored",
        .len % .entry
    )]
    CompactPeersLength {
        /// `peers` or `peers6`.
        key: &'static str,
        /// Where the value starts in the body.
        offset: usize,
        /// Its length.
        len: usize,
        /// 6 for IPv4, 18 for IPv6.
        entry: usize,
    },
}

/// Parses an HTTP announce response body.
///
/// Lenient where real trackers differ (unsorted and unknown keys, peers in
/// any of the three models, a dictionary-model peer whose `ip` is a host
/// name is skipped because resolving it is I/O); strict about what it uses.
/// A `failure reason` is [`ResponseError::Failure`].
///
/// ```
/// use rustico_tracker_client::parse_announce_response;
/// let body = b"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
/// let response = parse_announce_response(body)?;
/// assert_eq!(response.interval.as_secs(), 1800);
/// assert_eq!(response.peers, ["127.0.0.1:6881".parse()?]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, ResponseError> {
    let root = decode_dict(body)?;
    let interval = match root.get(b"interval") {
        Some(v) => seconds(v, "interval")?,
        None => return Err(ResponseError::MissingKey { key: "interval" }),
    };
    let mut response = AnnounceResponse {
        interval,
        min_interval: root
            .get(b"min interval")
            .map(|v| seconds(v, "min interval"))
            .transpose()?,
        tracker_id: root
            .get(b"tracker id")
            .map(|v| bytes(v, "tracker id").map(<[u8]>::to_vec))
            .transpose()?,
        complete: root
            .get(b"complete")
            .map(|v| count(v, "complete"))
            .transpose()?,
        incomplete: root
            .get(b"incomplete")
            .map(|v| count(v, "incomplete"))
            .transpose()?,
        warning: root
            .get(b"warning message")
            .map(|v| bytes(v, "warning message").map(lossy))
            .transpose()?,
        peers: Vec::new(),
        skipped: Vec::new(),
    };
    let mut dict_peers = None;
    if let Some(peers) = root.get(b"peers") {
        if let Some(compact) = peers.as_bytes() {
            let stray = parse_compact_v4(compact, peers.offset(), &mut response.peers);
            response.skipped.extend(stray);
        } else if let Some(list) = peers.as_list() {
            dict_peers = Some(list);
        } else {
            return Err(invalid("peers", peers, "a byte string or a list"));
        }
    }
    if let Some(peers6) = root.get(b"peers6") {
        let compact = bytes(peers6, "peers6")?;
        let stray = parse_compact_v6(compact, peers6.offset(), &mut response.peers);
        response.skipped.extend(stray);
    }
    for peer in dict_peers.unwrap_or_default() {
        if let Some(addr) = parse_dict_peer(peer)? {
            response.peers.push(addr);
        }
    }
    Ok(response)
}

/// Decodes a body that must be a bencoded dictionary without `failure reason`.
pub(crate) fn decode_dict(body: &[u8]) -> Result<Value<'_>, ResponseError> {
    let root = rustico_bencode::decode(body)?;
    if root.as_dict().is_none() {
        return Err(ResponseError::NotADictionary {
            found: root.type_name(),
        });
    }
    if let Some(reason) = root.get(b"failure reason") {
        return Err(ResponseError::Failure {
            reason: lossy(bytes(reason, "failure reason")?),
        });
    }
    Ok(root)
}

fn parse_dict_peer(peer: &Value<'_>) -> Result<Option<SocketAddr>, ResponseError> {
    if peer.as_dict().is_none() {
        return Err(invalid("peers", peer, "a list of dictionaries"));
    }
    let ip_value = peer
        .get(b"ip")
        .ok_or(ResponseError::MissingKey { key: "ip" })?;
    let port_value = peer
        .get(b"port")
        .ok_or(ResponseError::MissingKey { key: "port" })?;
    let port = port_value
        .as_integer()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| invalid("port", port_value, "a port number"))?;
    if let Some(id) = peer.get(b"peer id") {
        if id.as_bytes().is_none_or(|b| b.len() != 20) {
            return Err(invalid("peer id", id, "a 20-byte string"));
        }
    }
    let ip_text = ip_value
        .as_str()
        .ok_or_else(|| invalid("ip", ip_value, "a UTF-8 string"))?;
    // A host name is legal in the dictionary model, but resolving it is I/O.
    Ok(ip_text
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port)))
}

/// Appends the whole compact IPv4 peers (4 address bytes, 2 port bytes,
/// big-endian) of `compact`, the value at byte `offset` of the answer.
/// Trailing bytes that do not make a whole entry are ignored and returned
/// as [`ResponseError::CompactPeersLength`].
pub(crate) fn parse_compact_v4(
    compact: &[u8],
    offset: usize,
    out: &mut Vec<SocketAddr>,
) -> Option<ResponseError> {
    let entries = compact.chunks_exact(6);
    let stray = stray_bytes(entries.remainder(), compact, offset, "peers", 6);
    out.extend(entries.map(|c| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            u16::from_be_bytes([c[4], c[5]]),
        )
    }));
    stray
}

/// Appends the whole compact IPv6 peers (16 address bytes, 2 port bytes);
/// trailing bytes as in [`parse_compact_v4`].
pub(crate) fn parse_compact_v6(
    compact: &[u8],
    offset: usize,
    out: &mut Vec<SocketAddr>,
) -> Option<ResponseError> {
    let entries = compact.chunks_exact(18);
    let stray = stray_bytes(entries.remainder(), compact, offset, "peers6", 18);
    for c in entries {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&c[..16]);
        out.push(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(ip)),
            u16::from_be_bytes([c[16], c[17]]),
        ));
    }
    stray
}

fn stray_bytes(
    remainder: &[u8],
    compact: &[u8],
    offset: usize,
    key: &'static str,
    entry: usize,
) -> Option<ResponseError> {
    (!remainder.is_empty()).then_some(ResponseError::CompactPeersLength {
        key,
        offset,
        len: compact.len(),
        entry,
    })
}

pub(crate) fn invalid(
    key: &'static str,
    value: &Value<'_>,
    expected: &'static str,
) -> ResponseError {
    ResponseError::InvalidValue {
        key,
        offset: value.offset(),
        expected,
    }
}

pub(crate) fn bytes<'a>(value: &Value<'a>, key: &'static str) -> Result<&'a [u8], ResponseError> {
    value
        .as_bytes()
        .ok_or_else(|| invalid(key, value, "a byte string"))
}

pub(crate) fn count(value: &Value<'_>, key: &'static str) -> Result<u32, ResponseError> {
    value
        .as_integer()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(key, value, "a count from 0 to 2^32-1"))
}

fn seconds(value: &Value<'_>, key: &'static str) -> Result<Duration, ResponseError> {
    count(value, key).map(|s| Duration::from_secs(u64::from(s)))
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: *b"\x00\x01\x02 ~-._Aa09\xff\xfe/?&=%+",
            peer_id: *b"-RS0100-0123456789ab",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: Event::Completed,
            numwant: Some(50),
            key: Some(0xdead_beef),
            tracker_id: Some(b"t id&".to_vec()),
            compact: true,
        }
    }

    #[test]
    fn http_url_every_field_byte_exact() {
        let url = request().http_url("http://t.test:8080/announce").unwrap();
        assert_eq!(
            url,
            "http://t.test:8080/announce?info_hash=%00%01%02%20~-._Aa09%FF%FE%2F%3F%26%3D%25%2B\
             &peer_id=-RS0100-0123456789ab&port=6881&uploaded=1&downloaded=2&left=3&compact=1\
             &event=completed&numwant=50&key=deadbeef&trackerid=t%20id%26"
        );
    }

    #[test]
    fn http_url_minimal_request_omits_optional_fields() {
        let mut r = AnnounceRequest::new([b'a'; 20], [b'b'; 20], 1);
        r.compact = false;
        assert_eq!(
            r.http_url("https://t.test/announce").unwrap(),
            format!(
                "https://t.test/announce?info_hash={}&peer_id={}&port=1&uploaded=0&downloaded=0&left=0",
                "a".repeat(20),
                "b".repeat(20)
            )
        );
    }

    #[test]
    fn http_url_keeps_existing_query_and_drops_fragment() {
        let r = AnnounceRequest::new([b'a'; 20], [b'b'; 20], 1);
        for (base, prefix) in [
            (
                "http://t.test/a/announce.php?pk=1%2F2&x=y#frag",
                "http://t.test/a/announce.php?pk=1%2F2&x=y&info_hash=",
            ),
            (
                "http://t.test/announce?",
                "http://t.test/announce?info_hash=",
            ),
            (
                "http://t.test/announce?pk=1&",
                "http://t.test/announce?pk=1&info_hash=",
            ),
            ("http://t.test", "http://t.test/?info_hash="),
        ] {
            let url = r.http_url(base).unwrap();
            assert!(url.starts_with(prefix), "{base} -> {url}");
            assert!(!url.contains('#'));
        }
    }

    #[test]
    fn http_url_rejects_bad_urls() {
        let r = AnnounceRequest::new([0; 20], [0; 20], 1);
        assert!(matches!(
            r.http_url("not a url"),
            Err(UrlError::Invalid { .. })
        ));
        assert_eq!(
            r.http_url("ftp://t.test/announce"),
            Err(UrlError::UnsupportedScheme {
                scheme: "ftp".into()
            })
        );
    }

    #[test]
    fn response_every_field() {
        let body = b"d8:completei7e10:incompletei3e8:intervali1800e12:min intervali60e\
            5:peers12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50\
            6:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1f\x90\
            10:tracker id3:xyz15:warning message4:careee";
        let r = parse_announce_response(body).unwrap();
        assert_eq!(
            r,
            AnnounceResponse {
                interval: Duration::from_secs(1800),
                min_interval: Some(Duration::from_secs(60)),
                tracker_id: Some(b"xyz".to_vec()),
                complete: Some(7),
                incomplete: Some(3),
                warning: Some("care".into()),
                peers: vec![
                    "127.0.0.1:6881".parse().unwrap(),
                    "10.0.0.2:80".parse().unwrap(),
                    "[::1]:8080".parse().unwrap(),
                ],
                skipped: vec![],
            }
        );
    }

    #[test]
    fn response_dictionary_model_unsorted_and_unknown_keys() {
        let body = b"d5:peersld4:porti6881e2:ip9:127.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAAe\
            d2:ip3:::14:porti1ee\
            d2:ip11:example.org4:porti2eee\
            8:intervali5e7:unknownli1eee";
        let r = parse_announce_response(body).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "[::1]:1".parse().unwrap()
            ]
        );
        assert_eq!(r.interval, Duration::from_secs(5));
        assert_eq!(r.min_interval, None);
        assert_eq!(r.complete, None);
    }

    #[test]
    fn failure_reason_is_an_error_with_the_text() {
        let body = b"d14:failure reason24:torrent not registered \xffe";
        assert_eq!(
            parse_announce_response(body),
            Err(ResponseError::Failure {
                reason: "torrent not registered \u{fffd}".into()
            })
        );
    }

    #[test]
    fn malformed_responses_say_what_and_where() {
        assert!(matches!(
            parse_announce_response(b"<html>"),
            Err(ResponseError::Bencode(e)) if e.offset == 0
        ));
        assert_eq!(
            parse_announce_response(b"li1ee"),
            Err(ResponseError::NotADictionary { found: "list" })
        );
        assert_eq!(
            parse_announce_response(b"de"),
            Err(ResponseError::MissingKey { key: "interval" })
        );
        assert_eq!(
            parse_announce_response(b"d8:intervali-1ee"),
            Err(ResponseError::InvalidValue {
                key: "interval",
                offset: 11,
                expected: "a count from 0 to 2^32-1"
            })
        );
        assert!(matches!(
            parse_announce_response(b"d8:intervali1e5:peersld2:ip9:127.0.0.14:porti70000eeee"),
            Err(ResponseError::InvalidValue { key: "port", .. })
        ));
        assert!(matches!(
            parse_announce_response(b"d8:intervali1e5:peersli1eee"),
            Err(ResponseError::InvalidValue { key: "peers", .. })
        ));
        assert!(matches!(
            parse_announce_response(b"d8:intervali1e5:peersi1ee"),
            Err(ResponseError::InvalidValue { key: "peers", .. })
        ));
    }

    #[test]
    fn odd_length_compact_lists_keep_their_whole_entries() {
        // Two IPv4 entries and 3 stray bytes; one IPv6 entry and 5.
        let mut body =
            b"d8:intervali1e5:peers15:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50abc".to_vec();
        body.extend_from_slice(b"6:peers623:");
        body.extend_from_slice(&[0; 15]);
        body.extend_from_slice(&[1, 0x1f, 0x90]);
        body.extend_from_slice(b"vwxyze");
        let r = parse_announce_response(&body).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
                "[::1]:8080".parse().unwrap()
            ]
        );
        let stray = ResponseError::CompactPeersLength {
            key: "peers",
            offset: 21,
            len: 15,
            entry: 6,
        };
        assert_eq!(
            stray.to_string(),
            "\"peers\" at byte 21 is 15 bytes, not a multiple of 6: 3 stray bytes ignored"
        );
        assert_eq!(
            r.skipped,
            vec![
                stray,
                ResponseError::CompactPeersLength {
                    key: "peers6",
                    offset: 47,
                    len: 23,
                    entry: 18
                }
            ]
        );
        // Fewer bytes than one entry: no peers, the answer still counts.
        let r = parse_announce_response(b"d8:intervali1e5:peers5:abcdee").unwrap();
        assert!(r.peers.is_empty());
        assert_eq!(r.skipped.len(), 1);
        let r = parse_announce_response(b"d8:intervali1e5:peers0:e").unwrap();
        assert!(r.skipped.is_empty());
    }

    fn percent_decode(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_announce_response(&body);
        }

        #[test]
        fn http_url_parses_and_decodes_back(
            info_hash in proptest::prelude::any::<[u8; 20]>(),
            peer_id in proptest::prelude::any::<[u8; 20]>(),
            tracker_id in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            port in proptest::prelude::any::<u16>(),
        ) {
            let mut r = AnnounceRequest::new(info_hash, peer_id, port);
            r.tracker_id = Some(tracker_id.clone());
            let url = r.http_url("http://t.test/announce?pk=a%20b").unwrap();
            let parsed = url::Url::parse(&url).unwrap();
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = parsed
                .query()
                .unwrap()
                .split('&')
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap();
                    (k.as_bytes().to_vec(), percent_decode(v))
                })
                .collect();
            let get = |key: &str| pairs.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v.clone());
            proptest::prop_assert_eq!(get("pk"), Some(b"a b".to_vec()));
            proptest::prop_assert_eq!(get("info_hash"), Some(info_hash.to_vec()));
            proptest::prop_assert_eq!(get("peer_id"), Some(peer_id.to_vec()));
            proptest::prop_assert_eq!(get("trackerid"), Some(tracker_id));
            proptest::prop_assert_eq!(get("port"), Some(port.to_string().into_bytes()));
        }

        #[test]
        fn compact_peers_round_trip(peers in proptest::collection::vec(proptest::prelude::any::<([u8; 4], u16)>(), 0..40)) {
            let mut compact = Vec::new();
            for (ip, port) in &peers {
                compact.extend_from_slice(ip);
                compact.extend_from_slice(&port.to_be_bytes());
            }
            let mut body = format!("d8:intervali1e5:peers{}:", compact.len()).into_bytes();
            body.extend_from_slice(&compact);
            body.push(b'e');
            let parsed = parse_announce_response(&body).unwrap();
            let expected: Vec<SocketAddr> = peers.iter().map(|(ip, port)| SocketAddr::from((*ip, *port))).collect();
            proptest::prop_assert_eq!(parsed.peers, expected);
        }
    }
}
