//! Criterion benchmarks of each stage of a packet's path, in nanoseconds per packet (or row),
//! on the frames of the mixed capture (`examples/gencap.rs`):
//!
//!   cargo bench --bench stages [-- FILTER]
//!
//! Where `benches/instructions.sh` counts instructions (repeatable), these time the same stages
//! with the cache in play: a table far larger than the cache costs misses that no instruction
//! count shows. Stages:
//! - `decode`: `decode_into` of each frame (link, IP and transport headers);
//! - `classify`: the verdict on each decoded packet (rules, direction, flow table);
//! - `table/hot`, `table/cold`: counting a key in the attempt table, with 1,024 distinct keys
//!   (in cache) and with 200,000 spread over a 262,144-row table (mostly misses);
//! - `scan`, `fingerprint`: the scanlogd detector and the tool fingerprints on inbound TCP;
//! - `sensor`: `Sensor::frame` on each frame, lookahead included (all of the above but the
//!   detectors, no output);
//! - `output/sort`: the in-place sort of a flush (148,751 rows, the mixed capture's);
//! - `output/csv_row`: formatting one row of a day file.

#[path = "../examples/gencap.rs"]
#[allow(dead_code)]
mod gencap;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;
use tsusen::addr::{Addr, Cidr, NetSet};
use tsusen::classify::{could_count, Classifier, Rules};
use tsusen::decode::{decode_into, Packet};
use tsusen::detect::fingerprint::{FingerprintParams, Fingerprinter};
use tsusen::detect::scan::{ScanDetector, ScanParams};
use tsusen::source::capfile::CaptureFile;
use tsusen::source::{Frame, Link};
use tsusen::tables::{AttemptTable, Key, Row, RowOrder};

/// Frames taken from the mixed capture.
const FRAMES: u64 = 50_000;

/// An owned frame: the capture's bytes and what the reader said of them.
struct Owned {
    ts: i64,
    ts_us: u32,
    link: Link,
    data: Vec<u8>,
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        Frame {
            ts: self.ts,
            ts_us: self.ts_us,
            link: self.link,
            data: &self.data,
            outgoing: false,
        }
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tsusen-stages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn frames() -> Vec<Owned> {
    let path = scratch().join("mixed.pcap");
    gencap::generate(&path, FRAMES, 1514).expect("generating the capture");
    let mut cap = CaptureFile::open(&path).expect("opening the capture");
    let mut out = Vec::new();
    while let Some(f) = cap.next_frame().expect("reading the capture") {
        out.push(Owned {
            ts: f.ts,
            ts_us: f.ts_us,
            link: f.link,
            data: f.data.to_vec(),
        });
    }
    out
}

fn rules() -> Rules {
    let local = |s: &str| s.parse::<Cidr>().expect("network");
    Rules {
        local: NetSet::new(vec![local("198.51.100.0/24"), local("2001:db8:100::/48")]),
        ignore_addresses: NetSet::new(vec![]),
        ignore_ports: Default::default(),
        flow_timeout: tsusen::policy::FLOW_TIMEOUT as i64,
    }
}

/// Distinct keys: port, destination and source vary with `i`.
fn key(i: u32) -> Key {
    let b = i.to_be_bytes();
    Key {
        proto: tsusen::proto::TCP,
        port: Some(1 + (i % 1000) as u16),
        dst: Addr::v4([198, 51, 100, b[3]]),
        src: Addr::v4([203, b[1], b[2], b[3]]),
    }
}

fn stages(c: &mut Criterion) {
    let frames = frames();
    let n = frames.len() as u64;
    let decoded: Vec<(i64, u32, Packet)> = frames
        .iter()
        .filter_map(|o| {
            let mut p = Packet::default();
            decode_into(&o.frame(), &mut p).ok()?;
            Some((o.ts, o.ts_us, p))
        })
        .collect();
    let ts0 = frames[0].ts;

    let mut g = c.benchmark_group("per packet");
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode", |b| {
        let mut p = Packet::default();
        b.iter(|| {
            for o in &frames {
                let _ = black_box(decode_into(&o.frame(), &mut p));
            }
        })
    });
    g.throughput(Throughput::Elements(decoded.len() as u64));
    g.bench_function("classify", |b| {
        let mut cl = Classifier::new(rules(), tsusen::policy::FLOW_CAPACITY);
        b.iter(|| {
            for (ts, _, p) in &decoded {
                black_box(cl.classify(p, *ts, None));
            }
        })
    });
    let tcp: Vec<&(i64, u32, Packet)> = decoded
        .iter()
        .filter(|(_, _, p)| p.proto == tsusen::proto::TCP && could_count(p))
        .collect();
    g.throughput(Throughput::Elements(tcp.len() as u64));
    g.bench_function("scan", |b| {
        let mut s = ScanDetector::new(ScanParams::default());
        b.iter(|| {
            for (ts, us, p) in &tcp {
                black_box(s.observe(p, ts * 1_000_000 + *us as i64));
            }
        })
    });
    g.bench_function("fingerprint", |b| {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        b.iter(|| {
            for (ts, _, p) in &tcp {
                black_box(f.observe(p, Some(&p.tcp_opts), *ts));
            }
        })
    });
    g.throughput(Throughput::Elements(n));
    g.bench_function("sensor", |b| {
        let dir = scratch().join("log");
        std::fs::create_dir_all(&dir).expect("log directory");
        let settings = tsusen::config::Settings {
            log_directory: dir,
            ..Default::default()
        };
        let mut sensor = tsusen::sensor::Sensor::new(&settings, rules().local).expect("sensor");
        b.iter(|| {
            for o in &frames {
                sensor.frame(&o.frame());
            }
            sensor.drain();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("table");
    for (name, distinct) in [("hot", 1_024u32), ("cold", 200_000)] {
        let keys: Vec<Key> = (0..distinct)
            .map(|i| key(i.wrapping_mul(2_654_435_761) % distinct))
            .collect();
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function(name, |b| {
            let mut t = AttemptTable::new(tsusen::policy::TABLE_CAPACITY);
            b.iter(|| {
                for k in &keys {
                    let at = t.locate(k, ts0);
                    t.add(k, ts0, at).expect("room for every key");
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("output");
    let rows: Vec<Row> = (0..148_751u32)
        .map(|i| Row {
            key: key(i.wrapping_mul(2_654_435_761)),
            first: ts0 + (i % 86_400) as i64,
            last: ts0 + (i % 86_400) as i64 + 5,
            count: 1 + (i % 7) as u64,
        })
        .collect();
    let order = RowOrder::new();
    // As a flush of one of the replay benchmark's two days sorts: half the rows, with the
    // attempt index of the default capacity lent as room.
    let day = &rows[..rows.len() / 2];
    g.throughput(Throughput::Elements(day.len() as u64));
    let mut room = vec![0u64; 2 * tsusen::policy::TABLE_CAPACITY];
    g.bench_function("sort", |b| {
        b.iter_batched_ref(
            || day.to_vec(),
            |r| order.sort_with(r, &mut room),
            BatchSize::LargeInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("csv_row", |b| {
        let mut w = tsusen::store::RowWriter::new(std::io::sink());
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % rows.len();
            w.row(&rows[i]).expect("writing to memory");
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(scratch());
}

criterion_group!(benches, stages);
criterion_main!(benches);
