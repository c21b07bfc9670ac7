//! Addresses as text, both ways, as std writes and reads them, without std's formatting and
//! parsing machinery: a day file's rows, the report's answers and the events carry two
//! addresses each, written and read by the million.

use super::Addr;
use crate::decimal;

/// Room `write` needs at the start of its output: the longest text (39 bytes) and the
/// four-byte stores that run past it.
pub const ROOM: usize = 48;

/// An address as text at the start of `out` (room for `ROOM` bytes), returning its length.
#[inline]
pub fn write(out: &mut [u8], a: &Addr) -> usize {
    let b = a.bytes();
    if a.is_v6() {
        ipv6(out, b)
    } else {
        ipv4(out, [b[0], b[1], b[2], b[3]])
    }
}

/// Each octet's digits and a dot, in four bytes, with the digits' length: an octet is one
/// load and one four-byte store, with no division and no loop over its digits.
const OCTETS: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        let (h, d, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u, b'.'], 3)
        } else if v >= 10 {
            ([b'0' + d, b'0' + u, b'.', 0], 2)
        } else {
            ([b'0' + u, b'.', 0, 0], 1)
        };
        v += 1;
    }
    t
};

/// An IPv4 address as text at the start of `out` (room for 16 bytes: the last octet's dot
/// and padding land past the text), returning its length.
fn ipv4(out: &mut [u8], octets: [u8; 4]) -> usize {
    let out = &mut out[..16];
    let mut n = 0;
    for octet in octets {
        let (text, len) = &OCTETS[octet as usize];
        out[n..n + 4].copy_from_slice(text);
        n += *len as usize + 1;
    }
    n - 1
}

/// For each set of zero groups of an IPv6 address (bit i: group i is zero), the longest run
/// of two or more (the first of equals) as (start, length); (8, 0) where there is none. RFC
/// 5952 writes that run as `::`; a table makes finding it one load instead of a walk.
const ZERO_RUNS: [(u8, u8); 256] = {
    let mut t = [(8u8, 0u8); 256];
    let mut m = 0;
    while m < 256 {
        let mut i = 0;
        while i < 8 {
            if m >> i & 1 == 1 {
                let start = i;
                while i < 8 && m >> i & 1 == 1 {
                    i += 1;
                }
                if i - start >= 2 && i - start > t[m].1 as usize {
                    t[m] = (start as u8, (i - start) as u8);
                }
            } else {
                i += 1;
            }
        }
        m += 1;
    }
    t
};

/// RFC 5952 text, as std writes it: lower-case hex without leading zeros, the longest run of
/// two or more zero groups (the first of equals) as `::`, and `::ffff:a.b.c.d` for an
/// IPv4-mapped address. `out` has room for 45 bytes.
fn ipv6(out: &mut [u8], b: &[u8; 16]) -> usize {
    if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
        out[..7].copy_from_slice(b"::ffff:");
        return 7 + ipv4(&mut out[7..], [b[12], b[13], b[14], b[15]]);
    }
    let g: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]));
    let zeros = (0..8).fold(0, |m, i| m | ((g[i] == 0) as usize) << i);
    let (run, len) = ZERO_RUNS[zeros];
    let (run, end) = (run as usize, run as usize + len as usize);
    let mut n = 0;
    for (i, &group) in g.iter().enumerate() {
        if i == run {
            out[n..n + 2].copy_from_slice(b"::");
            n += 2;
        }
        if (run..end).contains(&i) {
            continue;
        }
        if i > 0 && i != end {
            out[n] = b':';
            n += 1;
        }
        n += hex(&mut out[n..], group);
    }
    n
}

