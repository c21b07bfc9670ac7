//! Scanner fingerprints: label a source with the tool its probes betray, from traits the tools'
//! own sources publish. A label needs the trait on several distinct probes (different
//! destination or port) wherever one packet could show it by chance; a source may stay
//! unlabelled, and may carry several labels.
//!
//! | tool | trait | where it comes from | probes |
//! |---|---|---|---|
//! | zmap | IPv4 identification 54321 | zmap `src/probe_modules/packet.c`, `make_ip_header()`: `iph->ip_id = htons(54321)` | 2 (1 in 65536 by chance) |
//! | masscan | IPv4 identification = (destination address ^ destination port ^ sequence number) mod 2^16 on a SYN | masscan `src/templ-pkt.c`, `template_set_target_ipv4()` (and `tcp_create_packet()`): `ip_id = ip_them ^ port_them ^ seqno`, of which the low 16 bits are written | 2 (1 in 65536) |
//! | mirai | TCP sequence number = destination IPv4 address on a SYN | Mirai `mirai/bot/scanner.c`: `tcph->seq = iph->daddr` | 1 (1 in 2^32) |
//! | nmap | SYN scan probe: window 1024 (2048, 3072 or 4096 from older versions) and one TCP option, MSS (data offset 6) | nmap `nmap.h`: `TCP_SYN_PROBE_OPTIONS "\x02\x04\x05\xb4"`, attached by `scan_engine_raw.cc` to every SYN probe, which passes window 0; `tcpip.cc`/`libnetutil/netutil.cc` `build_tcp()` then writes `htons(1024) /* Who cares */` (older releases: `1024 * (myttl % 4 + 1)`); also Emerging Threats' sid 2009582 "ET SCAN NMAP -sS window 1024" | 3 |
//! | hping3 | window 512 and no TCP options, no ACK | hping3 `hping2.h`: `#define DEFAULT_SRCWINSIZE 512` (its manual page says 64; the packets say 512) | 3 |
//!
//! Checked on the tools themselves (Debian 12: nmap 7.93, masscan 1.3.2, zmap 2.1.1, hping3
//! 3.a2) in `tests/detect_scanlogd.rs`. nmap's and hping3's traits need the TCP option layout
//! ([`TcpOptSig`]): the header length and its first option bytes.
//! nmap's connect scan (`-sT`) goes through the operating system's stack and is not
//! recognisable; neither is any tool run with its traits overridden.
//!
//! State: only sources that showed some trait are followed, about 100 bytes each with the
//! index, at most `capacity` of them (the least recently seen forgotten); a source silent for
//! `idle_secs` starts over, and may be labelled again.

use crate::addr::Addr;
use crate::decode::{flags, Packet};
use crate::detect::event::{Event, EventKind, Value};
use crate::detect::lru::Lru;
use crate::detect::tcpopts::TcpOptSig;
use crate::proto;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tool {
    Zmap,
    Masscan,
    Mirai,
    Nmap,
    Hping3,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Zmap,
        Tool::Masscan,
        Tool::Mirai,
        Tool::Nmap,
        Tool::Hping3,
    ];

    /// Lower-case name, as in a `tool` event.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Zmap => "zmap",
            Tool::Masscan => "masscan",
            Tool::Mirai => "mirai",
            Tool::Nmap => "nmap",
            Tool::Hping3 => "hping3",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ZMap's fixed IPv4 identification.
pub const ZMAP_IP_ID: u16 = 54321;
/// hping3's default TCP window (`DEFAULT_SRCWINSIZE`).
pub const HPING3_WINDOW: u16 = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintParams {
    /// Sources followed at once; the least recently seen is forgotten.
    pub capacity: usize,
    /// Seconds of silence after which a source's evidence (and label) is forgotten.
    pub idle_secs: i64,
    /// Distinct probes with the trait needed for a label, by tool (index: [`Tool::ALL`]).
    pub probes: [u8; 5],
}

impl Default for FingerprintParams {
    fn default() -> Self {
        FingerprintParams {
            capacity: 4096,
            idle_secs: 3600,
            probes: [2, 2, 1, 3, 3],
        }
    }
}

