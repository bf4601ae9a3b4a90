//! Who gets a connection: peer slots as pure rules over a snapshot of the
//! table (issue #20, classes 2 and 3).
//!
//! - **Per-address cap**: at most [`SwarmConfig::max_peers_per_ip`]
//!   connections (incoming, dialled or handshaking) with one IP address,
//!   so one host cannot take many slots.
//! - **Dial limit**: dials fill at most nine tenths of
//!   [`SwarmConfig::max_peers`]; the rest is kept for peers that dial us,
//!   so an eviction (below) leaves a free slot where a newcomer lands
//!   instead of starting a chain of evictions across the swarm.
//! - **Half-open cap**: at most [`SwarmConfig::max_half_open`] dials in
//!   progress, so addresses that never answer cannot take every slot
//!   from established and incoming peers.
//! - **Eviction**: when the table is full, a newcomer (incoming, or a
//!   dial waiting for a slot) replaces a connected peer that moved no
//!   payload either way for longer than [`SwarmConfig::eviction_grace`]:
//!   first one we unchoke that takes nothing (past
//!   [`SwarmConfig::unused_unchoke_timeout`]), then one with no interest
//!   either way, then one that sends us nothing we asked for, last one
//!   waiting for our unchoke; the longest silent among equals. An address
//!   that lost a slot may take a free one but nobody's for a while (six
//!   grace periods), so a crowd cannot evict each other in turn and keep
//!   every slot young.
//! - **Idle drop**: a peer with which neither side is interested for
//!   [`SwarmConfig::idle_timeout`], or with which no payload moved either
//!   way for [`SwarmConfig::inactivity_timeout`], is closed, so
//!   keep-alives cannot hold a slot forever.
//! - **Duplicates** (the same peer id from the same IP address, or the
//!   same listen address): a connection that moved payload wins; a young
//!   connection is kept against a newcomer (a simultaneous open follows
//!   the peer ids, as on the other side); a connection past its grace
//!   period that moved nothing loses to the newcomer. The same id from
//!   another address is no duplicate, so a third party that learnt a
//!   peer's id cannot lock that peer out.
//!
//! Time is a parameter; nothing here reads the clock.
//!
//! [`SwarmConfig::max_peers_per_ip`]: crate::SwarmConfig::max_peers_per_ip
//! [`SwarmConfig::max_peers`]: crate::SwarmConfig::max_peers
//! [`SwarmConfig::max_half_open`]: crate::SwarmConfig::max_half_open
//! [`SwarmConfig::eviction_grace`]: crate::SwarmConfig::eviction_grace
//! [`SwarmConfig::idle_timeout`]: crate::SwarmConfig::idle_timeout
//! [`SwarmConfig::inactivity_timeout`]: crate::SwarmConfig::inactivity_timeout
//! [`SwarmConfig::unused_unchoke_timeout`]: crate::SwarmConfig::unused_unchoke_timeout

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rustico_piece_picker::PeerKey;

use crate::{Refusal, SwarmConfig};

/// When a connection started and when it last moved payload or showed
/// interest; kept per peer and updated by [`Activity::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Activity {
    /// The handshake completed (or the dial started, before that).
    pub(crate) since: Instant,
    /// Payload last moved either way (`since` until then).
    pub(crate) last_payload: Instant,
    /// Payload bytes both ways at the last observation: blocks received
    /// that we asked for, and bytes sent.
    pub(crate) payload_seen: u64,
    /// Bytes of blocks received that we asked for (unrequested payload a
    /// peer pushes at us does not make it useful).
    pub(crate) useful_down: u64,
    /// Neither side has been interested since then.
    pub(crate) quiet_since: Option<Instant>,
    /// Since when we unchoke the peer while it says it is interested, and
    /// our upload counter then.
    pub(crate) serving_since: Option<(Instant, u64)>,
    /// Our upload counter at the last observation.
    pub(crate) uploaded_seen: u64,
    /// It was found [`hogging`](Self::hogging) an upload slot on this
    /// connection: the choker passes it over while others want the
    /// slots, until it takes something.
    pub(crate) hog: bool,
}

/// What a peer's state says of it, at the last observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stance {
    /// We want its pieces.
    pub(crate) am_interested: bool,
    /// It wants ours.
    pub(crate) peer_interested: bool,
    /// We choke it.
    pub(crate) am_choking: bool,
}

