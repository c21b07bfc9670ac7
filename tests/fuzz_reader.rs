//! Mutation fuzzing of the capture reader and the decoder through the library: valid captures
//! of every link type we read, and the corpus files when present, with bytes flipped, runs
//! zeroed, lengths forged and tails cut. Every mutant must read to an end or an error: no
//! panic, no hang. The count of inputs is printed; set TSUSEN_FUZZ_ITERATIONS for more.

mod common;

use common::pcapgen::*;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tsusen::decode::decode;
use tsusen::source::capfile::CaptureFile;

/// xorshift64*: deterministic, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let src: IpAddr = "203.0.113.7".parse().unwrap();
    let dst: IpAddr = "198.51.100.10".parse().unwrap();
    let src6: IpAddr = "2001:db8:7::7".parse().unwrap();
    let dst6: IpAddr = "2001:db8:100::10".parse().unwrap();
    let ip4 = ip(src, dst, PROTO_TCP, &tcp(4000, 22, SYN, &[]));
    let ip6 = ip(src6, dst6, PROTO_UDP, &udp(4000, 53, b"q"));
    let frames = vec![
        Packet::at(1_700_000_000, eth(&ip4)),
        Packet::at(1_700_000_001, eth(&ip6)),
        Packet::at(
            1_700_000_002,
            eth_vlan(
                &[
                    Vlan {
                        tpid: ETHERTYPE_QINQ,
                        vid: 5,
                    },
                    Vlan {
                        tpid: ETHERTYPE_VLAN,
                        vid: 7,
                    },
                ],
                &ip4,
            ),
        ),
    ];
    let mut out = vec![
        pcap_bytes(LINKTYPE_ETHERNET, &frames),
        pcapng_bytes(LINKTYPE_ETHERNET, &frames),
        pcap_bytes(
            LINKTYPE_LINUX_SLL,
            &[Packet::at(1, sll(0, ETHERTYPE_IPV4, &ip4))],
        ),
        pcap_bytes(
            LINKTYPE_LINUX_SLL2,
            &[Packet::at(1, sll2(0, ETHERTYPE_IPV6, 2, &ip6))],
        ),
        pcap_bytes(
            LINKTYPE_RAW,
            &[Packet::at(1, ip4.clone()), Packet::at(2, ip6)],
        ),
    ];
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/tcpdump-tests");
    if let Ok(dir) = std::fs::read_dir(&corpus) {
        let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        // A spread of the corpus keeps the run short; every file gets its own test elsewhere.
        for f in files.iter().step_by(7) {
            if let Ok(b) = std::fs::read(f) {
                if b.len() <= 64 * 1024 {
                    out.push(b);
                }
            }
        }
    } else {
        eprintln!(
            "note: {} absent: fuzzing built-in captures only",
            corpus.display()
        );
    }
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.next() as u8,
            2 => {
                // Forge a 32-bit length field with an extreme value.
                let v: u32 = [0, 1, 11, 12, 0x7fff_ffff, u32::MAX, 65_536][rng.below(7)];
                let end = (at + 4).min(b.len());
                b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
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
fn mutated_captures_never_panic_or_hang() {
    let iterations: usize = std::env::var("TSUSEN_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seeds = seeds();
    let dir = std::env::temp_dir().join(format!("tsusen-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mutant.pcap");
    let mut rng = Rng(0x7473_7573_656e_2121);
    let (mut frames, mut packets, mut errors) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for i in 0..iterations {
        let seed = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed);
        std::fs::write(&path, &input).unwrap();
        let one = Instant::now();
        // What the frame-at-a-time reader lends, and how it ends.
        let mut lent = Vec::new();
        let mut ended = None;
        match CaptureFile::open(&path) {
            Err(_) => errors += 1,
            Ok(mut cap) => loop {
                match cap.next_frame() {
                    Ok(Some(f)) => {
                        frames += 1;
                        if decode(&f).is_ok() {
                            packets += 1;
                        }
                        lent.push((f.ts, f.ts_us, f.link, f.data.to_vec()));
                    }
                    Ok(None) => {
                        ended = Some(Ok(()));
                        break;
                    }
                    Err(e) => {
                        errors += 1;
                        ended = Some(Err(e.to_string()));
                        break;
                    }
                }
                assert!(
                    one.elapsed() < Duration::from_secs(5),
                    "input {i} takes too long: a hang"
                );
            },
        }
        // The replay's batched reader lends the same frames and ends the same way, whatever
        // the batches' length.
        if let Some(ended) = ended {
            let mut cap = CaptureFile::open(&path).unwrap();
            let mut batched = Vec::new();
            let end = loop {
                match cap.for_frames(1 + (i % 5) as u32, |f| {
                    batched.push((f.ts, f.ts_us, f.link, f.data.to_vec()))
                }) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e.to_string()),
                }
            };
            assert_eq!(batched, lent, "input {i}: the batches lend other frames");
            assert_eq!(end, ended, "input {i}: the batches end otherwise");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!(
        "fuzzed {iterations} mutants of {} seeds in {:.1} s: {frames} frames read, {packets} decoded, {errors} refused",
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        frames > 0 && errors > 0,
        "the mutants should both read and fail"
    );
}

/// A record longer than any frame we read is refused even when its bytes are all there. Here
/// the buffer grows for a record of the largest size; the small records after it run past the
/// buffer's end, so the reader refills it, and the record that claims a byte more than the
/// largest then lies whole in the buffer. The batched reader and the frame-at-a-time one lend
/// the same frames before it and refuse it with the same message.
#[test]
fn an_oversized_record_is_refused_whole_or_not() {
    let max = tsusen::policy::MAX_FRAME_BYTES;
    let small = |s| Packet::at(s, vec![0xab; 60]);
    let mut frames = vec![
        small(1_700_000_000),
        Packet::at(1_700_000_001, vec![0xcd; max]),
    ];
    // 76 bytes a record: more than the 256 KiB the grown buffer has left after the large one.
    frames.extend((0..3500).map(|i| small(1_700_000_002 + i)));
    frames.push(Packet::at(1_700_009_000, vec![0xef; max + 1]));
    frames.push(small(1_700_009_001));
    let dir = std::env::temp_dir().join(format!("tsusen-oversized-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("oversized.pcap");
    std::fs::write(&path, pcap_bytes(LINKTYPE_ETHERNET, &frames)).unwrap();
    let mut cap = CaptureFile::open(&path).unwrap();
    let mut lent = Vec::new();
    let one = loop {
        match cap.next_frame() {
            Ok(Some(f)) => lent.push(f.data.len()),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    let mut cap = CaptureFile::open(&path).unwrap();
    let mut batched = Vec::new();
    let batches = loop {
        match cap.for_frames(100, |f| batched.push(f.data.len())) {
            Ok(0) => break None,
            Ok(_) => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(lent.len(), 3502);
    assert_eq!(lent[1], max);
    assert_eq!(batched, lent);
    let one = one.expect("the oversized record is refused");
    assert!(one.contains("claims"), "{one}");
    assert_eq!(batches.as_deref(), Some(one.as_str()));
}