impl FingerprintParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.capacity == 0 || self.capacity > 1 << 22 {
            return Err("capacity must be from 1 to 4194304".into());
        }
        if self.idle_secs <= 0 {
            return Err("idle time must be positive".into());
        }
        if self.probes.contains(&0) {
            return Err("every tool needs at least one probe".into());
        }
        Ok(())
    }
}

/// A source recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub src: Addr,
    pub tool: Tool,
    /// Distinct probes that showed the trait.
    pub probes: u8,
    /// Unix seconds of the probe that completed the evidence.
    pub at: i64,
    /// Of that probe.
    pub dst: Addr,
    pub dport: u16,
}

impl Label {
    /// The `tool` event: details `tool` (lower-case name) and `probes`.
    pub fn to_event(&self, observer: &str) -> Event {
        Event {
            kind: EventKind::Tool,
            observer: observer.into(),
            offender: Some(self.src),
            timestamp: self.at,
            details: vec![
                ("tool", Value::Str(self.tool.name().into())),
                ("probes", Value::Int(self.probes as i64)),
                ("dst", Value::Str(self.dst.to_string())),
                ("dst_port", Value::Int(self.dport as i64)),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FingerprintStats {
    pub labels: u64,
    /// Sources forgotten to make room.
    pub evictions: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Evidence {
    last_seen: i64,
    counts: [u8; 5],
    /// A digest of the last probe counted per tool, so a retransmission is not a second probe.
    last_probe: [u32; 5],
    /// Bit per tool already labelled.
    labelled: u8,
}

const EMPTY: Evidence = Evidence {
    last_seen: i64::MIN,
    counts: [0; 5],
    last_probe: [u32::MAX; 5],
    labelled: 0,
};

/// The fingerprinter's evidence as a snapshot keeps it, oldest source first.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct FingerprintState {
    sources: Vec<(Addr, Evidence)>,
    labels: u64,
}

impl Fingerprinter {
    pub fn export(&self) -> FingerprintState {
        FingerprintState {
            sources: self.sources.oldest_first().map(|(a, e)| (*a, *e)).collect(),
            labels: self.labels,
        }
    }

    /// What `export` returns, serialised as that `FingerprintState` would be but never held
    /// (a full fingerprinter exported is a copy of its sources at every snapshot).
    pub fn view(&self) -> FingerprintView<'_> {
        FingerprintView(self)
    }

    /// Loads a snapshot's evidence into a fresh fingerprinter.
    pub fn import(&mut self, state: &FingerprintState) {
        for (a, e) in &state.sources {
            let (v, _) = self.sources.touch(*a, || *e, |v| *v = *e);
            *v = *e;
        }
        self.labels = state.labels;
    }
}

/// See `Fingerprinter::view`.
pub struct FingerprintView<'a>(&'a Fingerprinter);

impl serde::Serialize for FingerprintView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Sources<'a>(&'a Lru<Addr, Evidence>);
        impl serde::Serialize for Sources<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for (a, e) in self.0.oldest_first() {
                    seq.serialize_element(&(*a, *e))?;
                }
                seq.end()
            }
        }
        // As `FingerprintState`'s derived form: its fields in order.
        let mut st = s.serialize_struct("FingerprintState", 2)?;
        st.serialize_field("sources", &Sources(&self.0.sources))?;
        st.serialize_field("labels", &self.0.labels)?;
        st.end()
    }
}

pub struct Fingerprinter {
    params: FingerprintParams,
    sources: Lru<Addr, Evidence>,
    labels: u64,
}

impl Fingerprinter {
    /// Panics if `params` do not validate; check them with [`FingerprintParams::validate`].
    pub fn new(params: FingerprintParams) -> Fingerprinter {
        if let Err(e) = params.validate() {
            panic!("fingerprint settings: {e}");
        }
        Fingerprinter {
            sources: Lru::new(params.capacity),
            params,
            labels: 0,
        }
    }

