//! The classic BPF program the kernel runs on every frame before it reaches our ring, written by
//! our own code (no libpcap). It keeps what can count or what a detector needs and drops the
//! bulk of a busy link (established TCP) inside the kernel:
//! - TCP with ACK clear (SYN probes, and the FIN/NULL/Xmas/RST probes scanlogd and the tool
//!   fingerprints watch), or with [`TcpPass::SynOnly`] just SYN without ACK;
//! - UDP, ICMP, ICMPv6 and every other IP protocol (the flow table needs both directions);
//! - IPv4 and IPv6 with extension headers before TCP are passed for user space to judge;
//! - VLAN-tagged frames whose tag is still in the data are passed for user space to judge (a tag
//!   the NIC stripped is invisible to the filter, which then sees the inner EtherType);
//! - a non-first IPv4 fragment of TCP carries no TCP header: dropped, user space skips them too.
//!
//! A load past the end of the frame makes the kernel drop it: such a TCP packet is too short
//! to count anyway.

/// One instruction, as `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcode parts (linux/bpf_common.h).
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MSH: u16 = 0xa0;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JSET: u16 = 0x40;
pub const AND: u16 = 0x50;
pub const K: u16 = 0x00;

/// The kernel's ancillary load of `skb->protocol` (SKF_AD_OFF + SKF_AD_PROTOCOL), host order:
/// a cooked socket's frames start at the network header, so the EtherType is only here.
pub const AD_PROTOCOL: u32 = 0xffff_f000;

/// Bytes of a frame the filter keeps (the kernel truncates to the snap length of the ring).
const KEEP: u32 = crate::policy::MAX_FRAME_BYTES as u32;

const TCP_SYN: u32 = 0x02;
const TCP_ACK: u32 = 0x10;

/// How the frames on the socket begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An Ethernet header (SOCK_RAW on an Ethernet or loopback interface).
    Ethernet,
    /// The network header (SOCK_DGRAM, "cooked"); the EtherType comes from the socket.
    Cooked,
}

/// Which TCP packets reach user space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPass {
    /// SYN set, ACK clear: all the counting rules need.
    SynOnly,
    /// ACK clear: what the scan detector and the fingerprints need as well.
    AckClear,
}

/// Jump targets while the program is assembled: resolved to relative offsets at the end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    Accept,
    Drop,
    V4,
    V6,
    Tcp4,
    Tcp6,
    Flags,
}

struct Asm {
    code: Vec<(Insn, Label, Label)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.jump(code, k, Label::Next, Label::Next);
    }

    fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        let insn = Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        self.code.push((insn, jt, jf));
    }

    fn label(&mut self, l: Label) {
        self.labels.push((l, self.code.len()));
    }

    fn finish(self) -> Vec<Insn> {
        let at = |l: Label, here: usize| -> u8 {
            if l == Label::Next {
                return 0;
            }
            let target = self.labels.iter().find(|(x, _)| *x == l).map(|(_, i)| *i);
            let target = target.expect("every label used is placed");
            // Classic BPF only jumps forward, at most 255 instructions.
            u8::try_from(target - here - 1).expect("short forward jump")
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, (insn, jt, jf))| {
                let mut insn = *insn;
                if insn.code == JMP | JA | K && *jt != Label::Next {
                    insn.k = at(*jt, i) as u32;
                } else {
                    insn.jt = at(*jt, i);
                    insn.jf = at(*jf, i);
                }
                insn
            })
            .collect()
    }
}

