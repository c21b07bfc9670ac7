//! IP protocol numbers and the names the CSV gives them, with the order rows sort in.

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const DCCP: u8 = 33;
pub const ICMPV6: u8 = 58;
pub const SCTP: u8 = 132;
pub const UDPLITE: u8 = 136;

/// IANA's protocol keywords (assigned numbers 0-145), upper-cased as the CSV writes them.
/// Empty where IANA gives no keyword, or one with a space that a space-separated file cannot
/// hold (124, 135): those protocols are written as their number.
const KEYWORDS: [&str; 146] = [
    "HOPOPT",
    "ICMP",
    "IGMP",
    "GGP",
    "IPV4",
    "ST",
    "TCP",
    "CBT",
    "EGP",
    "IGP", // 0-9
    "BBN-RCC-MON",
    "NVP-II",
    "PUP",
    "ARGUS",
    "EMCON",
    "XNET",
    "CHAOS",
    "UDP",
    "MUX",
    "DCN-MEAS",
    "HMP",
    "PRM",
    "XNS-IDP",
    "TRUNK-1",
    "TRUNK-2",
    "LEAF-1",
    "LEAF-2",
    "RDP",
    "IRTP",
    "ISO-TP4",
    "NETBLT",
    "MFE-NSP",
    "MERIT-INP",
    "DCCP",
    "3PC",
    "IDPR",
    "XTP",
    "DDP",
    "IDPR-CMTP",
    "TP++",
    "IL",
    "IPV6",
    "SDRP",
    "IPV6-ROUTE",
    "IPV6-FRAG",
    "IDRP",
    "RSVP",
    "GRE",
    "DSR",
    "BNA", // 40-49
    "ESP",
    "AH",
    "I-NLSP",
    "SWIPE",
    "NARP",
    "MIN-IPV4",
    "TLSP",
    "SKIP",
    "ICMPV6",
    "IPV6-NONXT",
    "IPV6-OPTS",
    "",
    "CFTP",
    "",
    "SAT-EXPAK",
    "KRYPTOLAN",
    "RVD",
    "IPPC",
    "",
    "SAT-MON", // 60-69
    "VISA",
    "IPCV",
    "CPNX",
    "CPHB",
    "WSN",
    "PVP",
    "BR-SAT-MON",
    "SUN-ND",
    "WB-MON",
    "WB-EXPAK",
    "ISO-IP",
    "VMTP",
    "SECURE-VMTP",
    "VINES",
    "IPTM",
    "NSFNET-IGP",
    "DGP",
    "TCF",
    "EIGRP",
    "OSPFIGP", // 80-89
    "SPRITE-RPC",
    "LARP",
    "MTP",
    "AX.25",
    "IPIP",
    "MICP",
    "SCC-SP",
    "ETHERIP",
    "ENCAP",
    "",
    "GMTP",
    "IFMP",
    "PNNI",
    "PIM",
    "ARIS",
    "SCPS",
    "QNX",
    "A/N",
    "IPCOMP",
    "SNP", // 100-109
    "COMPAQ-PEER",
    "IPX-IN-IP",
    "VRRP",
    "PGM",
    "",
    "L2TP",
    "DDX",
    "IATP",
    "STP",
    "SRP",
    "UTI",
    "SMP",
    "SM",
    "PTP",
    "",
    "FIRE",
    "CRTP",
    "CRUDP",
    "SSCOPMCE",
    "IPLT", // 120-129
    "SPS",
    "PIPE",
    "SCTP",
    "FC",
    "RSVP-E2E-IGNORE",
    "",
    "UDPLITE",
    "MPLS-IN-IP",
    "MANET",
    "HIP",
    "SHIM6",
    "WESP",
    "ROHC",
    "ETHERNET",
    "AGGFRAG",
    "NSH", // 140-145
];

/// Protocols whose header starts with a source and a destination port.
#[inline]
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, TCP | UDP | SCTP | DCCP | UDPLITE)
}

/// The CSV's name of a protocol: TCP, UDP, ICMP, ICMPV6, else the IANA keyword, else the number.
#[inline]
pub fn name(proto: u8) -> &'static [u8] {
    let (text, len) = &NAMES[proto as usize];
    &text[..*len as usize]
}

/// The name of `proto` as `name` gives it, in 16 bytes padded with spaces, and its length: a
/// row is written with one fixed-size copy of it.
#[inline]
pub fn name_padded(proto: u8) -> (&'static [u8; 16], usize) {
    let (text, len) = &NAMES[proto as usize];
    (text, *len as usize)
}

/// Every protocol's name, made once at compile time.
static NAMES: [([u8; 16], u8); 256] = {
    let mut t = [([b' '; 16], 0u8); 256];
    let mut p = 0;
    while p < 256 {
        let k = if p < KEYWORDS.len() {
            KEYWORDS[p].as_bytes()
        } else {
            b""
        };
        if k.is_empty() {
            let digits = [(p / 100) as u8, (p / 10 % 10) as u8, (p % 10) as u8];
            let skip = if p >= 100 {
                0
            } else if p >= 10 {
                1
            } else {
                2
            };
            let mut i = skip;
            while i < 3 {
                t[p].0[i - skip] = b'0' + digits[i];
                i += 1;
            }
            t[p].1 = (3 - skip) as u8;
        } else {
            let mut i = 0;
            while i < k.len() {
                t[p].0[i] = k[i];
                i += 1;
            }
            t[p].1 = k.len() as u8;
        }
        p += 1;
    }
    t
};

/// The protocol a CSV name stands for (any case, as files from elsewhere may differ).
pub fn parse(name: &[u8]) -> Option<u8> {
    if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(name).ok()?.parse().ok();
    }
    KEYWORDS
        .iter()
        .position(|k| !k.is_empty() && k.as_bytes().eq_ignore_ascii_case(name))
        .map(|p| p as u8)
}

/// Rows sort by the protocol's name as written, byte by byte; this maps each protocol number
/// to its place in that order so the per-row comparison is one byte.
pub struct SortRank([u8; 256]);

impl SortRank {
    pub fn new() -> SortRank {
        let mut names: Vec<(Vec<u8>, u8)> = (0..=255u8).map(|p| (name(p).to_vec(), p)).collect();
        names.sort();
        let mut rank = [0u8; 256];
        for (place, (_, p)) in names.iter().enumerate() {
            rank[*p as usize] = place as u8;
        }
        SortRank(rank)
    }

    #[inline]
    pub fn of(&self, proto: u8) -> u8 {
        self.0[proto as usize]
    }
}

impl Default for SortRank {
    fn default() -> Self {
        SortRank::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in 0..=255u8 {
            let n = name(p).to_vec();
            assert!(!n.contains(&b' '), "{p}");
            assert_eq!(parse(&n), Some(p), "{}", String::from_utf8_lossy(&n));
        }
        assert_eq!(name(6), b"TCP");
        assert_eq!(name(58), b"ICMPV6");
        assert_eq!(name(47), b"GRE");
        assert_eq!(name(253), b"253");
        assert_eq!(name(124), b"124");
        assert_eq!(parse(b"icmpv6"), Some(58));
        assert_eq!(parse(b"BOGUS"), None);
        assert_eq!(parse(b"256"), None);
    }

    #[test]
    fn rank_follows_the_text() {
        let r = SortRank::new();
        assert!(r.of(ICMP) < r.of(ICMPV6));
        assert!(r.of(ICMPV6) < r.of(TCP));
        assert!(r.of(TCP) < r.of(UDP));
        assert!(r.of(47) < r.of(ICMP)); // GRE
        assert!(r.of(253) < r.of(47)); // digits sort before letters
    }
}