    pub fn stats(&self) -> FingerprintStats {
        FingerprintStats {
            labels: self.labels,
            evictions: self.sources.evictions(),
        }
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// The tools a source is labelled with now.
    pub fn labels_of(&self, src: &Addr) -> Vec<Tool> {
        match self.sources.peek(src) {
            Some(e) => Tool::ALL
                .into_iter()
                .filter(|t| e.labelled & (1 << t.index()) != 0)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every source labelled now, with its tools (at most `capacity` sources).
    pub fn labelled(&self) -> impl Iterator<Item = (Addr, Vec<Tool>)> + '_ {
        self.sources
            .oldest_first()
            .filter(|(_, e)| e.labelled != 0)
            .map(|(a, e)| {
                let tools = Tool::ALL
                    .into_iter()
                    .filter(|t| e.labelled & (1 << t.index()) != 0)
                    .collect();
                (*a, tools)
            })
    }

    /// Which tools' traits this packet shows, as a bit per tool (no state involved).
    pub fn traits(p: &Packet, opts: Option<&TcpOptSig>) -> u8 {
        let v4 = !p.src.is_v6();
        let tcp = p.proto == proto::TCP;
        let probe = tcp && p.tcp_flags & flags::ACK == 0;
        let syn = probe && p.tcp_flags & flags::SYN != 0;
        let mut t = 0u8;
        if v4 && p.ip_id == ZMAP_IP_ID && (probe || !tcp) {
            t |= 1 << Tool::Zmap.index();
        }
        if v4 && syn {
            let d = dst_u32(p);
            if ((d ^ p.dport as u32 ^ p.tcp_seq) & 0xffff) as u16 == p.ip_id {
                t |= 1 << Tool::Masscan.index();
            }
            if p.tcp_seq == d {
                t |= 1 << Tool::Mirai.index();
            }
        }
        if let Some(o) = opts {
            if syn && matches!(p.tcp_window, 1024 | 2048 | 3072 | 4096) && o.is_mss_only() {
                t |= 1 << Tool::Nmap.index();
            }
            if probe && p.tcp_window == HPING3_WINDOW && o.is_empty() {
                t |= 1 << Tool::Hping3.index();
            }
        }
        t
    }

    /// One packet from `p.src` at `now` (Unix seconds), with its TCP option layout when the
    /// decoder gives it. Returns a label the first time a source's evidence is complete.
    #[inline(always)]
    pub fn observe(&mut self, p: &Packet, opts: Option<&TcpOptSig>, now: i64) -> Option<Label> {
        let traits = Self::traits(p, opts);
        if traits == 0 {
            // Only sources showing some trait are followed, so ordinary traffic costs a few
            // comparisons and no state.
            return None;
        }
        let (e, _) = self.sources.touch(p.src, || EMPTY, |e| *e = EMPTY);
        if now.saturating_sub(e.last_seen) > self.params.idle_secs || now < e.last_seen {
            *e = EMPTY;
        }
        e.last_seen = now;
        let digest = probe_digest(p);
        let mut found = None;
        for tool in Tool::ALL {
            let i = tool.index();
            if traits & (1 << i) == 0 || e.labelled & (1 << i) != 0 {
                continue;
            }
            if e.counts[i] > 0 && e.last_probe[i] == digest {
                continue;
            }
            e.last_probe[i] = digest;
            e.counts[i] = e.counts[i].saturating_add(1);
            if e.counts[i] >= self.params.probes[i] && found.is_none() {
                e.labelled |= 1 << i;
                found = Some(Label {
                    src: p.src,
                    tool,
                    probes: e.counts[i],
                    at: now,
                    dst: p.dst,
                    dport: p.dport,
                });
            }
        }
        if found.is_some() {
            self.labels += 1;
        }
        found
    }
}

fn dst_u32(p: &Packet) -> u32 {
    let b = p.dst.bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Destination address and port folded to 32 bits: two probes to different targets differ.
fn probe_digest(p: &Packet) -> u32 {
    let b = p.dst.bytes();
    let mut h = 0x811c_9dc5u32;
    for &x in b.iter().chain(&p.dport.to_be_bytes()) {
        h = (h ^ x as u32).wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = flags::SYN;

    fn base(src: [u8; 4], dst: [u8; 4], dport: u16) -> Packet {
        let mut p = crate::detect::test_packet();
        p.src = Addr::v4(src);
        p.dst = Addr::v4(dst);
        p.sport = 40000;
        p.dport = dport;
        p.tcp_flags = SYN;
        p.ttl = 64;
        p.ip_id = 777;
        p.tcp_seq = 0x1234_5678;
        p.tcp_window = 64240;
        p
    }

    const S: [u8; 4] = [203, 0, 113, 7];
    const D: [u8; 4] = [198, 51, 100, 10];

    fn linux_opts() -> TcpOptSig {
        TcpOptSig::of(
            10,
            &[
                2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
            ],
        )
    }

    fn mss_only() -> TcpOptSig {
        TcpOptSig::of(6, &[2, 4, 5, 0xb4])
    }

    #[test]
    fn the_view_serialises_as_the_export() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        for i in 0..5u8 {
            let mut p = base([203, 0, 113, i], D, 80);
            p.ip_id = ZMAP_IP_ID;
            f.observe(&p, None, i as i64);
            p.dst = Addr::v4([198, 51, 100, 11]);
            f.observe(&p, None, i as i64 + 1);
        }
        let export = f.export();
        assert_eq!(export.sources.len(), 5);
        assert_eq!(
            postcard::to_stdvec(&f.view()).unwrap(),
            postcard::to_stdvec(&export).unwrap()
        );
    }

    #[test]
    fn zmap_needs_two_probes() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let mut p = base(S, D, 80);
        p.ip_id = ZMAP_IP_ID;
        assert_eq!(f.observe(&p, None, 0), None);
        // A retransmission to the same target is not a second probe.
        assert_eq!(f.observe(&p, None, 1), None);
        p.dst = Addr::v4([198, 51, 100, 11]);
        let l = f.observe(&p, None, 2).expect("label");
        assert_eq!((l.tool, l.probes, l.at), (Tool::Zmap, 2, 2));
        assert_eq!(f.labels_of(&p.src), [Tool::Zmap]);
        // Labelled once.
        p.dst = Addr::v4([198, 51, 100, 12]);
        assert_eq!(f.observe(&p, None, 3), None);
        let ev = l.to_event("eth0");
        assert_eq!(ev.detail("tool"), Some(&Value::Str("zmap".into())));
        assert!(ev.to_json().starts_with(
            r#"{"type":"tool","observer":"eth0","offender":"203.0.113.7","timestamp":2,"details":{"tool":"zmap""#
        ));
    }

    #[test]
    fn zmap_icmp_probes_count() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let mut p = base(S, D, 0);
        p.proto = proto::ICMP;
        p.tcp_flags = 0;
        p.ip_id = ZMAP_IP_ID;
        f.observe(&p, None, 0);
        p.dst = Addr::v4([198, 51, 100, 99]);
        assert_eq!(f.observe(&p, None, 0).map(|l| l.tool), Some(Tool::Zmap));
    }

    #[test]
    fn masscan_formula() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let mut label = None;
        for (k, port) in [22u16, 80, 443].into_iter().enumerate() {
            let mut p = base(S, D, port);
            p.tcp_seq = 0x9e37_79b9u32.wrapping_mul(k as u32 + 1);
            let d = u32::from_be_bytes(D);
            p.ip_id = ((d ^ port as u32 ^ p.tcp_seq) & 0xffff) as u16;
            p.ttl = 255;
            p.tcp_window = 1024;
            if let Some(l) = f.observe(&p, None, 10) {
                label = Some((k, l));
                break;
            }
        }
        let (k, l) = label.expect("masscan");
        assert_eq!((k, l.tool), (1, Tool::Masscan));
    }

