//! Announce-list tiers (BEP 12): the order in which to try trackers.

use crate::udp::splitmix64;

/// Where a tracker sits in a [`TrackerList`]: tier, then position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerPosition {
    /// Index of the tier (0 is tried first).
    pub tier: usize,
    /// Index within the tier.
    pub index: usize,
}

/// A torrent's trackers in tiers, in the order BEP 12 says to try them.
///
/// Each tier is shuffled once, when the list is built, with an RNG seeded
/// from `seed` (so a test replays exactly). Trackers are tried in order,
/// tier by tier; one that answers moves to the front of its tier, so it is
/// tried first next time.
///
/// ```
/// use rustico_tracker_client::TrackerList;
/// let mut list = TrackerList::new(vec![
///     vec!["udp://a.test:1".to_string(), "udp://b.test:1".to_string()],
///     vec!["http://backup.test/announce".to_string()],
/// ], 42);
/// // Try in order until one works; the winner is promoted.
/// let answer = list.try_in_order(|url| if url.starts_with("http") { Ok(url.len()) } else { Err("down") });
/// let (position, url, value) = answer.map_err(|errors| format!("{errors:?}"))?;
/// assert_eq!((position.tier, url.as_str(), value), (1, "http://backup.test/announce", 27));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerList {
    tiers: Vec<Vec<String>>,
}

impl TrackerList {
    /// Builds the list, dropping empty tiers and shuffling each tier.
    pub fn new(tiers: Vec<Vec<String>>, seed: u64) -> TrackerList {
        let mut state = seed;
        let mut tiers: Vec<Vec<String>> = tiers.into_iter().filter(|t| !t.is_empty()).collect();
        for tier in &mut tiers {
            // Fisher-Yates, drawing from splitmix64.
            for i in (1..tier.len()).rev() {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let j = (splitmix64(state) % (i as u64 + 1)) as usize;
                tier.swap(i, j);
            }
        }
        TrackerList { tiers }
    }

    /// A list with one tracker (a torrent with only `announce`).
    pub fn single(url: String) -> TrackerList {
        TrackerList {
            tiers: vec![vec![url]],
        }
    }

    /// The tiers in their current order.
    pub fn tiers(&self) -> &[Vec<String>] {
        &self.tiers
    }

    /// Whether there is no tracker at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Every tracker in the order to try them.
    pub fn iter(&self) -> impl Iterator<Item = (TrackerPosition, &str)> + '_ {
        self.tiers.iter().enumerate().flat_map(|(tier, urls)| {
            urls.iter()
                .enumerate()
                .map(move |(index, url)| (TrackerPosition { tier, index }, url.as_str()))
        })
    }

    /// The tracker at `position`, if any.
    pub fn get(&self, position: TrackerPosition) -> Option<&str> {
        self.tiers
            .get(position.tier)?
            .get(position.index)
            .map(String::as_str)
    }

    /// The tracker at `position` answered: move it to the front of its tier.
    /// Returns its new position (`None` if `position` is out of range).
    pub fn handle_success(&mut self, position: TrackerPosition) -> Option<TrackerPosition> {
        let tier = self.tiers.get_mut(position.tier)?;
        if position.index >= tier.len() {
            return None;
        }
        let url = tier.remove(position.index);
        tier.insert(0, url);
        Some(TrackerPosition {
            tier: position.tier,
            index: 0,
        })
    }

    /// Tries trackers in order with `attempt` (which does the I/O) until
    /// one succeeds; promotes it and returns its new position, its URL and
    /// the value. When all fail, returns each URL with its error.
    #[allow(clippy::type_complexity)]
    pub fn try_in_order<T, E>(
        &mut self,
        mut attempt: impl FnMut(&str) -> Result<T, E>,
    ) -> Result<(TrackerPosition, String, T), Vec<(String, E)>> {
        let mut errors = Vec::new();
        let mut winner = None;
        for (position, url) in self.iter() {
            match attempt(url) {
                Ok(value) => {
                    winner = Some((position, url.to_owned(), value));
                    break;
                }
                Err(error) => errors.push((url.to_owned(), error)),
            }
        }
        let (position, url, value) = winner.ok_or(errors)?;
        let position = self.handle_success(position).unwrap_or(position);
        Ok((position, url, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shuffle_is_seeded_and_keeps_tiers() {
        let tiers = vec![
            urls(&["a", "b", "c", "d", "e", "f"]),
            vec![],
            urls(&["x", "y"]),
        ];
        let one = TrackerList::new(tiers.clone(), 1);
        assert_eq!(one, TrackerList::new(tiers.clone(), 1));
        assert_eq!(one.tiers().len(), 2, "empty tiers dropped");
        let mut first = one.tiers()[0].clone();
        first.sort();
        assert_eq!(first, urls(&["a", "b", "c", "d", "e", "f"]));
        let orders: std::collections::BTreeSet<Vec<String>> = (0..20)
            .map(|seed| TrackerList::new(tiers.clone(), seed).tiers()[0].clone())
            .collect();
        assert!(orders.len() > 5, "different seeds shuffle differently");
    }

    #[test]
    fn falls_through_tiers_and_promotes_the_winner() {
        let mut list = TrackerList {
            tiers: vec![urls(&["a1", "a2"]), urls(&["b1", "b2", "b3"])],
        };
        let mut tried = Vec::new();
        let result = list.try_in_order(|url| {
            tried.push(url.to_owned());
            if url == "b3" {
                Ok(7)
            } else {
                Err(url.len())
            }
        });
        assert_eq!(tried, urls(&["a1", "a2", "b1", "b2", "b3"]));
        assert_eq!(
            result,
            Ok((TrackerPosition { tier: 1, index: 0 }, "b3".to_string(), 7))
        );
        assert_eq!(
            list.tiers(),
            &[urls(&["a1", "a2"]), urls(&["b3", "b1", "b2"])]
        );

        let result = list.try_in_order(|url| if url == "a2" { Ok(()) } else { Err(()) });
        assert!(result.is_ok());
        assert_eq!(list.tiers()[0], urls(&["a2", "a1"]));

        let all_fail = list.try_in_order(|_| Err::<(), _>("down"));
        assert_eq!(all_fail.unwrap_err().len(), 5);
    }

    #[test]
    fn positions() {
        let mut list = TrackerList::single("u".into());
        assert_eq!(list.get(TrackerPosition { tier: 0, index: 0 }), Some("u"));
        assert_eq!(
            list.handle_success(TrackerPosition { tier: 0, index: 1 }),
            None
        );
        assert_eq!(
            list.handle_success(TrackerPosition { tier: 3, index: 0 }),
            None
        );
        assert!(!list.is_empty());
        assert_eq!(list.iter().count(), 1);
    }
}
