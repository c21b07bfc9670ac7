//! NetFlow v5, v9 and IPFIX input: the decoder on hand-built datagrams (good ones, and every
//! kind of bad one: each skipped and counted), then real exporters: softflowd exporting a
//! capture to `tsusen collect` (compared with `tsusen replay` of the same capture, and with
//! what nfdump's nfcapd records of the same export), and fprobe on a veth.

mod common;

use common::netflowgen::*;
use tsusen::addr::Addr;
use tsusen::source::netflow::{Counters, Decoder, Flow};

const EXPORTER: [u8; 4] = [192, 0, 2, 1];
const THEM: [u8; 4] = [203, 0, 113, 7];
const OURS: [u8; 4] = [198, 51, 100, 10];
const T0: u32 = 1_700_000_000;

fn feed(d: &mut Decoder, datagram: &[u8]) -> Vec<Flow> {
    let mut v = Vec::new();
    d.decode(Addr::v4(EXPORTER), datagram, &mut |f| v.push(f));
    v
}

fn counters_after(datagrams: &[Vec<u8>]) -> (Counters, Vec<Flow>) {
    let mut d = Decoder::new();
    let mut flows = Vec::new();
    for g in datagrams {
        flows.extend(feed(&mut d, g));
    }
    (d.counters, flows)
}

fn rec5(first: u32, last: u32) -> V5Rec {
    V5Rec {
        src: THEM,
        dst: OURS,
        packets: 3,
        octets: 180,
        first,
        last,
        sport: 40_000,
        dport: 22,
        flags: 0x02,
        proto: 6,
    }
}

// ---------------------------------------------------------------------------------------------
// NetFlow v5

#[test]
fn v5_records_and_uptime_arithmetic() {
    let g = v5(
        100_000,
        T0,
        500_000_000,
        &[
            rec5(90_000, 99_000),
            V5Rec {
                proto: 1,
                dport: 8 << 8,
                sport: 0,
                ..rec5(100_000, 100_250)
            },
        ],
    );
    let (c, f) = counters_after(&[g]);
    assert_eq!((c.datagrams, c.records, c.skipped()), (1, 2, 0));
    let t = T0 as i64 * 1000 + 500;
    assert_eq!(f[0].first_ms, t - 10_000);
    assert_eq!(f[0].last_ms, t - 1_000);
    assert_eq!(f[0].src, Addr::v4(THEM));
    assert_eq!((f[0].sport, f[0].dport, f[0].proto), (40_000, 22, 6));
    assert_eq!((f[0].packets, f[0].bytes, f[0].tcp_flags), (3, 180, 0x02));
    assert_eq!(f[0].exporter, Addr::v4(EXPORTER));
    // ICMP: type and code from the destination port, no ports; a last time after the stamp.
    assert_eq!((f[1].icmp, f[1].dport), (Some((8, 0)), 0));
    assert_eq!(f[1].last_ms, t + 250);
}

#[test]
fn v5_uptime_wrap() {
    // The router's uptime passed 2^32 ms between the flow's start and the export.
    let g = v5(1_000, T0, 0, &[rec5(u32::MAX - 999, 500)]);
    let (_, f) = counters_after(&[g]);
    assert_eq!(f[0].first_ms, T0 as i64 * 1000 - 2_000);
    assert_eq!(f[0].last_ms, T0 as i64 * 1000 - 500);
}

