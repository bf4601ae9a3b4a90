//! A peer's byte stream: a `TcpStream` with the cipher that MSE (protocol
//! encryption) negotiated, or none. Dialling and accepting run the MSE
//! handshake of peer-wire's sans-IO `mse` module on a blocking socket,
//! within one deadline for the whole handshake; everything after it reads
//! and writes through [`Link`], which decrypts what it reads and encrypts
//! what it writes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustico_peer_wire::mse::{
    self, CryptoMethod, HalfCipher, Incoming, Initiator, MseError, Policy, Progress, Responder,
};

/// Why a link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// Reading or writing the socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection before the handshake was done.
    #[error("closed during the encryption handshake")]
    Closed,
    /// The whole handshake took longer than allowed.
    #[error("the encryption handshake took longer than {0:?}")]
    Timeout(Duration),
    /// The MSE handshake failed.
    #[error("encryption handshake: {0}")]
    Mse(#[from] MseError),
    /// The OS random generator failed (no keys, no MSE).
    #[error("no randomness for the encryption keys: {0}")]
    Random(#[source] getrandom::Error),
    /// The incoming connection is of a kind our policy refuses.
    #[error("{0:?} connection refused by the encryption policy")]
    Refused(Incoming),
    /// The incoming encrypted peer asked for a torrent we do not serve.
    #[error("encrypted handshake for a torrent we do not serve")]
    UnknownTorrent,
    /// The incoming plaintext peer did not send a BitTorrent handshake.
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
    /// A broken invariant of this module or of the MSE handshake's
    /// contract (a bug; debug builds panic).
    #[error("internal error: {what}")]
    Internal {
        /// The invariant.
        what: &'static str,
    },
}

/// `bytes[from..to]` (`to: None` for the end), a range that a read's
/// count or the MSE handshake's `used` keeps inside `bytes`; a
/// [`LinkError::Internal`] if it does not.
fn part<'a>(
    bytes: &'a [u8],
    from: usize,
    to: Option<usize>,
    what: &'static str,
) -> Result<&'a [u8], LinkError> {
    let got = match to {
        Some(to) => bytes.get(from..to),
        None => bytes.get(from..),
    };
    got.ok_or_else(|| {
        debug_assert!(false, "{what}: {from}..{to:?} of {}", bytes.len());
        LinkError::Internal { what }
    })
}

/// A connected peer's stream, with its cipher.
pub struct Link {
    stream: TcpStream,
    send: HalfCipher,
    recv: HalfCipher,
    method: Option<CryptoMethod>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.stream.peer_addr().ok())
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link without MSE.
    pub fn plain(stream: TcpStream) -> Link {
        Link {
            stream,
            send: HalfCipher::Plaintext,
            recv: HalfCipher::Plaintext,
            method: None,
        }
    }

    /// The payload stream is RC4-encrypted.
    pub fn encrypted(&self) -> bool {
        self.method == Some(CryptoMethod::Rc4)
    }

    /// How the link was set up, for logs: `plaintext`, `mse/plaintext` or
    /// `mse/rc4`.
    pub fn describe(&self) -> &'static str {
        match self.method {
            None => "plaintext",
            Some(CryptoMethod::Plaintext) => "mse/plaintext",
            Some(CryptoMethod::Rc4) => "mse/rc4",
        }
    }

    /// The socket, for its options.
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads and decrypts; `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        if let Some(got) = buf.get_mut(..n) {
            self.recv.apply(got);
        }
        Ok(n)
    }

    /// Encrypts `buf` in place (it is spent afterwards) and writes it all.
    pub fn write_all(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.send.apply(buf);
        self.stream.write_all(buf)
    }

    /// The two directions apart, for a reader thread beside the writer.
    pub fn split(self) -> std::io::Result<(LinkReader, Link)> {
        let reader = LinkReader {
            stream: self.stream.try_clone()?,
            recv: self.recv,
        };
        let writer = Link {
            stream: self.stream,
            send: self.send,
            recv: HalfCipher::Plaintext,
            method: self.method,
        };
        Ok((reader, writer))
    }
}

/// The reading half of a [`Link`], from [`Link::split`]; the writer must
/// not read after the split.
pub struct LinkReader {
    stream: TcpStream,
    recv: HalfCipher,
}

impl LinkReader {
    /// Blocks until there is something to read (or the stream ended),
    /// reading nothing.
    pub fn wait_readable(&self) -> std::io::Result<()> {
        self.stream.peek(&mut [0u8; 1]).map(|_| ())
    }

    /// Reads and decrypts; `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stream.read(buf)?;
        if let Some(got) = buf.get_mut(..n) {
            self.recv.apply(got);
        }
        Ok(n)
    }
}

