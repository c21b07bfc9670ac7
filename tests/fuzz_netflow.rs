//! Mutation fuzzing of the NetFlow/IPFIX decoder: valid v5, v9 and IPFIX datagrams (templates
//! and data, options, variable-length fields) with bits flipped, bytes replaced, length fields
//! forged, tails cut and runs repeated, plus random bytes behind each version number. Every
//! input must decode to flows or counted skips: no panic, no hang, and the template cache
//! stays within its bound. Set TSUSEN_NETFLOW_FUZZ_ITERATIONS for more (default: a million, about a second).

mod common;

use common::netflowgen::*;
use common::rng::Rng;
use std::time::Instant;
use tsusen::addr::Addr;
use tsusen::source::netflow::Decoder;

const THEM: [u8; 4] = [203, 0, 113, 7];
const OURS: [u8; 4] = [198, 51, 100, 10];

fn seeds() -> Vec<Vec<u8>> {
    let rec = |first| V5Rec {
        src: THEM,
        dst: OURS,
        packets: 3,
        octets: 180,
        first,
        last: first + 10,
        sport: 40_000,
        dport: 22,
        flags: 2,
        proto: 6,
    };
    let data = set(256, &v4_record(THEM, OURS, 10, 20, 40, 1, 1, 22, 6, 2));
    let mut var_t = template(500, &[(8, 4), (12, 4), (82, 0xffff), (150, 4), (4, 1)]);
    var_t[2..4].copy_from_slice(&6u16.to_be_bytes());
    var_t.extend_from_slice(&[0x80, 1, 0, 4, 0, 0, 0x72, 0x79]);
    let mut var_rec = THEM.to_vec();
    var_rec.extend_from_slice(&OURS);
    var_rec.extend_from_slice(&[
        4, b'e', b't', b'h', b'0', 0x65, 0x53, 0xf1, 0, 17, 9, 9, 9, 9,
    ]);
    // A biflow template (RFC 5103 reverse packet count and flags) and a record.
    let mut bi_t = template(600, &[(8, 4), (12, 4), (150, 4), (2, 4), (4, 1)]);
    bi_t[2..4].copy_from_slice(&7u16.to_be_bytes());
    bi_t.extend_from_slice(&[
        0x80, 2, 0, 4, 0, 0, 0x72, 0x79, 0x80, 6, 0, 1, 0, 0, 0x72, 0x79,
    ]);
    let mut bi_rec = OURS.to_vec();
    bi_rec.extend_from_slice(&THEM);
    bi_rec.extend_from_slice(&[0x65, 0x53, 0xf1, 0, 0, 0, 0, 5, 6, 0, 0, 0, 4, 0x12]);
    vec![
        ipfix(1_700_000_000, 3, &[set(2, &bi_t), set(600, &bi_rec)]),
        v5(100_000, 1_700_000_000, 0, &[rec(90_000), rec(95_000)]),
        v9(
            50_000,
            1_700_000_000,
            1,
            &[
                set(0, &template(256, V4_FIELDS)),
                set(1, &v9_options_template(300, &[(1, 4)], &[(34, 4)])),
                set(300, &[0, 0, 0, 1, 0, 0, 0, 10]),
                data.clone(),
            ],
        ),
        v9(50_000, 1_700_000_000, 1, std::slice::from_ref(&data)),
        ipfix(
            1_700_000_000,
            0,
            &[
                set(2, &template(256, V4_FIELDS)),
                set(3, &ipfix_options_template(257, &[(143, 4)], &[(160, 8)])),
                set(257, &[0, 0, 0, 1, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x68, 0]),
                data,
                set(2, &var_t),
                set(500, &var_rec),
            ],
        ),
    ]
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    if rng.below(10) == 0 {
        // Random bytes behind a real version number.
        let n = rng.below(1500);
        b.truncate(2);
        b.extend((0..n).map(|_| rng.next() as u8));
        return b;
    }
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => {
                // Forge a 16-bit length, count or id with an extreme value.
                let v: u16 = [0, 1, 3, 4, 255, 256, 0x7fff, 0xffff][rng.below(8)];
                let end = (at + 2).min(b.len());
                b[at..end].copy_from_slice(&v.to_be_bytes()[..end - at]);
            }
            3 => b.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b[at..end].fill(0);
            }
            _ => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
        }
    }
    b
}

#[test]
fn mutated_datagrams_never_panic() {
    let iterations: usize = std::env::var("TSUSEN_NETFLOW_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seeds = seeds();
    // The seeds themselves decode as meant: a biflow's two directions, two v5 records, a v9
    // record, v9 data with no template yet, an IPFIX record of each template.
    let whole: Vec<usize> = seeds
        .iter()
        .map(|g| {
            let mut n = 0;
            Decoder::new().decode(Addr::v4([192, 0, 2, 9]), g, &mut |_| n += 1);
            n
        })
        .collect();
    assert_eq!(whole, [2, 2, 1, 0, 2]);
    let mut rng = Rng(0x6e66_6c6f_7721_2121);
    let mut d = Decoder::new();
    let started = Instant::now();
    let mut flows = 0u64;
    for i in 0..iterations {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        // A few exporters, so templates of one are read with the data of another too.
        let exporter = Addr::v4([192, 0, 2, rng.below(4) as u8]);
        d.decode(exporter, &input, &mut |f| {
            flows += 1;
            assert!(f.last_ms >= f.first_ms);
        });
        assert!(d.templates.len() <= tsusen::policy::NETFLOW_TEMPLATES);
    }
    let c = d.counters;
    eprintln!(
        "fuzzed {iterations} datagrams in {:.1} s: {flows} flows, {} skipped ({c:?})",
        started.elapsed().as_secs_f64(),
        c.skipped()
    );
    assert_eq!(c.datagrams, iterations as u64);
    assert!(flows > 0 && c.skipped() > 0);
}
