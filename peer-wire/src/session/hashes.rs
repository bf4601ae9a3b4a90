//! BEP 52 hash messages in a session: our `hash request`s and their
//! answers, and the peer's requests, answered from the content's
//! [`HashSource`] or rejected (BEP 52 lets a peer refuse; a v2 peer then
//! asks another).

use std::fmt;

use super::{Event, Session, State, Violation};
use crate::message_v2::{HashMessage, HashRequest};

/// Our hash requests outstanding on one connection at most.
pub const MAX_HASH_REQUESTS: usize = 16;

/// Where a session finds the hashes a peer asks for: the torrent's merkle
/// trees, which this crate does not hold (`rustico_metainfo::HashServer`
/// answers from a `.torrent`'s piece layers).
pub trait HashSource: Send + Sync + fmt::Debug {
    /// The `request.length` hashes then the proof's uncles, or `None` to
    /// reject the request.
    fn hashes(&self, request: &HashRequest) -> Option<Vec<[u8; 32]>>;
}

impl Session {
    /// Asks the peer for hashes (BEP 52 `hash request`); the answer comes
    /// as [`Event::Hashes`] or [`Event::HashesRejected`]. Returns false,
    /// sending nothing, when [`MAX_HASH_REQUESTS`] are outstanding or
    /// the same request is.
    pub fn request_hashes(&mut self, request: HashRequest) -> bool {
        let st = &mut self.st;
        if st.hash_requests.len() >= MAX_HASH_REQUESTS || st.hash_requests.contains(&request) {
            return false;
        }
        st.hash_requests.push(request);
        HashMessage::Request(request).encode(&mut st.out);
        true
    }

    /// Our hash requests not answered yet.
    pub fn hash_requests(&self) -> &[HashRequest] {
        &self.st.hash_requests
    }
}

impl State {
    /// A message id this crate does not decode itself: the hash messages
    /// are handled, any other is ignored (BEP 3 asks for that).
    pub(super) fn handle_unknown(&mut self, id: u8, payload: &[u8]) -> Result<(), Violation> {
        let Some(decoded) = HashMessage::decode(id, payload) else {
            return Ok(());
        };
        match decoded.map_err(Violation::HashMessage)? {
            HashMessage::Request(request) => {
                let answer = self
                    .content
                    .hashes
                    .as_ref()
                    // A 48-byte request can ask for 18 KiB of hashes: past
                    // the transmit bound, a peer that asks and never reads
                    // gets rejects (53 bytes each) instead of our memory.
                    .filter(|_| self.out.len() < self.config.max_transmit_buffer)
                    .and_then(|source| source.hashes(&request));
                match answer {
                    Some(hashes) => HashMessage::Hashes { request, hashes }.encode(&mut self.out),
                    None => HashMessage::Reject(request).encode(&mut self.out),
                }
            }
            HashMessage::Hashes { request, hashes } => {
                // An answer we did not ask for is ignored, as a block is.
                if self.take_hash_request(&request) {
                    self.events.push_back(Event::Hashes { request, hashes });
                }
            }
            HashMessage::Reject(request) => {
                if self.take_hash_request(&request) {
                    self.events.push_back(Event::HashesRejected(request));
                }
            }
        }
        Ok(())
    }

