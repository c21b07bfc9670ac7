//! The state the CSV files do not hold (flows, counters, the clock, a replay's position),
//! saved with postcard at every flush and at shutdown, so a restart goes on where the last
//! flush left off. On disk: magic, version, payload length, postcard payload, CRC-32 of all
//! before it; written to a temporary file, synced, renamed, directory synced. A missing,
//! short, corrupt, foreign or other-version file is refused with a reason, never a panic.

use crate::alerts::DetectorState;
use crate::classify::FlowState;
use crate::faults;
use crate::sensor::Stats;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"tsusen\0S";
/// Bump when `State` changes shape: an older snapshot is then read by its own shape below, or
/// ignored, never misread. 3: the detectors keep the spike watch's state.
pub const VERSION: u32 = 3;
/// Largest payload we read back (flows at full capacity are far below it).
const MAX_PAYLOAD: usize = 256 * 1024 * 1024;
const HEADER: usize = 8 + 4 + 4;
/// Write buffer of a snapshot being saved.
const SAVE_BUFFER: usize = 32 * 1024;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReplayPosition {
    /// The capture files of the replay, with their sizes, in order.
    pub inputs: Vec<(String, u64)>,
    /// Frames of those files, counted from the first, whose attempts are in the CSV files.
    pub frames: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Latest second the sensor had seen.
    pub now: i64,
    pub next_flush: i64,
    pub stats: Stats,
    pub flows: Vec<FlowState>,
    pub replay: Option<ReplayPosition>,
    /// The detectors' sources and evidence, when detection runs.
    pub detectors: Option<DetectorState>,
}

/// What `save` writes, as `State` serialises, with the flows and the detectors lent rather
/// than copied out (`F` serialises as `Vec<FlowState>`: the classifier's `FlowsView`; `D` as
/// `DetectorState`: `DetectorStateRef`).
#[derive(Serialize)]
pub struct StateRef<'a, F: Serialize, D: Serialize> {
    pub now: i64,
    pub next_flush: i64,
    pub stats: &'a Stats,
    pub flows: F,
    pub replay: Option<ReplayPosition>,
    pub detectors: Option<D>,
}

/// Gathers bytes into chunks before they reach `inner`, counting them and keeping their
/// CRC-32 and the first I/O error (postcard reports only that writing failed, not why).
/// postcard hands its output over a byte at a time for most fields (an address is 17 of
/// them); through a `Write` each byte cost a call into the CRC and one into the file's buffer,
/// more than the rest of a save.
struct Chunks<W> {
    inner: W,
    buf: Box<[u8; SAVE_BUFFER]>,
    /// Bytes of `buf` in use.
    used: usize,
    crc: u32,
    len: u64,
    error: Option<io::Error>,
}

impl<W: Write> Chunks<W> {
    fn new(inner: W) -> Chunks<W> {
        Chunks {
            inner,
            buf: Box::new([0; SAVE_BUFFER]),
            used: 0,
            crc: !0,
            len: 0,
            error: None,
        }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        if self.used + data.len() > SAVE_BUFFER {
            self.drain()?;
        }
        if data.len() > SAVE_BUFFER {
            self.crc = crc32_update(self.crc, data);
            self.len += data.len() as u64;
            return self.inner.write_all(data);
        }
        self.buf[self.used..self.used + data.len()].copy_from_slice(data);
        self.used += data.len();
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        let chunk = &self.buf[..self.used];
        self.crc = crc32_update(self.crc, chunk);
        self.len += chunk.len() as u64;
        self.used = 0;
        self.inner.write_all(chunk)
    }

    /// Keeps the error for the caller, and gives postcard one of its own.
    fn failed(&mut self, e: io::Error) -> postcard::Error {
        self.error.get_or_insert(e);
        postcard::Error::SerializeBufferFull
    }
}

impl<W: Write> postcard::ser_flavors::Flavor for &mut Chunks<W> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.used == SAVE_BUFFER {
            if let Err(e) = self.drain() {
                return Err(self.failed(e));
            }
        }
        self.buf[self.used] = data;
        self.used += 1;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.put(data).map_err(|e| self.failed(e))
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Counts the bytes of a payload, for the length in the header.
struct Count(u64);

