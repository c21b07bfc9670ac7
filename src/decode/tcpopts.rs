//! A compact signature of a TCP header's option layout, for the tool fingerprints: the option
//! kinds in order (NOPs included), the MSS and window scale values, and the header length.
//! 16 bytes, `Copy`, no allocation; filled by `transport.rs` for every TCP header.

/// Option kinds kept, in order; a longer list sets `more`.
pub const MAX_KINDS: usize = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpOptSig {
    /// TCP data offset in 32-bit words (5 = no options).
    pub data_offset: u8,
    /// Number of option kinds recorded in `kinds`.
    pub len: u8,
    /// Kinds in order of appearance (1 = NOP, 2 = MSS, 3 = window scale, 4 = SACK permitted,
    /// 8 = timestamps …). End-of-list (0) is not recorded; padding after it is ignored.
    pub kinds: [u8; MAX_KINDS],
    /// More options than `MAX_KINDS`.
    pub more: bool,
    /// An option's length byte ran past the header or was below 2.
    pub malformed: bool,
    /// MSS value when the option is present and well formed.
    pub mss: Option<u16>,
    /// Window scale shift when present.
    pub wscale: Option<u8>,
}

impl TcpOptSig {
    /// Parses the option bytes of a TCP header (`opts` = bytes 20 .. data_offset × 4).
    pub fn parse(data_offset: u8, opts: &[u8]) -> TcpOptSig {
        let mut s = TcpOptSig {
            data_offset,
            ..TcpOptSig::default()
        };
        let mut i = 0;
        while i < opts.len() {
            let kind = opts[i];
            if kind == 0 {
                break;
            }
            if (s.len as usize) < MAX_KINDS {
                s.kinds[s.len as usize] = kind;
                s.len += 1;
            } else {
                s.more = true;
            }
            if kind == 1 {
                i += 1;
                continue;
            }
            let Some(&l) = opts.get(i + 1) else {
                s.malformed = true;
                break;
            };
            let l = l as usize;
            if l < 2 || i + l > opts.len() {
                s.malformed = true;
                break;
            }
            match (kind, l) {
                (2, 4) => s.mss = Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]])),
                (3, 3) => s.wscale = Some(opts[i + 2]),
                _ => {}
            }
            i += l;
        }
        s
    }

    /// The recorded kinds.
    pub fn kinds(&self) -> &[u8] {
        &self.kinds[..self.len as usize]
    }

    /// Exactly one option, MSS, and nothing else (nmap's and zmap's SYN probes).
    pub fn is_mss_only(&self) -> bool {
        self.data_offset == 6 && self.kinds() == [2] && !self.more && !self.malformed
    }

    /// A bare 20-byte header.
    pub fn is_empty(&self) -> bool {
        self.data_offset == 5 && self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmap_syn_options() {
        let s = TcpOptSig::parse(6, &[2, 4, 5, 0xb4]);
        assert!(s.is_mss_only());
        assert_eq!(s.mss, Some(1460));
        assert_eq!(s.wscale, None);
    }

    #[test]
    fn linux_syn_options() {
        let o = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let s = TcpOptSig::parse(10, &o);
        assert_eq!(s.kinds(), [2, 4, 8, 1, 3]);
        assert_eq!(s.mss, Some(1460));
        assert_eq!(s.wscale, Some(7));
        assert!(!s.is_mss_only() && !s.is_empty() && !s.malformed);
    }

    #[test]
    fn end_of_list_padding_and_bad_lengths() {
        let s = TcpOptSig::parse(6, &[2, 4, 5, 0xb4][..]);
        assert!(!s.malformed);
        let s = TcpOptSig::parse(7, &[1, 1, 0, 9, 9, 9, 9, 9]);
        assert_eq!(s.kinds(), [1, 1]);
        let s = TcpOptSig::parse(6, &[2, 9, 5, 0xb4]);
        assert!(s.malformed);
        let s = TcpOptSig::parse(6, &[8, 1, 0, 0]);
        assert!(s.malformed);
        let s = TcpOptSig::parse(6, &[1, 1, 1, 2]);
        assert!(s.malformed, "a kind without its length byte");
        assert!(TcpOptSig::parse(5, &[]).is_empty());
        let s = TcpOptSig::parse(15, &[1; 40]);
        assert_eq!(s.len as usize, MAX_KINDS);
        assert!(s.more);
    }
}
