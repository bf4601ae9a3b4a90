//! The simulated network shares each node's bandwidth the way an uplink
//! does: a swarm moves its payload about as fast as its uploads allow.

use rustico_sim::{Sim, SimConfig, SimError};

#[test]
fn a_clean_swarm_moves_its_payload_near_its_upload_capacity() -> Result<(), SimError> {
    // 16 KiB pieces on slow links: every piece saved sends a burst of
    // `have`s. Each once took a share of the uplink as if it carried a
    // block, and a block sent during a burst crawled at a fiftieth of the
    // rate for all of its 16 KiB: this run took 1.6 times the bound then,
    // 1.1 times now.
    let mut config = SimConfig::clean(1, 30, 400, 16 * 1024);
    config.upload_rate = 32 * 1024;
    let report = Sim::new(config)?.run()?;
    let bound = report.downloaded as f64 / report.upload_capacity as f64;
    let took = report.sim_time.as_secs_f64();
    assert!(
        took < 1.3 * bound,
        "took {took:.1} s, {:.2} times what the uploads allow ({bound:.1} s)",
        took / bound
    );
    Ok(())
}