impl postcard::ser_flavors::Flavor for &mut Count {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len() as u64;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Serialises `state` into `w`, with the writer's own error when writing failed.
fn payload_into<S: Serialize, W: Write>(state: &S, w: &mut Chunks<W>) -> io::Result<()> {
    match postcard::serialize_with_flavor(state, &mut *w) {
        Ok(()) => Ok(()),
        Err(e) => Err(w
            .error
            .take()
            .unwrap_or_else(|| io::Error::other(e.to_string()))),
    }
}

/// Writes the snapshot atomically; returns the bytes written. The payload is streamed to the
/// file, never held whole: it is serialised twice, once only to learn its length for the
/// header (the detectors' state makes it a few hundred KiB, twice that as a buffer and a
/// copy, at every flush).
pub fn save<S: Serialize>(path: &Path, state: &S) -> io::Result<u64> {
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut counted = Count(0);
    postcard::serialize_with_flavor(state, &mut counted)
        .map_err(|e| ctx(io::Error::other(e.to_string())))?;
    let len = counted.0;
    let len = u32::try_from(len)
        .ok()
        .filter(|&l| l as usize <= MAX_PAYLOAD)
        .ok_or_else(|| {
            ctx(io::Error::other(format!(
                "a state of {len} bytes is too large"
            )))
        })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(ctx)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("state".into(), |n| n.to_string_lossy())
    ));
    let result = (|| {
        let mut w = Chunks::new(File::create(&tmp)?);
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&len.to_le_bytes())?;
        payload_into(state, &mut w)?;
        w.drain()?;
        if w.len != (HEADER + len as usize) as u64 {
            return Err(io::Error::other("the state changed while it was written"));
        }
        let crc = !w.crc;
        let mut f = w.inner;
        f.write_all(&crc.to_le_bytes())?;
        f.sync_all()?;
        faults::crash_here("snapshot-before-rename");
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ctx(e));
    }
    Ok((HEADER + len as usize + 4) as u64)
}

