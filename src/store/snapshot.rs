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
use std::io::{self, BufWriter, Write};
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

/// Passes bytes on to `inner`, counting them and keeping their CRC-32, and keeps the first
/// I/O error (postcard reports only that writing failed, not why).
struct Checked<W> {
    inner: W,
    crc: u32,
    len: u64,
    error: Option<io::Error>,
}

impl<W: Write> Checked<W> {
    fn new(inner: W) -> Checked<W> {
        Checked {
            inner,
            crc: !0,
            len: 0,
            error: None,
        }
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.crc = crc32_update(self.crc, &buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(kept);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Serialises `state` into `w`, with the writer's own error when writing failed.
fn payload_into<S: Serialize, W: Write>(state: &S, w: &mut Checked<W>) -> io::Result<()> {
    match postcard::to_io(state, &mut *w) {
        Ok(_) => Ok(()),
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
    let mut counted = Checked::new(io::sink());
    payload_into(state, &mut counted).map_err(ctx)?;
    let len = counted.len;
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
        let f = File::create(&tmp)?;
        let mut w = Checked::new(BufWriter::with_capacity(SAVE_BUFFER, f));
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        payload_into(state, &mut w)?;
        if w.len != (HEADER + len as usize) as u64 {
            return Err(io::Error::other("the state changed while it was written"));
        }
        let crc = !w.crc;
        let mut out = w.inner;
        out.write_all(&crc.to_le_bytes())?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
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

/// CRC-32 (IEEE 802.3, as zlib and PNG), bitwise over a small table.
pub fn crc32(data: &[u8]) -> u32 {
    !crc32_update(!0, data)
}

/// Goes on with a CRC-32 (kept inverted, as between `crc32`'s first and last step) over `data`.
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 16] = {
        let mut t = [0u32; 16];
        let mut i = 0;
        while i < 16 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 4 {
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
        crc = TABLE[((crc ^ b as u32) & 15) as usize] ^ (crc >> 4);
        crc = TABLE[((crc ^ (b as u32 >> 4)) & 15) as usize] ^ (crc >> 4);
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
