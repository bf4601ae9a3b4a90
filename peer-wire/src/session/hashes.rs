//! BEP 52 hash messages in a session: our `hash request`s and their
//! answers. We serve no hashes yet: a peer's request gets a `hash reject`
//! (BEP 52 lets a peer refuse; a v2 peer then asks another).

use super::{Event, Session, State, Violation};
use crate::message_v2::{HashMessage, HashRequest};

/// Our hash requests outstanding on one connection at most.
pub const MAX_HASH_REQUESTS: usize = 16;

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
            HashMessage::Request(request) => HashMessage::Reject(request).encode(&mut self.out),
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
    use std::time::Instant;

    use super::*;
    use crate::{Content, Handshake, Handshaking, Progress, Reserved, SessionConfig};
    use rustico_pieces::{Bitfield, Geometry};

    fn session(now: Instant) -> Session {
        let geometry = Geometry::new(4 * 65_536, 65_536).unwrap();
        let content = Content::torrent(geometry, Bitfield::new(4)).unwrap();
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
}