/// `v` in lower-case hex without leading zeros at the start of `out`, returning its length.
/// The four digits are made at once, a nibble a byte, and written in one store (`out` has
/// room for four) with the leading zeros shifted out first: no table, no loop.
#[inline]
fn hex(out: &mut [u8], v: u16) -> usize {
    let digits = (16 - v.leading_zeros() as usize).div_ceil(4).max(1);
    let x = v as u32;
    // Bytes, from the top: the first nibble to the last.
    let x = (x & 0xff00) << 8 | (x & 0x00ff);
    let x = (x & 0x00f0_00f0) << 4 | (x & 0x000f_000f);
    // 1 in each byte holding 10 or more: those become 'a'..'f' rather than '0'..'9'.
    let letters = ((x + 0x0606_0606) >> 4) & 0x0101_0101;
    let text = x + 0x3030_3030 + letters * (b'a' - b'0' - 10) as u32;
    out[..4].copy_from_slice(&(text << (8 * (4 - digits))).to_be_bytes());
    digits
}

/// Dotted-quad IPv4 without leading signs, spaces or zeros; `None` sends the text to std's
/// parser. One pass over the bytes, an octet at a time: every row read has two addresses.
pub fn parse_ipv4(b: &[u8]) -> Option<Addr> {
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let mut v = decimal::digit(*b.get(at)?)?;
        at += 1;
        // A zero stands alone: a leading zero is refused (std refuses it too).
        if v != 0 {
            for _ in 0..2 {
                match b.get(at).and_then(|&c| decimal::digit(c)) {
                    Some(d) => {
                        v = v * 10 + d;
                        at += 1;
                    }
                    None => break,
                }
            }
            if v > 255 {
                return None;
            }
        }
        *octet = v as u8;
    }
    (at == b.len()).then(|| Addr::v4(octets))
}

