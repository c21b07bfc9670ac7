//! What the tool fingerprints ask of a TCP header's options: whether there are none at all
//! (hping3's probes), or exactly one, an MSS (nmap's SYN scan). Both are told from the header
//! length and the first four option bytes, which the decoder copies as they are: 5 bytes,
//! `Copy`, and no walk over the options of every SYN (that walk was a tenth of the work of a
//! live capture's frame, for two questions about its first bytes).

/// Option bytes kept: an MSS option's four.
const HEAD: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpOptSig {
    /// The TCP header's length in 32-bit words (5: no options).
    pub data_offset: u8,
    /// The first option bytes, zero past the options' end.
    head: [u8; HEAD],
}

impl TcpOptSig {
    /// The signature of a header of `data_offset` words whose options are `opts`.
    #[inline]
    pub fn of(data_offset: u8, opts: &[u8]) -> TcpOptSig {
        // Options come in whole words: none, or four bytes and more.
        let head = match opts.first_chunk::<HEAD>() {
            Some(head) => *head,
            None => {
                let mut head = [0u8; HEAD];
                for (h, o) in head.iter_mut().zip(opts) {
                    *h = *o;
                }
                head
            }
        };
        TcpOptSig { data_offset, head }
    }

    /// One option and nothing else, a well-formed MSS (kind 2, length 4).
    pub fn is_mss_only(&self) -> bool {
        self.data_offset == 6 && self.head[..2] == [2, 4]
    }

    /// No options at all.
    pub fn is_empty(&self) -> bool {
        self.data_offset == 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmap_probes_carry_one_mss_and_nothing_else() {
        assert!(TcpOptSig::of(6, &[2, 4, 5, 0xb4]).is_mss_only());
        let linux = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        let s = TcpOptSig::of(10, &linux);
        assert!(!s.is_mss_only() && !s.is_empty(), "Linux's SYN options");
        // The same four bytes in a longer header: more options follow.
        assert!(!TcpOptSig::of(7, &[2, 4, 5, 0xb4, 1, 1, 1, 1]).is_mss_only());
        // Four bytes that are not one MSS: padding first, a window scale, an MSS of a bad
        // length followed by the end of the list.
        for opts in [[1, 2, 4, 5], [3, 3, 7, 0], [2, 2, 0, 0], [0, 0, 0, 0]] {
            assert!(!TcpOptSig::of(6, &opts).is_mss_only(), "{opts:?}");
        }
    }

    #[test]
    fn no_options_is_a_header_of_five_words() {
        assert!(TcpOptSig::of(5, &[]).is_empty());
        assert!(!TcpOptSig::of(6, &[1, 1, 1, 0]).is_empty());
        assert!(!TcpOptSig::of(5, &[]).is_mss_only());
        // Options cut short by the capture are kept as far as they go.
        assert!(!TcpOptSig::of(6, &[2]).is_mss_only());
    }
}
