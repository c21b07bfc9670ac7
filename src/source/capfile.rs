//! A reader of classic pcap and pcapng capture files, written for hostile input: every length
//! field is checked against what the file holds before it is trusted, nothing is allocated per
//! packet, and a broken file ends with an error that says where, never with a panic.

use super::{Frame, Link};
use crate::policy::{MAX_FRAME_BYTES, MAX_PCAPNG_BLOCK, READ_CHUNK};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Interfaces one pcapng section may describe before we call the file corrupt.
const MAX_INTERFACES: usize = 4096;

#[derive(Debug)]
pub enum CapError {
    /// The file is not a capture we can read at all.
    NotCapture {
        path: PathBuf,
        why: String,
    },
    /// The file ends in the middle of a record: everything before it was read.
    Truncated {
        path: PathBuf,
        packets: u64,
    },
    /// A record is inconsistent; the file cannot be read past it.
    Corrupt {
        path: PathBuf,
        packets: u64,
        offset: u64,
        why: String,
    },
    Io {
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapError::NotCapture { path, why } => {
                write!(f, "{}: not a capture we can read: {why}", path.display())
            }
            CapError::Truncated { path, packets } => write!(
                f,
                "{}: cut short after {packets} packets (the last record is incomplete)",
                path.display()
            ),
            CapError::Corrupt {
                path,
                packets,
                offset,
                why,
            } => write!(
                f,
                "{}: corrupt at byte {offset} after {packets} packets: {why}",
                path.display()
            ),
            CapError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for CapError {}

#[derive(Clone, Copy)]
struct Interface {
    link: Option<Link>,
    linktype: u16,
    /// Timestamp units per second (if_tsresol); 0 when the resolution is unusable.
    units: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    offset: i64,
    snaplen: u32,
    warned: bool,
}

enum Format {
    Pcap {
        /// The writer's byte order was big-endian.
        be: bool,
        nanos: bool,
        link: Link,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// Where a frame lies in the buffer, and when it was captured.
type Record = (i64, u32, Link, usize, usize);

/// An open capture file that lends one frame at a time.
pub struct CaptureFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// File offset of `buf[start]`, for error messages.
    offset: u64,
    format: Format,
    packets: u64,
    /// Frames passed over because their interface's link type is one we do not decode.
    pub unsupported: u64,
    /// Records passed over because they name an interface the file never described.
    pub orphans: u64,
    /// The latest timestamp read, given to simple packet blocks, which carry none.
    last_ts: i64,
}

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CapError> {
        let file = File::open(path).map_err(|err| CapError::Io {
            path: path.to_owned(),
            err,
        })?;
        let mut cap = CaptureFile {
            path: path.to_owned(),
            file,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            format: Format::Pcap {
                be: false,
                nanos: false,
                link: Link::Ethernet,
            },
            packets: 0,
            unsupported: 0,
            orphans: 0,
            last_ts: 0,
        };
        cap.read_file_header()?;
        Ok(cap)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames lent so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    fn not_capture(&self, why: String) -> CapError {
        CapError::NotCapture {
            path: self.path.clone(),
            why,
        }
    }

    fn corrupt(&self, why: String) -> CapError {
        CapError::Corrupt {
            path: self.path.clone(),
            packets: self.packets,
            offset: self.offset,
            why,
        }
    }

    fn truncated(&self) -> CapError {
        CapError::Truncated {
            path: self.path.clone(),
            packets: self.packets,
        }
    }

    /// Makes at least `n` bytes available at `buf[start..]`; false when the file ends first.
    #[inline]
    fn fill(&mut self, n: usize) -> Result<bool, CapError> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> Result<bool, CapError> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if n > self.buf.len() {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n && !self.eof {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(CapError::Io {
                        path: self.path.clone(),
                        err,
                    })
                }
            }
        }
        Ok(self.end >= n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    fn read_file_header(&mut self) -> Result<(), CapError> {
        if !self.fill(24)? {
            let have = self.end - self.start;
            return Err(self.not_capture(format!("only {have} bytes, shorter than any header")));
        }
        let b = &self.buf[..24];
        let magic_le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        // Reading the magic as little-endian tells the writer's byte order.
        let (be, nanos) = match magic_le {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            0x0a0d_0d0a => return self.read_shb_start(),
            m => {
                return Err(self.not_capture(format!(
                    "unknown magic number 0x{m:08x} (neither pcap nor pcapng)"
                )))
            }
        };
        let major = rd16(&b[4..6], be);
        if major != 2 {
            return Err(self.not_capture(format!("pcap version {major} is not 2")));
        }
        // The top bits of the link type field carry FCS information, not the type.
        let linktype = rd32(&b[20..24], be) & 0xffff;
        let link = Link::from_linktype(linktype).ok_or_else(|| {
            self.not_capture(format!("link type {linktype} is not one we decode (Ethernet, Linux cooked v1/v2, raw IP, BSD loopback)"))
        })?;
        self.format = Format::Pcap { be, nanos, link };
        self.consume(24);
        Ok(())
    }

    fn read_shb_start(&mut self) -> Result<(), CapError> {
        // The byte-order magic follows the block type and length.
        if !self.fill(12)? {
            return Err(self.not_capture("pcapng section header cut short".into()));
        }
        let bom = &self.buf[self.start + 8..self.start + 12];
        let big_endian = match bom {
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            _ => return Err(self.not_capture("pcapng byte-order magic is wrong".into())),
        };
        self.format = Format::Pcapng {
            big_endian,
            interfaces: Vec::new(),
        };
        Ok(())
    }

    /// The next frame, `None` at the clean end of the file.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CapError> {
        let (ts, ts_us, link, at, len) = match self.format {
            Format::Pcap { be, nanos, link } => {
                // One copy of the record loop per byte order and resolution, so neither is a
                // branch or a division by a variable per record.
                let next = match (be, nanos) {
                    (false, false) => self.next_pcap::<false, false>()?,
                    (false, true) => self.next_pcap::<false, true>()?,
                    (true, false) => self.next_pcap::<true, false>()?,
                    (true, true) => self.next_pcap::<true, true>()?,
                };
                match next {
                    Some((ts, us, at, len)) => (ts, us, link, at, len),
                    None => return Ok(None),
                }
            }
            Format::Pcapng { .. } => match self.next_pcapng()? {
                Some(x) => x,
                None => return Ok(None),
            },
        };
        self.packets += 1;
        self.last_ts = ts;
        Ok(Some(Frame {
            ts,
            ts_us,
            link,
            data: &self.buf[at..at + len],
            outgoing: false,
        }))
    }

    /// Lends up to `limit` frames to `each`, in order, and says how many (0 at the clean end
    /// of the file): the loop of a replay. A classic pcap's records are read in one loop of
    /// their own, the byte order and resolution settled once a call instead of once a record.
    pub fn for_frames(
        &mut self,
        limit: u32,
        mut each: impl FnMut(&Frame<'_>),
    ) -> Result<u32, CapError> {
        let Format::Pcap { be, nanos, link } = self.format else {
            let mut n = 0;
            while n < limit {
                match self.next_frame()? {
                    Some(frame) => each(&frame),
                    None => break,
                }
                n += 1;
            }
            return Ok(n);
        };
        match (be, nanos) {
            (false, false) => self.pcap_frames::<false, false>(link, limit, each),
            (false, true) => self.pcap_frames::<false, true>(link, limit, each),
            (true, false) => self.pcap_frames::<true, false>(link, limit, each),
            (true, true) => self.pcap_frames::<true, true>(link, limit, each),
        }
    }

    #[inline]
    fn pcap_frames<const BE: bool, const NANOS: bool>(
        &mut self,
        link: Link,
        limit: u32,
        mut each: impl FnMut(&Frame<'_>),
    ) -> Result<u32, CapError> {
        let mut n = 0;
        while n < limit {
            // The records wholly in the buffer, in a loop that keeps its place in registers;
            // the reader's own state is brought up to date once after it.
            let avail = &self.buf[self.start..self.end];
            let (mut at, mut done, mut last) = (0, 0, None);
            while n + done < limit {
                let Some(h) = avail.get(at..at + 16) else {
                    break;
                };
                let len = rd32(&h[8..12], BE) as usize;
                // Refused by `next_pcap` below, with the reader's place in the message.
                if len > MAX_FRAME_BYTES {
                    break;
                }
                let Some(data) = avail.get(at + 16..at + 16 + len) else {
                    break;
                };
                let (ts, ts_us) = pcap_time::<BE, NANOS>(h);
                each(&Frame {
                    ts,
                    ts_us,
                    link,
                    data,
                    outgoing: false,
                });
                at += 16 + len;
                done += 1;
                last = Some(ts);
            }
            self.consume(at);
            self.packets += done as u64;
            if let Some(ts) = last {
                self.last_ts = ts;
            }
            n += done;
            if n == limit {
                break;
            }
            // A record the buffer does not hold whole (or the end, or a bad record): read
            // it alone, refilling the buffer.
            let Some((ts, ts_us, at, len)) = self.next_pcap::<BE, NANOS>()? else {
                break;
            };
            self.packets += 1;
            self.last_ts = ts;
            each(&Frame {
                ts,
                ts_us,
                link,
                data: &self.buf[at..at + len],
                outgoing: false,
            });
            n += 1;
        }
        Ok(n)
    }

    #[inline(always)]
    fn next_pcap<const BE: bool, const NANOS: bool>(
        &mut self,
    ) -> Result<Option<(i64, u32, usize, usize)>, CapError> {
        if !self.fill(16)? {
            if self.end == self.start {
                return Ok(None);
            }
            return Err(self.truncated());
        }
        let incl = rd32(&self.buf[self.start + 8..self.start + 12], BE) as usize;
        if incl > MAX_FRAME_BYTES {
            return Err(self.corrupt(format!(
                "a record claims {incl} captured bytes (more than {MAX_FRAME_BYTES})"
            )));
        }
        if !self.fill(16 + incl)? {
            return Err(self.truncated());
        }
        let (ts, us) = pcap_time::<BE, NANOS>(&self.buf[self.start..self.start + 16]);
        let at = self.start + 16;
        self.consume(16 + incl);
        Ok(Some((ts, us, at, incl)))
    }

    fn next_pcapng(&mut self) -> Result<Option<Record>, CapError> {
        loop {
            if !self.fill(12)? {
                if self.end == self.start {
                    return Ok(None);
                }
                return Err(self.truncated());
            }
            let Format::Pcapng { big_endian, .. } = self.format else {
                unreachable!("next_pcapng is only called on pcapng files")
            };
            let s = self.start;
            let btype = rd32(&self.buf[s..s + 4], big_endian);
            let mut be = big_endian;
            if btype == 0x0a0d_0d0a {
                // A new section may switch byte order: read it from the section header itself.
                be = match &self.buf[s + 8..s + 12] {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => {
                        return Err(self.corrupt("section header byte-order magic is wrong".into()))
                    }
                };
            }
            let total = rd32(&self.buf[s + 4..s + 8], be) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_PCAPNG_BLOCK {
                return Err(self.corrupt(format!(
                    "block of type 0x{btype:08x} claims a length of {total} bytes"
                )));
            }
            if !self.fill(total)? {
                return Err(self.truncated());
            }
            let s = self.start;
            let trailer = rd32(&self.buf[s + total - 4..s + total], be) as usize;
            if trailer != total {
                return Err(self.corrupt(format!(
                    "block length {total} disagrees with its trailing copy {trailer}"
                )));
            }
            let body = s + 8..s + total - 4;
            let result = match btype {
                0x0a0d_0d0a => {
                    self.format = Format::Pcapng {
                        big_endian: be,
                        interfaces: Vec::new(),
                    };
                    None
                }
                1 => {
                    self.read_idb(body, be)?;
                    None
                }
                6 | 2 => self.read_epb(btype, body, be)?,
                3 => self.read_spb(body, be)?,
                _ => None,
            };
            self.consume(total);
            if let Some(frame) = result {
                return Ok(Some(frame));
            }
        }
    }

    fn read_idb(&mut self, body: std::ops::Range<usize>, be: bool) -> Result<(), CapError> {
        let b = &self.buf[body];
        if b.len() < 8 {
            return Err(self.corrupt("interface description block is too short".into()));
        }
        let linktype = rd16(&b[0..2], be);
        let snaplen = rd32(&b[4..8], be);
        let mut iface = Interface {
            link: Link::from_linktype(linktype as u32),
            linktype,
            units: 1_000_000,
            offset: 0,
            snaplen,
            warned: false,
        };
        let mut opts = &b[8..];
        while opts.len() >= 4 {
            let code = rd16(&opts[0..2], be);
            let len = rd16(&opts[2..4], be) as usize;
            let padded = (len + 3) & !3;
            if code == 0 || 4 + padded > opts.len() {
                break;
            }
            let v = &opts[4..4 + len];
            match (code, len) {
                (9, 1) => {
                    let r = v[0];
                    iface.units = if r & 0x80 != 0 {
                        let e = (r & 0x7f) as u32;
                        if e < 64 {
                            1u64 << e
                        } else {
                            0
                        }
                    } else {
                        10u64.checked_pow(r as u32).unwrap_or(0)
                    };
                }
                (14, 8) => iface.offset = rd64(v, be) as i64,
                _ => {}
            }
            opts = &opts[4 + padded..];
        }
        let Format::Pcapng { interfaces, .. } = &mut self.format else {
            unreachable!("read_idb is only called on pcapng files")
        };
        if interfaces.len() >= MAX_INTERFACES {
            return Err(self.corrupt(format!(
                "more than {MAX_INTERFACES} interfaces in one section"
            )));
        }
        interfaces.push(iface);
        Ok(())
    }

    fn interface(&mut self, id: usize) -> Option<Interface> {
        let Format::Pcapng { interfaces, .. } = &mut self.format else {
            return None;
        };
        let iface = interfaces.get_mut(id)?;
        if iface.link.is_none() && !iface.warned {
            iface.warned = true;
            log::warn!(
                "{}: interface {id} has link type {}, which we do not decode: its packets are skipped",
                self.path.display(),
                iface.linktype
            );
        }
        if iface.units == 0 && !iface.warned {
            iface.warned = true;
            log::warn!(
                "{}: interface {id} has an unusable timestamp resolution: its packets are skipped",
                self.path.display()
            );
        }
        Some(*iface)
    }

    /// Enhanced (6) and obsolete (2) packet blocks.
    fn read_epb(
        &mut self,
        btype: u32,
        body: std::ops::Range<usize>,
        be: bool,
    ) -> Result<Option<Record>, CapError> {
        let b = &self.buf[body.clone()];
        if b.len() < 20 {
            return Err(self.corrupt("packet block is too short".into()));
        }
        let id = if btype == 6 {
            rd32(&b[0..4], be) as usize
        } else {
            rd16(&b[0..2], be) as usize
        };
        let ts = ((rd32(&b[4..8], be) as u64) << 32) | rd32(&b[8..12], be) as u64;
        let caplen = rd32(&b[12..16], be) as usize;
        if caplen > b.len() - 20 {
            return Err(self.corrupt(format!(
                "packet block claims {caplen} captured bytes but holds {}",
                b.len() - 20
            )));
        }
        let Some(iface) = self.interface(id) else {
            self.orphans += 1;
            return Ok(None);
        };
        let (Some(link), true) = (iface.link, iface.units != 0) else {
            self.unsupported += 1;
            return Ok(None);
        };
        let secs = (ts / iface.units).min(i64::MAX as u64) as i64;
        let us = ((ts % iface.units) as u128 * 1_000_000 / iface.units as u128) as u32;
        Ok(Some((
            secs.saturating_add(iface.offset),
            us,
            link,
            body.start + 20,
            caplen,
        )))
    }

    /// Simple packet blocks: no timestamp (they take the previous packet's), interface 0,
    /// length bounded by the snap length.
    fn read_spb(
        &mut self,
        body: std::ops::Range<usize>,
        be: bool,
    ) -> Result<Option<Record>, CapError> {
        let b = &self.buf[body.clone()];
        if b.len() < 4 {
            return Err(self.corrupt("simple packet block is too short".into()));
        }
        let orig = rd32(&b[0..4], be) as usize;
        let held = b.len() - 4;
        let Some(iface) = self.interface(0) else {
            self.orphans += 1;
            return Ok(None);
        };
        let Some(link) = iface.link else {
            self.unsupported += 1;
            return Ok(None);
        };
        let mut caplen = orig.min(held);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        Ok(Some((self.last_ts, 0, link, body.start + 4, caplen)))
    }
}

// Readers of the writer's byte order: `be` is true for big-endian files.

#[inline]
fn rd16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

/// The time of a pcap record header `h`: whole seconds, and microseconds within the second.
#[inline(always)]
fn pcap_time<const BE: bool, const NANOS: bool>(h: &[u8]) -> (i64, u32) {
    let sec = rd32(&h[0..4], BE);
    let frac = rd32(&h[4..8], BE);
    // A fraction past one second is a writer's bug; it still belongs to `sec` or later.
    let per_sec = if NANOS { 1_000_000_000 } else { 1_000_000 };
    let (carry, frac) = if frac < per_sec {
        (0, frac)
    } else {
        (frac / per_sec, frac % per_sec)
    };
    let us = if NANOS { frac / 1000 } else { frac };
    (sec as i64 + carry as i64, us)
}

#[inline]
fn rd32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn rd64(b: &[u8], be: bool) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    if be {
        u64::from_be_bytes(a)
    } else {
        u64::from_le_bytes(a)
    }
}