/// IPv6 as RFC 5952 and most writers give it: groups of one to four hex digits, at most one
/// `::`. `None` for any other text (an IPv4 tail, a zone), which goes to std's parser; what
/// this takes, std takes as the same address. Reading a day file's rows, std's parser took
/// about 2,500 instructions an IPv6 address.
pub fn parse_ipv6(b: &[u8]) -> Option<Addr> {
    if !(2..=39).contains(&b.len()) {
        return None;
    }
    // Groups before the `::` and after it.
    let (mut head, mut tail) = ([0u16; 8], [0u16; 8]);
    let (mut heads, mut tails) = (0, 0);
    let mut gap = false;
    let mut at = 0;
    if b.starts_with(b"::") {
        gap = true;
        at = 2;
    }
    while at < b.len() {
        let mut v = 0u32;
        let mut n = 0;
        while n < 4 {
            match b.get(at).and_then(|&c| (c as char).to_digit(16)) {
                Some(h) => {
                    v = v << 4 | h;
                    at += 1;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 || heads + tails == 8 {
            return None;
        }
        if gap {
            tail[tails] = v as u16;
            tails += 1;
        } else {
            head[heads] = v as u16;
            heads += 1;
        }
        match b.get(at) {
            None => break,
            Some(b':') => {
                at += 1;
                if b.get(at) == Some(&b':') {
                    if gap {
                        return None;
                    }
                    gap = true;
                    at += 1;
                } else if at == b.len() {
                    // A lone `:` at the end.
                    return None;
                }
            }
            Some(_) => return None,
        }
    }
    let groups = heads + tails;
    if (gap && groups > 7) || (!gap && groups != 8) {
        return None;
    }
    let mut g = [0u16; 8];
    g[..heads].copy_from_slice(&head[..heads]);
    g[8 - tails..].copy_from_slice(&tail[..tails]);
    let mut bytes = [0u8; 16];
    for (pair, group) in bytes.chunks_exact_mut(2).zip(g) {
        pair.copy_from_slice(&group.to_be_bytes());
    }
    Some(Addr::v6(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn addresses_as_std_writes_them() {
        let mut buf = [0u8; ROOM];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..100_000u32 {
            // Random groups, many of them zero, so every shape of `::` comes up.
            let mut b = [0u8; 16];
            for k in 0..8 {
                let r = next();
                if r % 3 != 0 {
                    let g = if r % 5 == 0 {
                        0x10 >> (r % 5)
                    } else {
                        (r >> 8) as u16
                    };
                    b[2 * k..2 * k + 2].copy_from_slice(&g.to_be_bytes());
                }
            }
            if i % 17 == 0 {
                b[..12].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
            }
            let n = ipv6(&mut buf, &b);
            assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                Ipv6Addr::from(b).to_string()
            );
            let v4 = [b[0], b[1], b[2], b[3]];
            let n = ipv4(&mut buf, v4);
            assert_eq!(
                std::str::from_utf8(&buf[..n]).unwrap(),
                Ipv4Addr::from(v4).to_string()
            );
        }
        for text in [
            "::",
            "::1",
            "1::",
            "1:0:0:1:0:0:0:1",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "2001:db8::",
        ] {
            let a: Ipv6Addr = text.parse().unwrap();
            let n = ipv6(&mut buf, &a.octets());
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), a.to_string());
        }
    }

    #[test]
    fn ipv4_is_read_as_std_reads_it() {
        // Strings of digits and dots, most of them near a dotted quad; what the fast parser
        // takes, std takes the same, and a dotted quad std takes, the fast parser takes too.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut taken = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut text = String::new();
            let mut y = x;
            for _ in 0..(3 + y % 14) {
                y /= 14;
                text.push(b"0123456789...."[(y % 14) as usize] as char);
            }
            let std = text.parse::<Ipv4Addr>().ok().map(|a| Addr::v4(a.octets()));
            assert_eq!(parse_ipv4(text.as_bytes()), std, "{text}");
            taken += std.is_some() as u32;
        }
        for text in ["0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.0.1"] {
            assert!(parse_ipv4(text.as_bytes()).is_some(), "{text}");
        }
        for text in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "",
        ] {
            assert!(parse_ipv4(text.as_bytes()).is_none(), "{text}");
        }
        assert!(taken > 100, "{taken}");
    }

    #[test]
    fn ipv6_is_read_as_std_reads_it() {
        // What the fast parser takes, std takes as the same address: strings of hex digits,
        // colons and dots, and addresses std wrote (zero runs of every length, so `::` in
        // every place), which the fast parser must take too unless they end in IPv4.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let std6 = |t: &str| t.parse::<Ipv6Addr>().ok().map(|a| Addr::v6(a.octets()));
        let mut taken = 0;
        for _ in 0..300_000 {
            let mut y = next();
            let mut text = String::new();
            for _ in 0..(2 + y % 38) {
                y /= 38;
                text.push(b"0123456789abcdefABCDEF0::::::::::::::.."[(y % 38) as usize] as char);
            }
            let fast = parse_ipv6(text.as_bytes());
            if fast.is_some() {
                assert_eq!(fast, std6(&text), "{text}");
                taken += 1;
            }
        }
        assert!(taken > 1000, "{taken}");
        for _ in 0..100_000 {
            let mut groups = [0u16; 8];
            let (a, z) = (next() % 8, next() % 9);
            for (i, g) in groups.iter_mut().enumerate() {
                let zero = i as u64 >= a && (i as u64) < a + z;
                *g = if zero {
                    0
                } else {
                    (next() >> [0, 48, 52, 56, 60][i % 5]) as u16
                };
            }
            let ip = Ipv6Addr::from(groups);
            for text in [ip.to_string(), ip.to_string().to_uppercase()] {
                let fast = parse_ipv6(text.as_bytes());
                if !text.contains('.') {
                    assert_eq!(fast, Some(Addr::v6(ip.octets())), "{text}");
                } else {
                    assert!(fast.is_none(), "{text}");
                }
            }
        }
        for text in [
            ":",
            ":::",
            "1:",
            ":1",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
        ] {
            assert!(parse_ipv6(text.as_bytes()).is_none(), "{text}");
        }
    }
}