/// The filter for a socket of this framing.
pub fn program(framing: Framing, tcp: TcpPass) -> Vec<Insn> {
    use Label::*;
    let l3: u32 = match framing {
        Framing::Ethernet => 14,
        Framing::Cooked => 0,
    };
    let mut a = Asm {
        code: Vec::new(),
        labels: Vec::new(),
    };
    match framing {
        Framing::Ethernet => a.op(LD | H | ABS, 12),
        Framing::Cooked => a.op(LD | H | ABS, AD_PROTOCOL),
    }
    a.jump(JMP | JEQ | K, 0x0800, V4, Next);
    a.jump(JMP | JEQ | K, 0x86dd, V6, Next);
    a.jump(JMP | JEQ | K, 0x8100, Accept, Next);
    a.jump(JMP | JEQ | K, 0x88a8, Accept, Next);
    a.jump(JMP | JEQ | K, 0x9100, Accept, Drop);

    a.label(V4);
    a.op(LD | B | ABS, l3 + 9);
    a.jump(JMP | JEQ | K, 6, Tcp4, Accept);
    a.label(Tcp4);
    a.op(LD | H | ABS, l3 + 6);
    a.jump(JMP | JSET | K, 0x1fff, Drop, Next);
    a.op(LDX | B | MSH, l3);
    a.op(LD | B | IND, l3 + 13);
    a.jump(JMP | JA | K, 0, Flags, Next);

    a.label(V6);
    a.op(LD | B | ABS, l3 + 6);
    a.jump(JMP | JEQ | K, 6, Tcp6, Accept);
    a.label(Tcp6);
    a.op(LD | B | ABS, l3 + 40 + 13);

    a.label(Flags);
    let (mask, want) = match tcp {
        TcpPass::SynOnly => (TCP_SYN | TCP_ACK, TCP_SYN),
        TcpPass::AckClear => (TCP_ACK, 0),
    };
    a.op(ALU | AND | K, mask);
    a.jump(JMP | JEQ | K, want, Accept, Drop);

    a.label(Accept);
    a.op(RET | K, KEEP);
    a.label(Drop);
    a.op(RET | K, 0);
    a.finish()
}

