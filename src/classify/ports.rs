//! A set of ports as a bitmap: one lookup per packet, whatever the set holds.

pub struct PortSet {
    bits: Box<[u64; 1024]>,
    empty: bool,
}

impl PortSet {
    pub fn new() -> PortSet {
        PortSet {
            bits: Box::new([0; 1024]),
            empty: true,
        }
    }

    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        for p in lo..=hi {
            self.bits[p as usize >> 6] |= 1 << (p & 63);
        }
        self.empty = false;
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        !self.empty && self.bits[port as usize >> 6] & (1 << (port & 63)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}
