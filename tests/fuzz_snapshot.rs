//! Fuzzes the snapshot loader: random bytes, and valid snapshots mutated then given a correct
//! CRC again (so the mutations reach the postcard decoder rather than stopping at the
//! checksum). Every input must decode or be refused with a reason: no panic, no runaway
//! allocation. One million inputs by default (TSUSEN_FUZZ_ITERATIONS to change).

mod common;

use common::rng::Rng;
use tsusen::addr::Addr;
use tsusen::classify::FlowState;
use tsusen::sensor::Stats;
use tsusen::store::snapshot::{crc32, decode, ReplayPosition, State, VERSION};

fn valid(flows: usize) -> Vec<u8> {
    let state = State {
        now: 1_700_000_000,
        next_flush: 1_700_000_900,
        stats: Stats {
            packets: 1000,
            attempts: 10,
            ..Stats::default()
        },
        flows: (0..flows)
            .map(|i| FlowState {
                proto: 17,
                a: Addr::v4([198, 51, 100, i as u8]),
                a_port: 53,
                b: Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i as u8]),
                b_port: 40_000,
                initiator_is_a: i % 2 == 0,
                counted: i % 3 == 0,
                last: 1_699_999_990,
            })
            .collect(),
        replay: Some(ReplayPosition {
            inputs: vec![("a.pcap".into(), 123), ("b.pcapng".into(), 456)],
            frames: 77,
        }),
        detectors: None,
    };
    let dir = std::env::temp_dir().join(format!("tsusen-fuzz-snap-{}-{flows}", std::process::id()));
    let path = dir.join("state.bin");
    tsusen::store::snapshot::save(&path, &state).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(decode(&bytes).unwrap(), state);
    bytes
}

/// Rewrites the length field and CRC so the payload is what gets judged.
fn reseal(b: &mut [u8]) {
    if b.len() < 20 {
        return;
    }
    let len = b.len() - 20;
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32(&b[..16 + len]);
    let n = b.len();
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn snapshot_loader_survives_a_million_hostile_inputs() {
    let iterations: usize = std::env::var("TSUSEN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seeds = [valid(0), valid(3), valid(40)];
    let mut rng = Rng(0x5eed_0000_0000_0042);
    let (mut ok, mut refused) = (0u64, 0u64);
    let t = std::time::Instant::now();
    for i in 0..iterations {
        let mut b = if i % 10 == 0 {
            // Pure noise, sometimes behind a real header.
            let n = rng.below(200);
            let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            if i % 20 == 0 && b.len() > 20 {
                b[..8].copy_from_slice(b"tsusen\0S");
                reseal(&mut b);
            }
            b
        } else {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(5) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b[at] = 0xff,
                    2 => b.truncate(at.max(20)),
                    3 => {
                        let extra: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                        b.splice(at..at, extra);
                    }
                    _ => b[at] = 0x80, // a varint that never ends
                }
            }
            if i % 3 != 0 {
                reseal(&mut b);
            }
            b
        };
        b.truncate(4096);
        match decode(&b) {
            Ok(_) => ok += 1,
            Err(why) => {
                assert!(!why.is_empty());
                refused += 1;
            }
        }
    }
    eprintln!(
        "snapshot fuzz: {iterations} inputs in {:.1} s: {ok} decoded, {refused} refused",
        t.elapsed().as_secs_f64()
    );
    assert!(ok > 0 && refused > 0);
}