impl Activity {
    pub(crate) fn new(now: Instant) -> Activity {
        Activity {
            since: now,
            last_payload: now,
            payload_seen: 0,
            useful_down: 0,
            quiet_since: None,
            serving_since: None,
            uploaded_seen: 0,
            hog: false,
        }
    }

    /// Restarts the clocks: the handshake completed now.
    pub(crate) fn start(&mut self, now: Instant) {
        *self = Activity::new(now);
    }

    /// A block we asked for arrived.
    pub(crate) fn block_received(&mut self, bytes: usize) {
        self.useful_down = self.useful_down.saturating_add(bytes as u64);
    }

    /// Takes in the bytes sent to the peer so far and its stance, as of
    /// `now` (blocks received come through
    /// [`block_received`](Self::block_received)).
    pub(crate) fn observe(&mut self, up: u64, stance: Stance, now: Instant) {
        if up != self.uploaded_seen {
            // It takes what it is given: no hog (any more).
            self.hog = false;
        }
        let payload = self.useful_down.saturating_add(up);
        if payload != self.payload_seen {
            self.payload_seen = payload;
            self.last_payload = now;
        }
        self.uploaded_seen = up;
        if stance.am_interested || stance.peer_interested {
            self.quiet_since = None;
        } else if self.quiet_since.is_none() {
            self.quiet_since = Some(now);
        }
        if stance.peer_interested && !stance.am_choking {
            if self.serving_since.is_none() {
                self.serving_since = Some((now, up));
            }
        } else {
            self.serving_since = None;
        }
    }

    /// Unchoked and interested for `timeout` or longer without taking a
    /// byte: it holds an upload slot for nothing.
    pub(crate) fn hogging(&self, now: Instant, timeout: Duration) -> bool {
        self.serving_since.is_some_and(|(t, up)| {
            now.saturating_duration_since(t) >= timeout && self.uploaded_seen == up
        })
    }

    /// Payload ever moved on this connection.
    pub(crate) fn proven(&self) -> bool {
        self.payload_seen > 0
    }

    /// Younger than `grace`.
    pub(crate) fn young(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.since) < grace
    }

    /// How long no payload moved.
    pub(crate) fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_payload)
    }
}

/// One connection as admission sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Occupant {
    pub(crate) key: PeerKey,
    /// The remote IP (`None` for a web seed, which takes no slot).
    pub(crate) ip: Option<IpAddr>,
    /// The handshake is done.
    pub(crate) connected: bool,
    /// A close was ordered.
    pub(crate) closing: bool,
    /// We dialled it.
    pub(crate) outgoing: bool,
    pub(crate) stance: Stance,
    pub(crate) activity: Activity,
}

impl Occupant {
    fn takes_slot(&self) -> bool {
        self.ip.is_some()
    }

    /// A dial (or its handshake) in progress.
    fn half_open(&self) -> bool {
        self.takes_slot() && self.outgoing && !self.connected && !self.closing
    }
}

/// The limits of [`SwarmConfig`] that admission applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_peers: usize,
    pub(crate) max_per_ip: usize,
    pub(crate) max_half_open: usize,
    pub(crate) grace: Duration,
    pub(crate) idle: Duration,
    pub(crate) inactivity: Duration,
    pub(crate) hog: Duration,
}

impl Limits {
    /// Connections we fill by dialling: the last tenth of the table waits
    /// for incoming peers, so a peer that lost its slot here to a newcomer
    /// has a free one for the next peer that dials it, and does not dial
    /// a full table to take someone else's.
    pub(crate) fn dial_limit(&self) -> usize {
        self.max_peers - self.max_peers / 10
    }

    pub(crate) fn from_config(cfg: &SwarmConfig) -> Limits {
        Limits {
            max_peers: cfg.max_peers,
            max_per_ip: cfg.max_peers_per_ip.max(1),
            max_half_open: cfg.max_half_open.max(1),
            grace: cfg.eviction_grace,
            idle: cfg.idle_timeout,
            inactivity: cfg.inactivity_timeout,
            hog: cfg.unused_unchoke_timeout,
        }
    }
}

/// What to do with a peer that dialled us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A slot is free.
    Admit,
    /// Admit it in place of this peer (close that one).
    Replace(PeerKey),
    /// Refuse it.
    Refuse(Refusal),
}