    fn take_hash_request(&mut self, request: &HashRequest) -> bool {
        match self.hash_requests.iter().position(|r| r == request) {
            Some(at) => {
                self.hash_requests.swap_remove(at);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::{Content, Handshake, Handshaking, Progress, Reserved, SessionConfig};
    use rustico_pieces::{Bitfield, Geometry};

    fn session(now: Instant) -> Session {
        session_with(now, None)
    }

    fn session_with(now: Instant, source: Option<Arc<dyn HashSource>>) -> Session {
        let geometry = Geometry::new(4 * 65_536, 65_536).unwrap();
        let mut content = Content::torrent(geometry, Bitfield::new(4)).unwrap();
        if let Some(source) = source {
            content = content.with_hashes(source);
        }
        let ours = Handshake::new(Reserved::supported(), [1; 20], [2; 20]);
        let mut hs = Handshaking::new(ours, content, SessionConfig::default(), now);
        hs.poll_transmit(&mut Vec::new(), now);
        let theirs = Handshake::new(Reserved::supported(), [1; 20], [3; 20]).to_bytes();
        let Progress::Established(mut s) = hs.handle_input(&theirs, now).unwrap() else {
            panic!("the handshake is whole");
        };
        s.poll_transmit(&mut Vec::new(), now);
        s
    }

    fn request(index: u32) -> HashRequest {
        HashRequest {
            pieces_root: [9; 32],
            base_layer: 2,
            index,
            length: 4,
            proof_layers: 3,
        }
    }

    fn wire(message: HashMessage) -> Vec<u8> {
        let mut out = Vec::new();
        message.encode(&mut out);
        out
    }

    #[test]
    fn our_requests_are_answered_once_and_strangers_answers_are_ignored() {
        let now = Instant::now();
        let mut s = session(now);
        assert!(s.request_hashes(request(0)));
        assert!(!s.request_hashes(request(0)), "the same request twice");
        let mut out = Vec::new();
        s.poll_transmit(&mut out, now);
        assert_eq!(out, wire(HashMessage::Request(request(0))));

        let hashes = vec![[5; 32]; 5];
        let answer = wire(HashMessage::Hashes {
            request: request(0),
            hashes: hashes.clone(),
        });
        s.handle_input(&answer, now).unwrap();
        // Not asked for: ignored, like an unrequested block.
        s.handle_input(&answer, now).unwrap();
        s.handle_input(&wire(HashMessage::Reject(request(4))), now)
            .unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event())
            .filter(|e| !matches!(e, Event::Stats { .. }))
            .collect();
        assert_eq!(
            events,
            [Event::Hashes {
                request: request(0),
                hashes
            }]
        );
        assert!(s.hash_requests().is_empty());

        assert!(s.request_hashes(request(8)));
        s.handle_input(&wire(HashMessage::Reject(request(8))), now)
            .unwrap();
        assert_eq!(s.poll_event(), Some(Event::HashesRejected(request(8))));
    }

    #[test]
    fn outstanding_requests_are_capped() {
        let now = Instant::now();
        let mut s = session(now);
        for n in 0..MAX_HASH_REQUESTS as u32 {
            assert!(s.request_hashes(request(4 * n)));
        }
        assert!(!s.request_hashes(request(4 * MAX_HASH_REQUESTS as u32)));
        assert_eq!(s.hash_requests().len(), MAX_HASH_REQUESTS);
    }

    #[test]
    fn a_peers_request_is_rejected_and_a_malformed_message_is_a_violation() {
        let now = Instant::now();
        let mut s = session(now);
        s.handle_input(&wire(HashMessage::Request(request(0))), now)
            .unwrap();
        let mut out = Vec::new();
        s.poll_transmit(&mut out, now);
        assert_eq!(out, wire(HashMessage::Reject(request(0))));
        // A `hashes` whose list is not whole 32-byte hashes.
        let mut bad = vec![0, 0, 0, 54, crate::HASHES];
        bad.extend([0; 53]);
        let err = s.handle_input(&bad, now).unwrap_err();
        assert!(err.to_string().contains("hash"), "{err}");
    }

    /// Answers requests for root `[9; 32]` with `length` copies of the
    /// index's low byte.
    #[derive(Debug)]
    struct Echo;

    impl HashSource for Echo {
        fn hashes(&self, request: &HashRequest) -> Option<Vec<[u8; 32]>> {
            (request.pieces_root == [9; 32])
                .then(|| vec![[request.index as u8; 32]; request.length as usize])
        }
    }

    /// Message ids in `wire`, in order.
    fn ids(wire: &[u8]) -> Vec<u8> {
        let mut ids = Vec::new();
        let mut at = 0;
        while at + 5 <= wire.len() {
            let len = u32::from_be_bytes(wire[at..at + 4].try_into().unwrap()) as usize;
            ids.push(wire[at + 4]);
            at += 4 + len;
        }
        ids
    }

    #[test]
    fn a_peers_requests_are_answered_from_the_source_until_too_much_waits() {
        let now = Instant::now();
        let mut s = session_with(now, Some(Arc::new(Echo)));
        let big = |index| HashRequest {
            length: 512,
            proof_layers: 8,
            ..request(index)
        };
        s.handle_input(&wire(HashMessage::Request(big(0))), now)
            .unwrap();
        let mut unknown = big(512);
        unknown.pieces_root = [1; 32];
        s.handle_input(&wire(HashMessage::Request(unknown)), now)
            .unwrap();
        let mut out = Vec::new();
        s.poll_transmit(&mut out, now);
        let mut expected = wire(HashMessage::Hashes {
            request: big(0),
            hashes: vec![[0; 32]; 512],
        });
        expected.extend(wire(HashMessage::Reject(unknown)));
        assert_eq!(out, expected);

        // 40 requests of 16 KiB of hashes each from a peer that does not
        // read: answers stop at the 256 KiB bound, the rest are rejected.
        let mut flood = Vec::new();
        for n in 0..40 {
            flood.extend(wire(HashMessage::Request(big(512 * n))));
        }
        s.handle_input(&flood, now).unwrap();
        let mut out = Vec::new();
        s.poll_transmit(&mut out, now);
        let ids = ids(&out);
        let answered = ids.iter().filter(|&&id| id == crate::HASHES).count();
        let rejected = ids.iter().filter(|&&id| id == crate::HASH_REJECT).count();
        assert_eq!(answered + rejected, 40);
        assert!((15..=17).contains(&answered), "{answered} answered");
        assert!(
            out.len() < SessionConfig::default().max_transmit_buffer + 20_000,
            "{} bytes queued",
            out.len()
        );
    }
}