/// Runs a program as the kernel would, for the tests: the bytes kept (0: dropped).
/// `protocol` is what the ancillary load gives (the socket's EtherType).
pub fn run(prog: &[Insn], frame: &[u8], protocol: u16) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |at: u32, size: usize| -> Option<u32> {
        if at == AD_PROTOCOL {
            return Some(protocol as u32);
        }
        let at = at as usize;
        let b = frame.get(at..at.checked_add(size)?)?;
        Some(b.iter().fold(0u32, |v, &byte| v << 8 | byte as u32))
    };
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let size = match i.code & 0x18 {
            H => 2,
            B => 1,
            _ => 4,
        };
        match i.code & 0x07 {
            LD if i.code & 0xe0 == ABS => match load(i.k, size) {
                Some(v) => a = v,
                None => return 0,
            },
            LD if i.code & 0xe0 == IND => match load(x.wrapping_add(i.k), size) {
                Some(v) => a = v,
                None => return 0,
            },
            LDX if i.code & 0xe0 == MSH => match load(i.k, 1) {
                Some(v) => x = (v & 0xf) * 4,
                None => return 0,
            },
            ALU if i.code & 0xf0 == AND => a &= i.k,
            JMP => {
                let taken = match i.code & 0xf0 {
                    JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    JEQ => a == i.k,
                    JSET => a & i.k != 0,
                    _ => return 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            RET => return i.k,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, flags};
    use crate::source::{Frame, Link};

    /// An Ethernet frame carrying IPv4 or IPv6 and a transport header with these TCP flags.
    fn frame(v6: bool, proto: u8, tcp_flags: u8, ihl_words: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        if v6 {
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&20u16.to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
            ip[24..40].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
            f.extend_from_slice(&ip);
        } else {
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let hl = ihl_words as usize * 4;
            let mut ip = vec![0u8; hl];
            ip[0] = 0x40 | ihl_words;
            ip[2..4].copy_from_slice(&((hl + 20) as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&[203, 0, 113, 7]);
            ip[16..20].copy_from_slice(&[198, 51, 100, 9]);
            f.extend_from_slice(&ip);
        }
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&22u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = tcp_flags;
        f.extend_from_slice(&t);
        f
    }

    fn kept(prog: &[Insn], f: &[u8]) -> bool {
        run(prog, f, u16::from_be_bytes([f[12], f[13]])) > 0
    }

    #[test]
    fn tcp_by_flags() {
        let syn = program(Framing::Ethernet, TcpPass::SynOnly);
        let clear = program(Framing::Ethernet, TcpPass::AckClear);
        for v6 in [false, true] {
            for (fl, syn_only, ack_clear) in [
                (flags::SYN, true, true),
                (flags::SYN | 0xc0, true, true), // ECN-capable SYN
                (flags::SYN | flags::ACK, false, false),
                (flags::ACK, false, false),
                (flags::FIN, false, true),
                (0, false, true),
                (flags::RST, false, true),
                (flags::SYN | flags::RST, true, true),
            ] {
                let f = frame(v6, 6, fl, 5);
                assert_eq!(kept(&syn, &f), syn_only, "v6 {v6} flags {fl:#x}");
                assert_eq!(kept(&clear, &f), ack_clear, "v6 {v6} flags {fl:#x}");
            }
        }
        // IPv4 options move the TCP header: the filter follows the header length.
        let mut f = frame(false, 6, flags::SYN | flags::ACK, 8);
        assert!(!kept(&syn, &f));
        f[14 + 32 + 13] = flags::SYN;
        assert!(kept(&syn, &f));
    }

    #[test]
    fn other_traffic() {
        let prog = program(Framing::Ethernet, TcpPass::SynOnly);
        for proto in [17u8, 1, 58, 47, 132] {
            assert!(kept(&prog, &frame(false, proto, 0, 5)), "proto {proto}");
            assert!(kept(&prog, &frame(true, proto, 0, 5)), "proto {proto}");
        }
        // An IPv6 extension header before TCP: user space walks it.
        assert!(kept(&prog, &frame(true, 0, flags::ACK, 5)));
        // ARP is not IP.
        let mut arp = frame(false, 6, flags::SYN, 5);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!kept(&prog, &arp));
        // A VLAN tag still in the data: passed on.
        let mut tagged = frame(false, 6, flags::ACK, 5);
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        assert!(kept(&prog, &tagged));
        // A non-first fragment of TCP: dropped.
        let mut frag = frame(false, 6, flags::SYN, 5);
        frag[14 + 6..14 + 8].copy_from_slice(&0x00b9u16.to_be_bytes());
        assert!(!kept(&prog, &frag));
        // A SYN cut before its flags cannot count.
        let f = frame(false, 6, flags::SYN, 5);
        assert!(!kept(&prog, &f[..14 + 20 + 12]));
    }

    #[test]
    fn cooked_framing() {
        let prog = program(Framing::Cooked, TcpPass::SynOnly);
        for v6 in [false, true] {
            let f = frame(v6, 6, flags::SYN, 5);
            let proto = u16::from_be_bytes([f[12], f[13]]);
            assert!(run(&prog, &f[14..], proto) > 0);
            let f = frame(v6, 6, flags::ACK, 5);
            assert_eq!(run(&prog, &f[14..], proto), 0);
        }
    }

    /// Whatever the bytes, a frame the filter drops is one the sensor would not have counted
    /// and no detector would have looked at.
    #[test]
    fn never_drops_what_counts() {
        let prog = program(Framing::Ethernet, TcpPass::AckClear);
        let seeds = [
            frame(false, 6, flags::SYN, 5),
            frame(true, 6, flags::SYN, 5),
            frame(false, 17, 0, 6),
            frame(true, 58, 0, 5),
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut dropped, mut tried) = (0, 0);
        for i in 0..200_000 {
            let mut f = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % f.len() as u64) as usize;
                f[at] = next() as u8;
            }
            let cut = f.len() - (next() % 8) as usize;
            f.truncate(cut);
            tried += 1;
            if kept(&prog, &f) {
                continue;
            }
            dropped += 1;
            let frame = Frame {
                ts: 0,
                ts_us: 0,
                link: Link::Ethernet,
                data: &f,
                outgoing: false,
            };
            if let Ok(p) = decode::decode(&frame) {
                assert!(
                    p.proto == 6 && p.tcp_flags & flags::ACK != 0,
                    "dropped a packet user space wants: {f:02x?}"
                );
            }
        }
        assert!(
            dropped > 1000 && dropped < tried,
            "dropped {dropped} of {tried}"
        );
    }
}