/// Whether a read error only means "nothing yet": a read timeout
/// (`WouldBlock` or `TimedOut`, depending on the platform) or a signal.
pub fn is_retry(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// 32 bytes from the OS generator, for one handshake's keys and padding.
fn seed() -> Result<[u8; mse::SEED_LEN], LinkError> {
    let mut seed = [0u8; mse::SEED_LEN];
    getrandom::fill(&mut seed).map_err(LinkError::Random)?;
    Ok(seed)
}

/// Reads what is there within `deadline` (`Ok(0)`: end of stream).
fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    limit: Duration,
) -> Result<usize, LinkError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LinkError::Timeout(limit));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|source| LinkError::Io {
                what: "socket",
                source,
            })?;
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if is_retry(&e) => {}
            Err(source) => {
                return Err(LinkError::Io {
                    what: "read",
                    source,
                })
            }
        }
    }
}

/// Either end of an MSE handshake, as [`read_mse`] tells it of the end of
/// the stream or of the deadline (each turns that into its typed error).
trait MseEnd {
    fn handle_eof(&mut self) -> Result<(), MseError>;
    fn handle_timeout(&mut self, now: Instant) -> Result<(), MseError>;
}

impl MseEnd for Initiator {
    fn handle_eof(&mut self) -> Result<(), MseError> {
        Initiator::handle_eof(self)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), MseError> {
        Initiator::handle_timeout(self, now)
    }
}

impl MseEnd for Responder {
    fn handle_eof(&mut self) -> Result<(), MseError> {
        Responder::handle_eof(self)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), MseError> {
        Responder::handle_timeout(self, now)
    }
}

/// Reads MSE handshake bytes within `deadline`: at least one byte, or the
/// handshake's own error for a closed stream or a passed deadline.
fn read_mse(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    limit: Duration,
    hs: &mut impl MseEnd,
) -> Result<usize, LinkError> {
    match read_until(stream, buf, deadline, limit) {
        Ok(0) => {
            hs.handle_eof()?;
            Err(LinkError::Closed)
        }
        Ok(n) => Ok(n),
        Err(LinkError::Timeout(limit)) => {
            hs.handle_timeout(Instant::now())?;
            Err(LinkError::Timeout(limit))
        }
        Err(e) => Err(e),
    }
}

fn send(stream: &mut TcpStream, out: &mut Vec<u8>) -> Result<(), LinkError> {
    if !out.is_empty() {
        stream.write_all(out).map_err(|source| LinkError::Io {
            what: "write",
            source,
        })?;
        out.clear();
    }
    Ok(())
}

/// What dialling produced: the link, and the first bytes of the peer's
/// payload stream that came with the end of the MSE handshake (already
/// decrypted; normally the start of its BitTorrent handshake).
pub struct Dialled {
    /// The link.
    pub link: Link,
    /// Payload bytes already read.
    pub head: Vec<u8>,
}

/// How long a TCP connect may take. Short, so that addresses that never
/// answer (a tracker or PEX full of them) hold a dial only briefly: SYNs
/// are retried after 1 s and 3 s, so a live peer answers well within it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

/// Connects to `addr` as `policy` says. `bt_handshake` is our BitTorrent
/// handshake: with MSE it travels in the initial payload, otherwise it is
/// written first. Under [`Policy::Prefer`] a peer that fails the MSE
/// handshake (most often a plaintext-only peer hanging up) is dialled
/// once more, in plaintext. Each TCP connect may take [`CONNECT_TIMEOUT`]
/// (less if `timeout` is shorter), and the whole of it, retry included,
/// `timeout`.
pub fn dial(
    addr: SocketAddr,
    info_hash: [u8; 20],
    bt_handshake: &[u8],
    policy: Policy,
    timeout: Duration,
) -> Result<Dialled, LinkError> {
    let deadline = Instant::now() + timeout;
    let connect = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LinkError::Connect(io::Error::from(io::ErrorKind::TimedOut)));
        }
        let stream = TcpStream::connect_timeout(&addr, left.min(CONNECT_TIMEOUT))
            .map_err(LinkError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok::<_, LinkError>(stream)
    };
    let plain = |mut stream: TcpStream| {
        let mut out = bt_handshake.to_vec();
        send(&mut stream, &mut out)?;
        Ok(Dialled {
            link: Link::plain(stream),
            head: Vec::new(),
        })
    };
    let Some(config) = policy.mse_config().map(|c| mse::MseConfig { timeout, ..c }) else {
        return plain(connect()?);
    };
    let stream = connect()?;
    let config = mse::MseConfig {
        timeout: deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
        ..config
    };
    match dial_mse(stream, info_hash, bt_handshake, &config) {
        Ok(dialled) => Ok(dialled),
        Err(e @ (LinkError::Random(_) | LinkError::Connect(_))) => Err(e),
        Err(e) if policy.plaintext_fallback() => {
            log::debug!(target: "rustico", "{addr}: {e}; trying again in plaintext");
            plain(connect()?)
        }
        Err(e) => Err(e),
    }
}