/// Connections in the table that take a slot (web seeds do not).
fn in_use(table: &[Occupant]) -> usize {
    table.iter().filter(|o| o.takes_slot()).count()
}

/// How long an unchoked, interested peer may take nothing before it
/// counts as wasting its slot: `base`
/// ([`SwarmConfig::unused_unchoke_timeout`]), or the time our upload
/// (`up_rate` bytes a second, all peers together) takes to send one block
/// to every upload slot if that is longer, at most ten times `base`. On a
/// slow uplink the unchoke itself waits behind the blocks already queued
/// on the connection, and the peer cannot ask before it sees it: judged in
/// 3 s, every peer of a 2.4 KB/s seed lost its slot before its first
/// block arrived, and no piece moved for minutes (simulator seed 18721).
pub(crate) fn hog_timeout(
    base: Duration,
    block: usize,
    upload_slots: usize,
    up_rate: f64,
) -> Duration {
    if up_rate <= 0.0 || !up_rate.is_finite() {
        return base;
    }
    let one_round = block as f64 * upload_slots.max(1) as f64 / up_rate;
    let most = base.as_secs_f64() * 10.0;
    base.max(Duration::from_secs_f64(one_round.min(most)))
}

/// Connections with `ip` (closing ones too: their socket is still open).
pub(crate) fn with_ip(table: &[Occupant], ip: IpAddr) -> usize {
    table.iter().filter(|o| o.ip == Some(ip)).count()
}

/// Whether `ip` has as many connections as one address may.
pub(crate) fn ip_full(limits: &Limits, table: &[Occupant], ip: IpAddr) -> bool {
    with_ip(table, ip) >= limits.max_per_ip
}

/// How much a silent peer is owed its slot: one we unchoke that takes
/// nothing (it holds an upload slot for nothing) goes first, then one
/// that wants nothing from us and has nothing we want, then one we want
/// data from that sends none, last one that waits for us to unchoke it
/// (it has taken nothing through no fault of its own).
fn owed(limits: &Limits, o: &Occupant, now: Instant) -> u8 {
    if o.activity.hog || o.activity.hogging(now, limits.hog) {
        return 0;
    }
    let stance = o.stance;
    match (
        stance.am_interested,
        stance.peer_interested && stance.am_choking,
    ) {
        (false, false) => 1,
        (true, false) => 2,
        (_, true) => 3,
    }
}

/// The connected peer a newcomer may replace: not closing, past its
/// grace period, and silent (no payload either way) for at least the
/// grace period; of those, the one owed least (see [`owed`]), then the
/// one silent longest.
pub(crate) fn eviction_candidate(
    limits: &Limits,
    table: &[Occupant],
    now: Instant,
) -> Option<PeerKey> {
    table
        .iter()
        .filter(|o| o.takes_slot() && o.connected && !o.closing)
        .filter(|o| {
            !o.activity.young(now, limits.grace) && o.activity.silent_for(now) >= limits.grace
        })
        .max_by_key(|o| {
            (
                std::cmp::Reverse(owed(limits, o, now)),
                o.activity.silent_for(now),
                std::cmp::Reverse(o.key.index()),
            )
        })
        .map(|o| o.key)
}

/// Addresses that lost a slot recently (evicted, or closed idle), each
/// until a deadline: until then they may take a free slot but not another
/// peer's, so a crowd cannot take each other's slots in turn to keep them
/// all young (and hosts sharing that address lose no more than that).
/// Bounded: past `cap` entries the expired ones go, then new ones are not
/// remembered.
#[derive(Debug)]
pub(crate) struct Cooldown {
    cap: usize,
    length: Duration,
    until: HashMap<IpAddr, Instant>,
}

impl Cooldown {
    pub(crate) fn new(cap: usize, length: Duration) -> Cooldown {
        Cooldown {
            cap,
            length,
            until: HashMap::new(),
        }
    }

    /// `ip` lost a slot now.
    pub(crate) fn start(&mut self, ip: IpAddr, now: Instant) {
        if self.until.len() >= self.cap {
            self.until.retain(|_, t| now < *t);
        }
        if self.until.len() < self.cap || self.until.contains_key(&ip) {
            self.until.insert(ip, now + self.length);
        }
    }

    /// Whether `ip` may not take another peer's slot now.
    pub(crate) fn holds(&self, ip: IpAddr, now: Instant) -> bool {
        self.until.get(&ip).is_some_and(|&t| now < t)
    }
}