    #[test]
    fn mirai_one_probe_is_enough() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let mut p = base(S, D, 23);
        p.tcp_seq = u32::from_be_bytes(D);
        assert_eq!(f.observe(&p, None, 0).map(|l| l.tool), Some(Tool::Mirai));
    }

    #[test]
    fn nmap_window_and_mss_only() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let o = mss_only();
        // As captured from nmap 7.93 -sS: window 1024, MSS 1460 alone, TTL random per probe.
        let mut got = None;
        for (k, ttl) in [46u8, 40, 59, 52].into_iter().enumerate() {
            let mut p = base(S, D, 20 + k as u16);
            p.ttl = ttl;
            p.tcp_window = 1024;
            got = f.observe(&p, Some(&o), 0);
            if got.is_some() {
                assert_eq!(k, 2);
                break;
            }
        }
        assert_eq!(got.map(|l| l.tool), Some(Tool::Nmap));
        // Older nmap's windows count too; other windows or layouts do not.
        let mut p = base(S, D, 1);
        p.tcp_window = 3072;
        assert_ne!(
            Fingerprinter::traits(&p, Some(&o)) & 1 << Tool::Nmap.index(),
            0
        );
        p.tcp_window = 1025;
        assert_eq!(Fingerprinter::traits(&p, Some(&o)), 0);
        p.tcp_window = 1024;
        assert_eq!(Fingerprinter::traits(&p, Some(&linux_opts())), 0);
        // Without the option layout nmap is never labelled.
        let mut f = Fingerprinter::new(FingerprintParams::default());
        for k in 0..10u16 {
            let mut p = base(S, D, k);
            p.tcp_window = 1024;
            assert_eq!(f.observe(&p, None, 0), None);
        }
    }

    #[test]
    fn ordinary_stacks_are_not_labelled() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let o = linux_opts();
        let mut x = 1u32;
        for k in 0..5000u32 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let mut p = base(S, [198, 51, 100, (k % 250) as u8], (k % 1000) as u16);
            p.tcp_seq = x;
            p.ip_id = (x >> 7) as u16 ^ 0x5a5a;
            assert_eq!(f.observe(&p, Some(&o), k as i64), None, "{k}");
        }
        // Replies and ACKs never count.
        let mut p = base(S, D, 80);
        p.tcp_flags = SYN | flags::ACK;
        p.ip_id = ZMAP_IP_ID;
        p.tcp_seq = u32::from_be_bytes(D);
        assert_eq!(Fingerprinter::traits(&p, None), 0);
    }

    #[test]
    fn hping3_defaults() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let o = TcpOptSig::of(5, &[]);
        let mut last = None;
        for k in 0..3u16 {
            let mut p = base(S, D, 20 + k);
            p.tcp_window = HPING3_WINDOW;
            p.tcp_flags = flags::FIN;
            last = f.observe(&p, Some(&o), 0);
        }
        assert_eq!(last.map(|l| l.tool), Some(Tool::Hping3));
    }

    #[test]
    fn idle_sources_start_over() {
        let mut f = Fingerprinter::new(FingerprintParams::default());
        let mut p = base(S, D, 1);
        p.ip_id = ZMAP_IP_ID;
        f.observe(&p, None, 0);
        p.dport = 2;
        assert_eq!(
            f.observe(&p, None, 3601),
            None,
            "the first probe was forgotten"
        );
        p.dport = 3;
        assert!(f.observe(&p, None, 3602).is_some());
        // Labelled again after a long silence.
        p.dport = 4;
        f.observe(&p, None, 9000);
        p.dport = 5;
        assert!(f.observe(&p, None, 9001).is_some());
    }

    #[test]
    fn spoofed_flood_stays_bounded() {
        let mut f = Fingerprinter::new(FingerprintParams {
            capacity: 1000,
            ..FingerprintParams::default()
        });
        for i in 0..100_000u32 {
            let b = i.to_be_bytes();
            let mut p = base([10, b[1], b[2], b[3]], D, 80);
            p.ip_id = ZMAP_IP_ID;
            assert_eq!(f.observe(&p, None, 0), None);
        }
        assert_eq!(f.tracked(), 1000);
        assert_eq!(f.stats().evictions, 99_000);
    }

    #[test]
    fn bad_settings_are_refused() {
        for p in [
            FingerprintParams {
                capacity: 0,
                ..FingerprintParams::default()
            },
            FingerprintParams {
                idle_secs: 0,
                ..FingerprintParams::default()
            },
            FingerprintParams {
                probes: [1, 1, 0, 1, 1],
                ..FingerprintParams::default()
            },
        ] {
            assert!(p.validate().is_err());
        }
    }
}