fn dial_mse(
    mut stream: TcpStream,
    info_hash: [u8; 20],
    bt_handshake: &[u8],
    config: &mse::MseConfig,
) -> Result<Dialled, LinkError> {
    let now = Instant::now();
    let deadline = now + config.timeout;
    let mut hs = Initiator::new(info_hash, config, bt_handshake, &seed()?, now)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        hs.poll_transmit(&mut out);
        send(&mut stream, &mut out)?;
        let n = read_mse(&mut stream, &mut buf, deadline, config.timeout, &mut hs)?;
        let got = part(&buf, 0, Some(n), "a read longer than its buffer")?;
        if let Progress::Done { used } = hs.handle_input(got)? {
            let est = hs.finish(&mut out)?;
            send(&mut stream, &mut out)?;
            let method = est.cipher.method();
            let (send_half, mut recv_half) = est.cipher.split();
            let mut head = part(got, used, None, "MSE used more than its input")?.to_vec();
            recv_half.apply(&mut head);
            return Ok(Dialled {
                link: Link {
                    stream,
                    send: send_half,
                    recv: recv_half,
                    method: Some(method),
                },
                head,
            });
        }
    }
}

/// An incoming peer, routed to its torrent.
pub struct Accepted {
    /// The link.
    pub link: Link,
    /// The torrent it asked for.
    pub info_hash: [u8; 20],
    /// The start of its payload stream, already read and decrypted: at
    /// least its BitTorrent handshake up to the info-hash.
    pub head: Vec<u8>,
}

/// Reads an incoming peer's first bytes within `timeout`, tells plaintext
/// from MSE, runs the MSE handshake if needed (`torrent_of` maps
/// `HASH('req2', SKEY)` to the torrent), and returns the link with the
/// torrent it is for.
pub fn accept(
    mut stream: TcpStream,
    policy: Policy,
    timeout: Duration,
    torrent_of: impl Fn(&[u8; 20]) -> Option<[u8; 20]>,
) -> Result<Accepted, LinkError> {
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut head = Vec::with_capacity(rustico_peer_wire::Handshake::INFO_HASH_END);
    let mut buf = vec![0u8; 2048];
    let kind = loop {
        if let Some(kind) = mse::detect(&head) {
            break kind;
        }
        // Never read past the detection window here: the rest belongs to
        // whichever handshake it turns out to be.
        let want = mse::DETECT_LEN - head.len();
        let n = read_until(&mut stream, &mut buf[..want], deadline, timeout)?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        head.extend_from_slice(part(&buf, 0, Some(n), "a read longer than its buffer")?);
    };
    if !policy.accepts(kind) {
        return Err(LinkError::Refused(kind));
    }
    match kind {
        Incoming::Plaintext => {
            let end = rustico_peer_wire::Handshake::INFO_HASH_END;
            while head.len() < end {
                let want = end - head.len();
                let n = read_until(&mut stream, &mut buf[..want], deadline, timeout)?;
                if n == 0 {
                    return Err(LinkError::Closed);
                }
                head.extend_from_slice(part(&buf, 0, Some(n), "a read longer than its buffer")?);
            }
            let Ok(Some(info_hash)) = rustico_peer_wire::Handshake::peek_info_hash(&head) else {
                return Err(LinkError::NotBitTorrent);
            };
            Ok(Accepted {
                link: Link::plain(stream),
                info_hash,
                head,
            })
        }
        Incoming::Encrypted => {
            let config = policy
                .mse_config()
                .map(|c| mse::MseConfig { timeout, ..c })
                .ok_or(LinkError::Refused(kind))?;
            accept_mse(stream, &config, head, deadline, torrent_of)
        }
    }
}

fn accept_mse(
    mut stream: TcpStream,
    config: &mse::MseConfig,
    first: Vec<u8>,
    deadline: Instant,
    torrent_of: impl Fn(&[u8; 20]) -> Option<[u8; 20]>,
) -> Result<Accepted, LinkError> {
    let mut hs = Responder::new(config, &seed()?, Instant::now())?;
    let mut out = Vec::new();
    let mut pending = first;
    let mut buf = vec![0u8; 2048];
    loop {
        let mut input: &[u8] = &pending;
        loop {
            match hs.handle_input(input)? {
                Progress::NeedInput => break,
                Progress::NeedInfoHash { skey_hash, used } => {
                    input = part(input, used, None, "MSE used more than its input")?;
                    let hash = torrent_of(&skey_hash).ok_or(LinkError::UnknownTorrent)?;
                    hs.select_info_hash(hash)?;
                }
                Progress::Done { used } => {
                    let rest = part(input, used, None, "MSE used more than its input")?.to_vec();
                    hs.poll_transmit(&mut out);
                    let est = hs.finish(&mut out)?;
                    send(&mut stream, &mut out)?;
                    let method = est.cipher.method();
                    let (send_half, mut recv_half) = est.cipher.split();
                    let mut head = est.initial_payload;
                    let mut tail = rest;
                    recv_half.apply(&mut tail);
                    head.extend_from_slice(&tail);
                    return Ok(Accepted {
                        link: Link {
                            stream,
                            send: send_half,
                            recv: recv_half,
                            method: Some(method),
                        },
                        info_hash: est.info_hash,
                        head,
                    });
                }
            }
        }
        hs.poll_transmit(&mut out);
        send(&mut stream, &mut out)?;
        let n = read_mse(&mut stream, &mut buf, deadline, config.timeout, &mut hs)?;
        pending = part(&buf, 0, Some(n), "a read longer than its buffer")?.to_vec();
    }
}