/// Whether a peer at `ip` that dialled us gets a slot; `cooling`: its
/// address lost a slot a moment ago (evicted or dropped idle), so it may
/// take a free slot but not another peer's.
pub(crate) fn admit_incoming(
    limits: &Limits,
    table: &[Occupant],
    ip: IpAddr,
    cooling: bool,
    now: Instant,
) -> Admission {
    if ip_full(limits, table, ip) {
        return Admission::Refuse(Refusal::TooManyFromAddress);
    }
    // Peers being closed leave soon; a newcomer does not wait for them,
    // so the table may run over by the number being closed.
    let closing = table.iter().filter(|o| o.takes_slot() && o.closing).count();
    if in_use(table).saturating_sub(closing) < limits.max_peers {
        return Admission::Admit;
    }
    match eviction_candidate(limits, table, now).filter(|_| !cooling) {
        Some(key) => Admission::Replace(key),
        None => Admission::Refuse(Refusal::TooManyPeers),
    }
}

/// How many dials may start now: free slots up to the dial limit, within
/// the half-open cap.
pub(crate) fn dial_budget(limits: &Limits, table: &[Occupant]) -> usize {
    let free = limits.dial_limit().saturating_sub(in_use(table));
    let dialling = table.iter().filter(|o| o.half_open()).count();
    free.min(limits.max_half_open.saturating_sub(dialling))
}

/// Connected peers to drop now: neither side interested for the idle
/// time-out, or no payload either way for the inactivity time-out.
pub(crate) fn idle_peers(limits: &Limits, table: &[Occupant], now: Instant) -> Vec<PeerKey> {
    table
        .iter()
        .filter(|o| o.takes_slot() && o.connected && !o.closing)
        .filter(|o| {
            let quiet = o
                .activity
                .quiet_since
                .is_some_and(|t| now.saturating_duration_since(t) >= limits.idle);
            quiet || o.activity.silent_for(now) >= limits.inactivity
        })
        .map(|o| o.key)
        .collect()
}