#[test]
fn v5_bad_input_is_counted() {
    let good = v5(100_000, T0, 0, &[rec5(1, 2), rec5(1, 2)]);
    let mut cut = good.clone();
    cut.truncate(good.len() - 1);
    let mut zero = good.clone();
    zero[2..4].copy_from_slice(&0u16.to_be_bytes());
    let mut many = good.clone();
    many[2..4].copy_from_slice(&31u16.to_be_bytes());
    let mut lying = good.clone();
    lying[2..4].copy_from_slice(&3u16.to_be_bytes());
    let (c, f) = counters_after(&[cut, zero, many, lying, good[..23].to_vec(), vec![0]]);
    assert!(f.is_empty());
    assert_eq!((c.truncated, c.bad_length), (4, 2), "{c:?}");
    let mut other = good.clone();
    other[1] = 7;
    let (c, _) = counters_after(&[other, vec![0, 10, 0, 1]]);
    assert_eq!((c.bad_version, c.truncated), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// NetFlow v9

fn v9_template_set() -> Vec<u8> {
    set(0, &template(256, V4_FIELDS))
}

fn v9_data(first: u32, last: u32) -> Vec<u8> {
    let mut body = v4_record(THEM, OURS, first, last, 120, 2, 5000, 161, 17, 0);
    body.extend(v4_record(
        OURS,
        THEM,
        first + 5,
        last,
        300,
        2,
        161,
        5000,
        17,
        0,
    ));
    set(256, &body)
}

#[test]
fn v9_template_then_data_and_data_before_template() {
    let early = v9(50_000, T0, 1, &[v9_data(40_000, 45_000)]);
    let both = v9(50_000, T0, 1, &[v9_template_set(), v9_data(40_000, 45_000)]);
    let again = v9(60_000, T0 + 10, 1, &[v9_data(59_000, 59_500)]);
    // Another source id of the same exporter has its own templates.
    let other_source = v9(60_000, T0 + 10, 2, &[v9_data(59_000, 59_500)]);
    let (c, f) = counters_after(&[early, both, again, other_source]);
    assert_eq!((c.no_template, c.templates, c.records), (2, 1, 4), "{c:?}");
    assert_eq!(f[0].first_ms, T0 as i64 * 1000 - 10_000);
    assert_eq!(f[0].last_ms, T0 as i64 * 1000 - 5_000);
    assert_eq!((f[0].proto, f[0].dport, f[1].sport), (17, 161, 161));
    assert_eq!(f[2].first_ms, (T0 as i64 + 10) * 1000 - 1_000);
}

#[test]
fn v9_ipv6_options_padding_and_wrap() {
    let fields6 = [
        (27, 16),
        (28, 16),
        (22, 4),
        (21, 4),
        (2, 4),
        (1, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
    ];
    let mut rec = Vec::new();
    rec.extend_from_slice(
        &"2001:db8:7::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    rec.extend_from_slice(
        &"2001:db8:100::10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    rec.extend_from_slice(&(u32::MAX - 99).to_be_bytes()); // before the uptime wrapped
    rec.extend_from_slice(&100u32.to_be_bytes());
    rec.extend_from_slice(&1u32.to_be_bytes());
    rec.extend_from_slice(&60u32.to_be_bytes());
    rec.extend_from_slice(&[0x9c, 0x40, 0, 22, 6, 0x02]);
    let opts = v9_options_template(300, &[(1, 4)], &[(34, 4), (35, 1)]);
    let g = v9(
        1_000,
        T0,
        0,
        &[
            set(0, &template(257, &fields6)),
            set(1, &opts),
            set(300, &[0, 0, 0, 1, 0, 0, 0, 10, 2]),
            set(257, &rec),
            set(7, &[1, 2, 3, 4]),
        ],
    );
    let (c, f) = counters_after(&[g]);
    assert_eq!(
        (c.records, c.options_records, c.unknown_sets),
        (1, 1, 1),
        "{c:?}"
    );
    assert_eq!(f[0].src.to_string(), "2001:db8:7::7");
    assert_eq!(f[0].first_ms, T0 as i64 * 1000 - 1_100);
    assert_eq!(f[0].last_ms, T0 as i64 * 1000 - 900);
    assert_eq!(f[0].tcp_flags, 0x02);
}

#[test]
fn v9_lying_lengths_and_bad_templates() {
    let t = v9_template_set();
    let mut short_set = v9(1, T0, 0, &[t.clone()]);
    short_set[22..24].copy_from_slice(&2u16.to_be_bytes()); // set length below its header
    let mut long_set = v9(1, T0, 0, &[t.clone()]);
    long_set[22..24].copy_from_slice(&4000u16.to_be_bytes());
    let low_id = v9(1, T0, 0, &[set(0, &template(255, V4_FIELDS))]);
    let no_fields = v9(1, T0, 0, &[set(0, &template(260, &[]))]);
    let zero_len = v9(1, T0, 0, &[set(0, &template(261, &[(8, 0)]))]);
    let variable = v9(1, T0, 0, &[set(0, &template(262, &[(8, 0xffff)]))]);
    let mut too_many = template(263, &[]);
    too_many[2..4].copy_from_slice(&1000u16.to_be_bytes());
    too_many.extend(std::iter::repeat_n(0u8, 4 * 200));
    let too_many = v9(1, T0, 0, &[set(0, &too_many)]);
    let mut cut_template = template(264, V4_FIELDS);
    cut_template.truncate(10);
    let cut_template = v9(1, T0, 0, &[set(0, &cut_template)]);
    let (c, f) = counters_after(&[
        short_set,
        long_set,
        low_id,
        no_fields,
        zero_len,
        variable,
        too_many,
        cut_template,
        vec![0, 9, 0, 0, 0],
    ]);
    assert!(f.is_empty());
    assert_eq!((c.bad_length, c.truncated, c.templates), (1, 2, 0), "{c:?}");
    assert_eq!(c.bad_template, 6, "{c:?}");
}

#[test]
fn v9_template_flood_is_bounded_per_source_and_overall() {
    let mut d = Decoder::new();
    // One source announcing 300 template ids: 256 kept, the rest refused.
    for id in 0..300u16 {
        feed(
            &mut d,
            &v9(1, T0, 0, &[set(0, &template(256 + id, V4_FIELDS))]),
        );
    }
    assert_eq!((d.counters.templates, d.counters.template_flood), (256, 44));
    // The other exporters still get theirs; the cache never passes its size.
    for e in 0..40u8 {
        for id in 0..150u16 {
            let g = v9(1, T0, 0, &[set(0, &template(256 + id, V4_FIELDS))]);
            d.decode(Addr::v4([10, 0, 0, e]), &g, &mut |_| {});
        }
    }
    assert_eq!(d.templates.len(), tsusen::policy::NETFLOW_TEMPLATES);
    assert!(d.counters.template_evictions >= 256 + 40 * 150 - 4096);
    // The latest exporter's templates work.
    let g = v9(
        50_000,
        T0,
        0,
        &[set(300, &v4_record(THEM, OURS, 1, 2, 40, 1, 1, 2, 6, 0x02))],
    );
    let mut n = 0;
    d.decode(Addr::v4([10, 0, 0, 39]), &g, &mut |_| n += 1);
    assert_eq!(n, 1);
}

// ---------------------------------------------------------------------------------------------
// IPFIX

const IPFIX_MS_FIELDS: &[(u16, u16)] = &[
    (8, 4),
    (12, 4),
    (152, 8),
    (153, 8),
    (2, 8),
    (1, 8),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 2),
];

fn ipfix_ms_record(first: u64, last: u64, proto: u8, flags: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&THEM);
    b.extend_from_slice(&OURS);
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b.extend_from_slice(&4u64.to_be_bytes());
    b.extend_from_slice(&160u64.to_be_bytes());
    b.extend_from_slice(&[0x9c, 0x40, 0, 80, proto]);
    b.extend_from_slice(&flags.to_be_bytes());
    b
}

#[test]
fn ipfix_absolute_times_and_templates_per_domain() {
    let t = set(2, &template(400, IPFIX_MS_FIELDS));
    let data = set(
        400,
        &ipfix_ms_record(1_700_000_000_123, 1_700_000_004_999, 6, 0x12),
    );
    let g = ipfix(T0 + 5, 9, &[t, data.clone()]);
    let other_domain = ipfix(T0 + 5, 10, &[data]);
    let (c, f) = counters_after(&[g, other_domain]);
    assert_eq!((c.records, c.no_template), (1, 1), "{c:?}");
    assert_eq!(
        (f[0].first_ms, f[0].last_ms),
        (1_700_000_000_123, 1_700_000_004_999)
    );
    assert_eq!((f[0].packets, f[0].bytes, f[0].tcp_flags), (4, 160, 0x12));

    // Seconds, and NTP microseconds (RFC 7011 dateTimeMicroseconds).
    let ntp = |unix_ms: u64| -> u64 {
        let secs = unix_ms / 1000 + 2_208_988_800;
        let frac = ((unix_ms % 1000) << 32) / 1000 + 1;
        secs << 32 | frac
    };
    let fields = [(8, 4), (12, 4), (150, 4), (154, 8), (155, 8), (4, 1)];
    let mut rec = Vec::new();
    rec.extend_from_slice(&THEM);
    rec.extend_from_slice(&OURS);
    rec.extend_from_slice(&T0.to_be_bytes());
    rec.extend_from_slice(&ntp(1_700_000_001_250).to_be_bytes());
    rec.extend_from_slice(&ntp(1_700_000_002_500).to_be_bytes());
    rec.push(17);
    let g = ipfix(T0, 1, &[set(2, &template(401, &fields)), set(401, &rec)]);
    let (_, f) = counters_after(&[g]);
    // The later field of the two starts wins (microseconds here).
    assert_eq!(
        (f[0].first_ms, f[0].last_ms),
        (1_700_000_001_250, 1_700_000_002_500)
    );
}

#[test]
fn ipfix_uptime_times_need_the_init_time() {
    // softflowd's layout: sysUpTime start/end, and systemInitTimeMilliseconds in an options
    // record.
    let t = set(2, &template(1024, V4_FIELDS));
    let opt_t = set(3, &ipfix_options_template(256, &[(143, 4)], &[(160, 8)]));
    let init: u64 = 1_699_999_000_000;
    let mut opt = vec![0, 0, 0, 1];
    opt.extend_from_slice(&init.to_be_bytes());
    let data = set(
        1024,
        &v4_record(THEM, OURS, 400_000, 401_000, 40, 1, 1, 22, 6, 2),
    );
    // Data before the init time is known: unusable; after: absolute.
    let (c, f) = counters_after(&[
        ipfix(T0, 0, &[t.clone(), data.clone()]),
        ipfix(T0, 0, &[opt_t, set(256, &opt), data.clone()]),
    ]);
    assert_eq!(
        (c.unusable, c.records, c.options_records),
        (1, 1, 1),
        "{c:?}"
    );
    assert_eq!(f[0].first_ms, init as i64 + 400_000);
    assert_eq!(f[0].last_ms, init as i64 + 401_000);
}

#[test]
fn ipfix_variable_length_enterprise_fields_and_withdrawal() {
    // interfaceName (82) of variable length, and an enterprise field of 4 bytes.
    let mut tb = template(500, &[(8, 4), (12, 4), (82, 0xffff), (150, 4), (4, 1)]);
    tb[2..4].copy_from_slice(&6u16.to_be_bytes());
    tb.extend_from_slice(&(0x8000u16 | 1).to_be_bytes());
    tb.extend_from_slice(&4u16.to_be_bytes());
    tb.extend_from_slice(&29_305u32.to_be_bytes());
    let rec = |name: &[u8]| {
        let mut b = Vec::new();
        b.extend_from_slice(&THEM);
        b.extend_from_slice(&OURS);
        if name.len() < 255 {
            b.push(name.len() as u8);
        } else {
            b.push(255);
            b.extend_from_slice(&(name.len() as u16).to_be_bytes());
        }
        b.extend_from_slice(name);
        b.extend_from_slice(&T0.to_be_bytes());
        b.push(47);
        b.extend_from_slice(&[1, 2, 3, 4]);
        b
    };
    let mut two = rec(b"eth0");
    two.extend(rec(&[b'x'; 300]));
    let mut lying = rec(b"eth0");
    lying[8] = 200; // the name's length runs past the set
    let g = ipfix(T0, 0, &[set(2, &tb), set(500, &two), set(500, &lying)]);
    let withdraw = ipfix(T0, 0, &[set(2, &[0x01, 0xf4, 0, 0])]);
    let after = ipfix(T0, 0, &[set(500, &rec(b"x"))]);
    let (c, f) = counters_after(&[g, withdraw, after]);
    assert_eq!((c.records, c.truncated, c.no_template), (2, 1, 1), "{c:?}");
    assert_eq!((f[1].proto, f[1].first_ms), (47, T0 as i64 * 1000));
}

#[test]
fn ipfix_lying_message_lengths_and_bad_templates() {
    let t = set(2, &template(400, IPFIX_MS_FIELDS));
    let good = ipfix(T0, 0, &[t.clone()]);
    let mut long = good.clone();
    long[2..4].copy_from_slice(&2000u16.to_be_bytes());
    let mut short = good.clone();
    short[2..4].copy_from_slice(&8u16.to_be_bytes());
    let mut set_short = good.clone();
    set_short[18..20].copy_from_slice(&1u16.to_be_bytes());
    let bad_scope = ipfix(
        T0,
        0,
        &[set(3, &ipfix_options_template(256, &[], &[(160, 8)]))],
    );
    let mut enterprise_cut = template(401, &[(8, 4)]);
    enterprise_cut[4] |= 0x80;
    let enterprise_cut = ipfix(T0, 0, &[set(2, &enterprise_cut[..8])]);
    let reserved = ipfix(T0, 0, &[set(4, &[0; 8])]);
    let (c, f) = counters_after(&[
        long,
        short,
        set_short,
        bad_scope,
        enterprise_cut,
        reserved,
        good[..15].to_vec(),
    ]);
    assert!(f.is_empty());
    assert_eq!((c.truncated, c.bad_length), (2, 2), "{c:?}");
    assert_eq!(
        (c.bad_template, c.unknown_sets, c.templates),
        (2, 1, 0),
        "{c:?}"
    );
}