/// Reads the snapshot: `Ok(None)` when there is none, `Err` with the reason it is refused.
pub fn load(path: &Path) -> Result<Option<State>, String> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Checks and decodes snapshot bytes, whatever they are.
pub fn decode(bytes: &[u8]) -> Result<State, String> {
    if bytes.len() < HEADER + 4 {
        return Err(format!("{} bytes, shorter than any snapshot", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Err("not a tsusen snapshot".into());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION && version != 2 {
        return Err(format!(
            "version {version}, this sensor reads 2 and {VERSION}"
        ));
    }
    let len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    if len > MAX_PAYLOAD || HEADER + len + 4 != bytes.len() {
        return Err(format!(
            "payload of {len} bytes does not match the file's {} bytes (cut short?)",
            bytes.len()
        ));
    }
    let body = &bytes[..HEADER + len];
    let stored = u32::from_le_bytes([
        bytes[HEADER + len],
        bytes[HEADER + len + 1],
        bytes[HEADER + len + 2],
        bytes[HEADER + len + 3],
    ]);
    if crc32(body) != stored {
        return Err("checksum mismatch (corrupt)".into());
    }
    let payload = &bytes[HEADER..HEADER + len];
    let (state, rest) = if version == 2 {
        postcard::take_from_bytes::<StateV2>(payload).map(|(s, r)| (s.into(), r))
    } else {
        postcard::take_from_bytes::<State>(payload)
    }
    .map_err(|e| format!("payload does not decode: {e}"))?;
    if !rest.is_empty() {
        return Err("payload has trailing bytes".into());
    }
    Ok(state)
}

/// Version 2's shape: the detectors without the spike watch.
#[derive(Deserialize)]
struct StateV2 {
    now: i64,
    next_flush: i64,
    stats: Stats,
    flows: Vec<FlowState>,
    replay: Option<ReplayPosition>,
    detectors: Option<DetectorStateV2>,
}

#[derive(Deserialize)]
struct DetectorStateV2 {
    scan: crate::detect::scan::ScanState,
    tools: crate::detect::fingerprint::FingerprintState,
}

impl From<StateV2> for State {
    fn from(s: StateV2) -> State {
        State {
            now: s.now,
            next_flush: s.next_flush,
            stats: s.stats,
            flows: s.flows,
            replay: s.replay,
            detectors: s.detectors.map(|d| DetectorState {
                scan: d.scan,
                tools: d.tools,
                spikes: Default::default(),
            }),
        }
    }
}

/// CRC-32 (IEEE 802.3, as zlib and PNG), a byte at a time over a table of 256 words.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// Goes on with a CRC-32 (kept inverted, as between `crc32`'s first and last step) over `data`.
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            now: 1_700_000_000,
            next_flush: 1_700_000_900,
            stats: Stats {
                packets: 42,
                attempts: 7,
                ..Stats::default()
            },
            flows: Vec::new(),
            replay: Some(ReplayPosition {
                inputs: vec![("a.pcap".into(), 1234)],
                frames: 40,
            }),
            detectors: None,
        }
    }

    #[test]
    fn a_lent_state_is_written_as_the_state() {
        let flow = FlowState {
            proto: 17,
            a: crate::addr::Addr::v4([192, 0, 2, 1]),
            a_port: 53,
            b: crate::addr::Addr::v4([198, 51, 100, 1]),
            b_port: 4000,
            initiator_is_a: false,
            counted: true,
            last: 1_700_000_000,
        };
        let state = State {
            flows: vec![flow, flow],
            ..sample()
        };
        let lent = StateRef {
            now: state.now,
            next_flush: state.next_flush,
            stats: &state.stats,
            flows: &state.flows,
            replay: state.replay.clone(),
            detectors: state.detectors.clone(),
        };
        assert_eq!(
            postcard::to_stdvec(&lent).unwrap(),
            postcard::to_stdvec(&state).unwrap()
        );
    }

    /// A state of many chunks, with one field longer than a chunk, is written byte for byte
    /// as the format says: header, postcard's own bytes, CRC of all before it.
    #[test]
    fn a_large_state_is_written_as_the_format_says() {
        let flows = (0..5000u32)
            .map(|i| FlowState {
                proto: 17,
                a: crate::addr::Addr::v4(i.to_be_bytes()),
                a_port: i as u16,
                b: crate::addr::Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                b_port: 53,
                initiator_is_a: i % 2 == 0,
                counted: i % 3 == 0,
                last: 1_700_000_000 + i as i64,
            })
            .collect();
        let mut state = State { flows, ..sample() };
        state.replay = Some(ReplayPosition {
            inputs: vec![("p".repeat(SAVE_BUFFER + 5), 1), ("q.pcap".into(), 2)],
            frames: 3,
        });
        let dir = std::env::temp_dir().join(format!("tsusen-snap-large-{}", std::process::id()));
        let path = dir.join("state.bin");
        let n = save(&path, &state).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let payload = postcard::to_stdvec(&state).unwrap();
        assert!(payload.len() > 4 * SAVE_BUFFER);
        let mut want = Vec::new();
        want.extend_from_slice(MAGIC);
        want.extend_from_slice(&VERSION.to_le_bytes());
        want.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        want.extend_from_slice(&payload);
        let crc = crc32(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(n, want.len() as u64);
        assert!(bytes == want, "the file differs from the format");
        assert_eq!(decode(&bytes).unwrap(), state);
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = std::env::temp_dir().join(format!("tsusen-snap-{}", std::process::id()));
        let path = dir.join("state.bin");
        let n = save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, n);
        assert!(decode(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("cut short"));
        let mut flipped = bytes.clone();
        flipped[HEADER + 2] ^= 0x10;
        assert!(decode(&flipped).unwrap_err().contains("corrupt"));
        let mut other = bytes.clone();
        other[8] = 9;
        assert!(decode(&other).unwrap_err().contains("version 9"));
        // A version 2 snapshot (no spike state) is still read.
        let mut v2 = sample();
        v2.detectors = None;
        let payload = postcard::to_stdvec(&v2).unwrap();
        let mut old = Vec::new();
        old.extend_from_slice(MAGIC);
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        old.extend_from_slice(&payload);
        let crc = crc32(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&old).unwrap(), v2);
        assert!(decode(b"GIF89a-not-a-snapshot").is_err());
        assert_eq!(load(&dir.join("missing.bin")).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