/// Of two connections with one peer (same id from one IP address, or the
/// same listen address), which to close. `ids_say_keep_outgoing`: the
/// peer-id rule both sides apply to a simultaneous open (keep the
/// connection the lower id dialled). `interest` says whether the existing
/// connection shows interest either way.
pub(crate) fn duplicate_loser(
    limits: &Limits,
    existing: &Occupant,
    existing_interest: bool,
    new: &Occupant,
    ids_say_keep_outgoing: bool,
    now: Instant,
) -> PeerKey {
    let young = existing.activity.young(now, limits.grace);
    if existing.activity.proven() || (young && existing_interest) {
        // Established and useful: it stays.
        return new.key;
    }
    if !young {
        // Past its grace period without moving anything: a stale
        // connection, or a squatter; the newcomer takes over.
        return existing.key;
    }
    if existing.outgoing != new.outgoing {
        // Both sides dialled at once: both keep the same one.
        return if new.outgoing == ids_say_keep_outgoing {
            existing.key
        } else {
            new.key
        };
    }
    new.key
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_piece_picker::PiecePicker;

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn a_slow_uplink_gets_longer_to_prove_a_peer_idle() {
        let base = Duration::from_secs(3);
        let block = 16_384;
        // Fast: four blocks a second and more; the time-out as configured.
        assert_eq!(hog_timeout(base, block, 4, 1e6), base);
        assert_eq!(
            hog_timeout(base, block, 4, 0.0),
            base,
            "nothing measured yet"
        );
        // Seed 18721: 2.4 KB/s over 4 slots, 27 s for a block each.
        let slow = hog_timeout(base, block, 4, 2_447.0);
        assert!(
            slow > Duration::from_secs(26) && slow < Duration::from_secs(28),
            "{slow:?}"
        );
        // A trickle is capped: idle peers still lose their slots.
        assert_eq!(hog_timeout(base, block, 4, 1.0), base * 10);
        assert_eq!(hog_timeout(base, block, 4, f64::NAN), base);
    }

    /// Observes a peer that sent us `down` bytes we asked for and took `up`.
    fn seen(a: &mut Activity, down: u64, up: u64, stance: Stance, now: Instant) {
        a.useful_down = down;
        a.observe(up, stance, now);
    }
    const QUIET: Stance = Stance {
        am_interested: false,
        peer_interested: false,
        am_choking: true,
    };
    const WANTS: Stance = Stance {
        am_interested: true,
        peer_interested: false,
        am_choking: true,
    };
    const WAITING: Stance = Stance {
        am_interested: false,
        peer_interested: true,
        am_choking: true,
    };
    const SERVED: Stance = Stance {
        am_interested: false,
        peer_interested: true,
        am_choking: false,
    };

    fn limits() -> Limits {
        Limits {
            max_peers: 4,
            max_per_ip: 2,
            max_half_open: 2,
            grace: GRACE,
            idle: Duration::from_secs(120),
            inactivity: Duration::from_secs(300),
            hog: Duration::from_secs(5),
        }
    }

    fn keys(n: usize) -> Vec<PeerKey> {
        let mut picker =
            PiecePicker::new(rustico_piece_picker::PickerConfig::new(16_384, 16_384)).unwrap();
        (0..n).map(|_| picker.add_peer()).collect()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn connected(key: PeerKey, last: u8, t: Instant) -> Occupant {
        Occupant {
            key,
            ip: Some(ip(last)),
            connected: true,
            closing: false,
            outgoing: false,
            stance: Stance::default(),
            activity: Activity::new(t),
        }
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let t0 = Instant::now();
        let k = keys(3);
        let table = [connected(k[0], 2, t0), connected(k[1], 2, t0)];
        assert_eq!(
            admit_incoming(&limits(), &table, ip(2), false, t0),
            Admission::Refuse(Refusal::TooManyFromAddress)
        );
        assert_eq!(
            admit_incoming(&limits(), &table, ip(3), false, t0),
            Admission::Admit
        );
    }

    #[test]
    fn a_full_table_gives_the_longest_silent_peer_s_slot_after_its_grace() {
        let t0 = Instant::now();
        let k = keys(4);
        let mut table: Vec<Occupant> = (0..4).map(|i| connected(k[i], 2 + i as u8, t0)).collect();
        // Peer 1 moved payload at t0 + 5 s.
        seen(
            &mut table[1].activity,
            100,
            0,
            WANTS,
            t0 + Duration::from_secs(5),
        );
        assert_eq!(
            admit_incoming(
                &limits(),
                &table,
                ip(9),
                false,
                t0 + GRACE - Duration::from_secs(1)
            ),
            Admission::Refuse(Refusal::TooManyPeers),
            "nobody is past the grace period yet"
        );
        let later = t0 + GRACE;
        assert_eq!(
            admit_incoming(&limits(), &table, ip(9), true, later),
            Admission::Refuse(Refusal::TooManyPeers),
            "an address that lost a slot a moment ago takes nobody's"
        );
        let Admission::Replace(victim) = admit_incoming(&limits(), &table, ip(9), false, later)
        else {
            panic!("a silent peer should make room");
        };
        assert_ne!(victim, k[1], "the peer that moved data stays");
        // Once only peer 1 is left and it keeps moving data, nobody goes.
        for o in table.iter_mut().filter(|o| o.key != k[1]) {
            seen(&mut o.activity, 7, 0, QUIET, later);
        }
        seen(&mut table[1].activity, 200, 0, WANTS, later);
        assert_eq!(
            admit_incoming(
                &limits(),
                &table,
                ip(9),
                false,
                later + Duration::from_secs(1)
            ),
            Admission::Refuse(Refusal::TooManyPeers)
        );
    }

    #[test]
    fn a_peer_waiting_for_an_unchoke_is_evicted_last() {
        let t0 = Instant::now();
        let k = keys(3);
        let mut table: Vec<Occupant> = (0..3).map(|i| connected(k[i], 2 + i as u8, t0)).collect();
        for (o, stance) in table.iter_mut().zip([WAITING, QUIET, WANTS]) {
            o.stance = stance;
            seen(&mut o.activity, 0, 0, stance, t0);
        }
        let later = t0 + GRACE * 3;
        assert_eq!(eviction_candidate(&limits(), &table, later), Some(k[1]));
        table.remove(1);
        assert_eq!(eviction_candidate(&limits(), &table, later), Some(k[2]));
        table.remove(1);
        assert_eq!(eviction_candidate(&limits(), &table, later), Some(k[0]));
    }

    #[test]
    fn an_unchoked_peer_that_takes_nothing_is_evicted_first() {
        let t0 = Instant::now();
        let k = keys(2);
        let l = limits();
        let mut hog = connected(k[0], 2, t0);
        hog.stance = SERVED;
        let mut quiet = connected(k[1], 3, t0);
        quiet.stance = QUIET;
        // The quiet one has been silent longer.
        seen(&mut quiet.activity, 0, 0, QUIET, t0);
        seen(&mut hog.activity, 0, 0, SERVED, t0 + GRACE);
        let later = t0 + GRACE * 2;
        assert!(hog.activity.hogging(later, l.hog));
        assert_eq!(eviction_candidate(&l, &[quiet, hog], later), Some(k[0]));
        // Served a block: no hog, and the quiet one goes first.
        seen(&mut hog.activity, 0, 16_384, SERVED, later);
        assert!(!hog.activity.hogging(later, l.hog));
        assert_eq!(eviction_candidate(&l, &[quiet, hog], later), Some(k[1]));
    }

    #[test]
    fn a_cooldown_ends_and_stays_bounded() {
        let t0 = Instant::now();
        let mut c = Cooldown::new(2, GRACE);
        c.start(ip(2), t0);
        assert!(c.holds(ip(2), t0 + GRACE - Duration::from_secs(1)));
        assert!(!c.holds(ip(2), t0 + GRACE));
        c.start(ip(3), t0);
        c.start(ip(4), t0);
        assert!(!c.holds(ip(4), t0), "over the cap, not remembered");
        c.start(ip(4), t0 + GRACE);
        assert!(c.holds(ip(4), t0 + GRACE), "expired entries made room");
    }

    #[test]
    fn hanging_dials_leave_slots_for_others() {
        let t0 = Instant::now();
        let k = keys(3);
        let mut dial = connected(k[0], 2, t0);
        dial.connected = false;
        dial.outgoing = true;
        let table = [dial, Occupant { key: k[1], ..dial }];
        assert_eq!(dial_budget(&limits(), &table), 0, "the half-open cap");
        assert_eq!(
            admit_incoming(&limits(), &table, ip(3), false, t0),
            Admission::Admit
        );
    }

    #[test]
    fn keep_alives_do_not_hold_a_slot_forever() {
        let t0 = Instant::now();
        let k = keys(3);
        let l = limits();
        let mut quiet = connected(k[0], 2, t0);
        let mut waiting = connected(k[1], 3, t0);
        let mut trading = connected(k[2], 4, t0);
        let mut t = t0;
        while t < t0 + l.inactivity {
            seen(&mut quiet.activity, 0, 0, QUIET, t);
            seen(&mut waiting.activity, 0, 0, WAITING, t);
            seen(&mut trading.activity, (t - t0).as_secs(), 0, WANTS, t);
            t += Duration::from_secs(1);
        }
        let table = [quiet, waiting, trading];
        assert_eq!(idle_peers(&l, &table, t0 + l.idle), [k[0]]);
        assert_eq!(idle_peers(&l, &table, t0 + l.inactivity), [k[0], k[1]]);
    }

    #[test]
    fn duplicates_keep_the_useful_connection_and_drop_a_stale_squatter() {
        let t0 = Instant::now();
        let k = keys(2);
        let l = limits();
        let squatter = connected(k[0], 2, t0);
        let real = connected(k[1], 2, t0 + GRACE);
        // Interested but moved nothing, past its grace: the newcomer wins.
        assert_eq!(
            duplicate_loser(&l, &squatter, true, &real, false, t0 + GRACE),
            k[0]
        );
        // Young: first come, first served.
        assert_eq!(
            duplicate_loser(
                &l,
                &squatter,
                false,
                &real,
                false,
                t0 + Duration::from_secs(1)
            ),
            k[1]
        );
        // Moved data: it stays, whatever its age.
        let mut established = squatter;
        seen(&mut established.activity, 1, 0, QUIET, t0);
        assert_eq!(
            duplicate_loser(&l, &established, false, &real, false, t0 + GRACE * 100),
            k[1]
        );
        // A simultaneous open follows the ids, on both sides alike.
        let mut out = squatter;
        out.outgoing = true;
        assert_eq!(duplicate_loser(&l, &out, false, &real, true, t0), k[1]);
        assert_eq!(duplicate_loser(&l, &out, false, &real, false, t0), k[0]);
    }
}
