//! A swarm larger than each peer's table settles: peers do not keep
//! taking each other's slots.

use rustico_sim::{Sim, SimConfig, SimError, Tune};

/// 60 leechers with tables of 20. When dials could fill the whole table,
/// a peer evicted for a newcomer had a free slot, dialled a full table
/// and took a slot there in turn, and so on without end: 15,288
/// connections in 245 s. Dials now leave a tenth of the table to peers
/// that dial in, so an eviction ends where it happens: 4,038 in 224 s.
#[test]
fn a_swarm_larger_than_its_tables_settles() -> Result<(), SimError> {
    let mut config = SimConfig::clean(1, 60, 200, 16 * 1024);
    config.upload_rate = 16 * 1024;
    config.tune = Some(Tune::new(|_, swarm| swarm.max_peers = 20));
    let report = Sim::new(config)?.run()?;
    assert!(
        report.connections < 8_000,
        "{} connections in {:?}",
        report.connections,
        report.sim_time
    );
    Ok(())
}
