//! The daily file's rows as text: `proto dst_port dst_ip src_ip first_seen last_seen count`,
//! one space between fields, as the original tsusen wrote them.

use crate::addr::{text, Addr};
use crate::decimal;
use crate::proto;
use crate::tables::{Key, Row};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;

pub const HEADER: &str = "proto dst_port dst_ip src_ip first_seen last_seen count";

/// Writes rows into any writer, counting the bytes. Every field is a token from a closed
/// alphabet (protocol keywords without spaces, digits, addresses, `-`) that never needs
/// quoting, so rows are formatted straight into the writer's own buffer, which goes to `out`
/// when full: this is the hot half of a flush, run by the million, where csv-core's per-byte
/// quoting checks cost more than the rest of the row, and a copy of each row into a
/// `BufWriter` a sixth of the row.
pub struct RowWriter<W: Write> {
    /// Taken only by `finish` and `into_inner`, which consume the writer.
    out: Option<W>,
    buf: Box<[u8]>,
    /// Bytes of `buf` not yet written to `out`.
    len: usize,
    pub bytes: u64,
    /// The text of the last row's protocol, port and destination, with the space after them:
    /// rows come sorted, and most share these with the row before (a scan of one port of one
    /// address from many sources), so they are copied rather than formatted again.
    prefix: [u8; PREFIX_ROOM],
    prefix_len: usize,
    prefix_of: Option<(u8, Option<u16>, Addr)>,
    times: TimeText,
}

/// Writes Unix times, keeping the text of the first five digits of the last ten-digit time:
/// they change once in 27 hours.
struct TimeText {
    high: u32,
    text: [u8; 5],
}

impl TimeText {
    fn new() -> TimeText {
        TimeText {
            high: u32::MAX,
            text: [0; 5],
        }
    }

    /// Writes `v` in decimal at the start of `out` (20 bytes at least), returning its length.
    /// A time of ten digits (2001 to 2286) takes its first five from the last one's when they
    /// agree.
    #[inline(always)]
    fn write(&mut self, out: &mut [u8], v: u64) -> usize {
        if !(1_000_000_000..10_000_000_000).contains(&v) {
            return decimal::write(out, v);
        }
        let (high, low) = ((v / 100_000) as u32, (v % 100_000) as u32);
        if high != self.high {
            self.high = high;
            decimal::five_digits(&mut self.text, high);
        }
        out[..5].copy_from_slice(&self.text);
        decimal::five_digits((&mut out[5..10]).try_into().expect("5 bytes"), low);
        10
    }
}

/// Room for the longest protocol, port and destination: a 15-byte name, 5 digits, an IPv6
/// address of 39 and three spaces are 62 bytes.
const PREFIX_ROOM: usize = 64;

/// Room for the longest row (a 15-byte protocol name, a port, two IPv6 addresses of 45, two
/// times of 20 digits, a count of 20, separators: 183 bytes) and for the 16-byte copies that
/// run past the text they write.
const ROW_ROOM: usize = 256;

impl<W: Write> RowWriter<W> {
    /// A writer with a small buffer, for rows few or in memory.
    pub fn new(out: W) -> RowWriter<W> {
        RowWriter::with_capacity(4 * ROW_ROOM, out)
    }

    /// A writer that hands `out` about `capacity` bytes at a time.
    pub fn with_capacity(capacity: usize, out: W) -> RowWriter<W> {
        RowWriter {
            out: Some(out),
            buf: vec![0; capacity.max(2 * ROW_ROOM)].into_boxed_slice(),
            len: 0,
            bytes: 0,
            prefix: [0; PREFIX_ROOM],
            prefix_len: 0,
            prefix_of: None,
            times: TimeText::new(),
        }
    }

    pub fn header(&mut self) -> io::Result<()> {
        self.make_room()?;
        let room = &mut self.buf[self.len..];
        room[..HEADER.len()].copy_from_slice(HEADER.as_bytes());
        room[HEADER.len()] = b'\n';
        self.len += HEADER.len() + 1;
        self.bytes += HEADER.len() as u64 + 1;
        Ok(())
    }

    /// Makes `ROW_ROOM` bytes free at `buf[len..]`, writing out what it holds when needed.
    #[inline]
    fn make_room(&mut self) -> io::Result<()> {
        if self.buf.len() - self.len < ROW_ROOM {
            self.write_out()?;
        }
        Ok(())
    }

    #[cold]
    fn write_out(&mut self) -> io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(&self.buf[..self.len])?;
        }
        self.len = 0;
        Ok(())
    }

    /// Writes out what the buffer holds and gives back `out` (not flushed: a `File` needs no
    /// flush, and a caller that syncs does so itself). A writer dropped instead writes out
    /// what it holds too, as a `BufWriter` does, but cannot tell of an error.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_out()?;
        Ok(self.out.take().expect("only finish and into_inner take it"))
    }

    #[inline(always)]
    pub fn row(&mut self, r: &Row) -> io::Result<()> {
        self.make_room()?;
        let b = &mut self.buf[self.len..self.len + ROW_ROOM];
        let head = (r.key.proto, r.key.port, r.key.dst);
        let mut n;
        if self.prefix_of == Some(head) {
            b[..PREFIX_ROOM].copy_from_slice(&self.prefix);
            n = self.prefix_len;
        } else {
            let (name, len) = proto::name_padded(r.key.proto);
            b[..16].copy_from_slice(name);
            n = len;
            b[n] = b' ';
            n += 1;
            match r.key.port {
                None => {
                    b[n] = b'-';
                    n += 1;
                }
                Some(p) => n += decimal::write(&mut b[n..], p as u64),
            }
            b[n] = b' ';
            n += 1;
            n += text::write(&mut b[n..], &r.key.dst);
            b[n] = b' ';
            n += 1;
            self.prefix.copy_from_slice(&b[..PREFIX_ROOM]);
            self.prefix_len = n;
            self.prefix_of = Some(head);
        }
        n += text::write(&mut b[n..], &r.key.src);
        // Timestamps are checked to lie in 0..=MAX_TIMESTAMP where rows are made.
        b[n] = b' ';
        n += 1;
        let len = self.times.write(&mut b[n..], r.first.max(0) as u64);
        n += len;
        b[n] = b' ';
        n += 1;
        if r.last == r.first && len <= 16 {
            // Most rows hold one attempt: the second time is the first one's text again, in
            // one fixed-size copy (what follows it is overwritten next).
            let first: [u8; 16] = b[n - len - 1..n - len + 15].try_into().expect("16 bytes");
            b[n..n + 16].copy_from_slice(&first);
            n += len;
        } else {
            n += self.times.write(&mut b[n..], r.last.max(0) as u64);
        }
        b[n] = b' ';
        n += 1;
        n += decimal::write(&mut b[n..], r.count);
        b[n] = b'\n';
        n += 1;
        self.len += n;
        self.bytes += n as u64;
        Ok(())
    }
}

impl<W: Write> Drop for RowWriter<W> {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

impl RowWriter<Vec<u8>> {
    /// The text written, for rows made in memory (writing to a `Vec` cannot fail).
    pub fn into_inner(mut self) -> Vec<u8> {
        let mut out = self.out.take().expect("only finish and into_inner take it");
        out.extend_from_slice(&self.buf[..self.len]);
        self.len = 0;
        out
    }
}

/// A row that could not be read, and where.
#[derive(Debug)]
pub struct BadRow {
    pub line: u64,
    pub why: String,
}

/// Reads rows from a daily file (ours or the original tsusen's) one at a time.
///
/// A line whole in the buffer with no quote and no carriage return, as every line we write
/// is, is split at its spaces in place: csv-core's state machine cost more than the rest of
/// a row's reading (a report or a spike baseline reads day files by the million rows). Any
/// other line goes through csv-core, which is at the start of a record between lines either
/// way, and yields the same fields for a plain line.
pub struct RowReader<R: BufRead> {
    input: R,
    csv: Reader,
    record: Vec<u8>,
    ends: [usize; 16],
    line: u64,
    /// Line ends taken by the plain path; csv-core counts its own.
    plain_lines: u64,
    last_proto: LastProto,
    /// Off in tests, to check the plain path against csv-core.
    plain: bool,
    /// Bytes taken from `input` so far: where the next line starts.
    consumed: u64,
}

/// A line of `buf` that needs no CSV reader (see `RowReader`): its length with its `\n`, its
/// first seven non-empty space-separated fields, how many non-empty fields it has (8 standing
/// for more than 7) and whether it has more fields, empty ones too, than csv-core is given
/// room for. `None` for any other line.
#[inline]
fn plain_line(buf: &[u8]) -> Option<(usize, [&[u8]; 7], usize, bool)> {
    if let Some(b) = buf.first_chunk::<64>() {
        if let Some(line) = written_line(b) {
            return Some(line);
        }
    }
    any_plain_line(buf)
}

/// `plain_line` of a line as we write it, whole in its first 64 bytes: seven fields, each
/// ended by one space or, the last, the line end. Its first seven bytes at most `"` are
/// those, which checks in one pass without a branch per field; any other line is `None`.
#[inline(always)]
fn written_line(b: &[u8; 64]) -> Option<(usize, [&[u8]; 7], usize, bool)> {
    let mut low = low_mask(b);
    let mut fields: [&[u8]; 7] = [&[]; 7];
    let mut start = 0;
    let mut ok = true;
    for (k, field) in fields.iter_mut().enumerate() {
        let at = (low.trailing_zeros() as usize).min(63);
        low &= low.wrapping_sub(1);
        let end = if k == 6 { b'\n' } else { b' ' };
        // An empty field (two separators in a row, or a line that starts with one), or a
        // byte that is not the separator expected: the general way decides. So it does for a
        // block with fewer than seven (the mask runs out, and `at` is its last byte again,
        // before `start`, or a byte above `"`).
        ok &= b[at] == end && at > start;
        *field = &b[start..at.max(start)];
        start = at + 1;
    }
    ok.then_some((start, fields, 7, false))
}

/// `plain_line` of any line.
fn any_plain_line(buf: &[u8]) -> Option<(usize, [&[u8]; 7], usize, bool)> {
    let mut fields: [&[u8]; 7] = [&[]; 7];
    let (mut k, mut all, mut start) = (0, 0, 0);
    let mut block = 0;
    loop {
        // Most bytes are digits, letters, dots and colons, above every byte that matters here:
        // the ones that may, 64 bytes at a time, are visited a set bit each. A row's fields
        // are seven whatever their lengths, so the visits repeat from line to line, where a
        // scan to the next such byte ended at a different place in every line.
        let (mut low, width) = match buf.get(block..block + 64) {
            Some(b) => (low_mask(b.try_into().expect("64 bytes")), 64),
            None => {
                let rest = buf.get(block..)?;
                if rest.is_empty() {
                    return None;
                }
                let low = rest.iter().enumerate();
                let low = low.fold(0, |m, (j, &c)| m | ((c <= b'"') as u64) << j);
                (low, rest.len())
            }
        };
        while low != 0 {
            let i = block + low.trailing_zeros() as usize;
            low &= low - 1;
            match buf[i] {
                c @ (b' ' | b'\n') => {
                    all += 1;
                    if i > start {
                        if k < 7 {
                            fields[k] = &buf[start..i];
                        }
                        k = (k + 1).min(8);
                    }
                    if c == b'\n' {
                        return Some((i + 1, fields, k, all > 16));
                    }
                    start = i + 1;
                }
                b'"' | b'\r' => return None,
                _ => {}
            }
        }
        block += width;
    }
}

/// One in each byte of a word.
const BYTE_ONES: u64 = 0x0101_0101_0101_0101;
/// The top bit of each byte of a word.
const BYTE_TOPS: u64 = 0x8080_8080_8080_8080;

/// A bit for each of 64 bytes that is at most `"` (a space, a line end, a quote, a carriage
/// return or another control): bit `j` for byte `j`. On x86-64, sixteen bytes at a time with
/// SSE2 (part of every x86-64): a quarter of the instructions of the word-at-a-time way,
/// which the other boards take.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn low_mask(b: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{__m128i, _mm_set1_epi8};
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8};
    let mut mask = 0;
    // SAFETY: SSE2 is in the x86-64 baseline, so every build for this target has it; the
    // loads are unaligned, of 16 bytes each, all within `b`.
    unsafe {
        let limit = _mm_set1_epi8(b'"' as i8);
        for (j, chunk) in b.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            // A byte is at most the limit (unsigned) when the smaller of the two is the byte.
            let at_most = _mm_cmpeq_epi8(_mm_min_epu8(v, limit), v);
            mask |= (_mm_movemask_epi8(at_most) as u16 as u64) << (16 * j);
        }
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn low_mask(b: &[u8; 64]) -> u64 {
    low_mask_words(b)
}

/// `low_mask` a word of eight bytes at a time, for any target.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn low_mask_words(b: &[u8; 64]) -> u64 {
    let mut mask = 0;
    for (j, word) in b.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        // The top bit of each byte whose low seven bits are 0x23 or more (the sum stays
        // within its byte: at most 0x7f + 0x5d), or whose own top bit is set. The bytes
        // left are those below 0x23, each found exactly.
        let high = ((w & !BYTE_TOPS) + BYTE_ONES * (0x80 - (b'"' as u64 + 1))) | w;
        let low = !high & BYTE_TOPS;
        // The eight top bits into one byte, byte i's at bit i: the product's terms all fall
        // on different bits, so nothing carries.
        let bits = (low >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * j);
    }
    mask
}

impl<R: BufRead> RowReader<R> {
    pub fn new(input: R) -> RowReader<R> {
        RowReader {
            input,
            csv: ReaderBuilder::new().delimiter(b' ').build(),
            record: vec![0; 1024],
            ends: [0; 16],
            line: 0,
            plain_lines: 0,
            last_proto: LastProto::default(),
            plain: true,
            consumed: 0,
        }
    }

    /// The offset from the input's start of the next line to be read.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// Line number of the record last read (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next record's fields as byte ranges of `self.record`; `None` at the end.
    fn next_record(&mut self) -> io::Result<Option<usize>> {
        let (mut out, mut nend) = (0, 0);
        let mut overflow = false;
        loop {
            let input = self.input.fill_buf()?;
            let (res, nin, nout, ne) =
                self.csv
                    .read_record(input, &mut self.record[out..], &mut self.ends[nend..]);
            self.input.consume(nin);
            self.consumed += nin as u64;
            out += nout;
            nend += ne;
            match res {
                ReadRecordResult::InputEmpty => continue,
                ReadRecordResult::OutputFull => {
                    if self.record.len() >= 64 * 1024 {
                        return Err(io::Error::other("a line longer than 64 KiB"));
                    }
                    let l = self.record.len();
                    self.record.resize(l * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    // More fields than any row has: read on to the end of the line, then refuse.
                    nend = 0;
                    out = 0;
                    overflow = true;
                }
                ReadRecordResult::Record => {
                    self.line = (self.plain_lines + self.csv.line())
                        .saturating_sub(1)
                        .max(1);
                    if overflow {
                        return Ok(Some(usize::MAX));
                    }
                    return Ok(Some(nend));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// The next row, skipping the header; a line that is not a row is an `Err` for the caller
    /// to report, and reading can go on after it.
    pub fn next_row(&mut self) -> io::Result<Option<Result<Row, BadRow>>> {
        loop {
            if self.plain {
                let buf = self.input.fill_buf()?;
                if let Some((len, fields, k, too_many)) = plain_line(buf) {
                    let got = record_row(&fields, k, too_many, &mut self.last_proto);
                    self.input.consume(len);
                    self.consumed += len as u64;
                    self.plain_lines += 1;
                    match got {
                        None => continue,
                        Some(got) => {
                            self.line = self.plain_lines + self.csv.line() - 1;
                            return Ok(Some(got.map_err(|why| self.bad(why))));
                        }
                    }
                }
            }
            let Some(n) = self.next_record()? else {
                return Ok(None);
            };
            let too_many = n == usize::MAX;
            let mut fields: [&[u8]; 7] = [&[]; 7];
            let mut start = 0;
            let mut k = 0;
            for &end in &self.ends[..if too_many { 0 } else { n }] {
                let f = &self.record[start..end];
                start = end;
                // Runs of spaces make empty fields; a hand-edited file may have them.
                if f.is_empty() {
                    continue;
                }
                if k == 7 {
                    k = 8;
                    break;
                }
                fields[k] = f;
                k += 1;
            }
            if let Some(got) = record_row(&fields, k, too_many, &mut self.last_proto) {
                return Ok(Some(got.map_err(|why| self.bad(why))));
            }
        }
    }

    fn bad(&self, why: String) -> BadRow {
        BadRow {
            line: self.line,
            why,
        }
    }
}

/// The protocol field last read and its number: a day file is sorted by protocol, and the
/// keywords are many to search.
#[derive(Default)]
struct LastProto {
    text: [u8; 16],
    len: usize,
    proto: u8,
}

/// What a record is, from its first seven non-empty fields, how many of those it has (`k`),
/// and whether it has more than seven: `None` for a blank line or the header, else its row
/// or why it is none.
fn record_row(
    fields: &[&[u8]; 7],
    k: usize,
    too_many: bool,
    last: &mut LastProto,
) -> Option<Result<Row, String>> {
    if too_many {
        Some(Err("too many fields".into()))
    } else if k == 0 || fields[0] == b"proto" {
        None
    } else if k != 7 {
        Some(Err(format!("{k} fields, not 7")))
    } else {
        Some(parse_row(fields, last))
    }
}

fn parse_row(f: &[&[u8]; 7], last: &mut LastProto) -> Result<Row, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let proto = if f[0] == &last.text[..last.len] {
        last.proto
    } else {
        let p = proto::parse(f[0]).ok_or_else(|| format!("unknown protocol '{}'", text(f[0])))?;
        if f[0].len() <= last.text.len() {
            last.text[..f[0].len()].copy_from_slice(f[0]);
            (last.len, last.proto) = (f[0].len(), p);
        }
        p
    };
    let port = if f[1] == b"-" {
        None
    } else {
        Some(int::<u16>(f[1]).ok_or_else(|| format!("bad port '{}'", text(f[1])))?)
    };
    let ip = |b: &[u8]| -> Result<Addr, String> {
        text::parse_ipv4(b)
            .or_else(|| text::parse_ipv6(b))
            .or_else(|| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .map(Addr::from)
            })
            .ok_or_else(|| format!("bad address '{}'", text(b)))
    };
    let dst = ip(f[2])?;
    let src = ip(f[3])?;
    let first = seconds(f[4]).ok_or_else(|| format!("bad first_seen '{}'", text(f[4])))?;
    let last = seconds(f[5]).ok_or_else(|| format!("bad last_seen '{}'", text(f[5])))?;
    let count = int::<u64>(f[6]).ok_or_else(|| format!("bad count '{}'", text(f[6])))?;
    if last < first {
        return Err("last_seen before first_seen".into());
    }
    if crate::tables::day_of(first) != crate::tables::day_of(last) {
        return Err("first_seen and last_seen on different days".into());
    }
    Ok(Row {
        key: Key {
            proto,
            port,
            dst,
            src,
        },
        first,
        last,
        count,
    })
}

/// A plain unsigned decimal, at most 20 digits, that fits `T`.
#[inline(always)]
fn int<T: TryFrom<u64>>(b: &[u8]) -> Option<T> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    if b.len() < 20 {
        // Nineteen digits fit a u64 whatever they are: no check per digit. The first eight of
        // a longer number (a time) are read at once.
        let mut rest = b;
        if let Some((head, tail)) = b.split_first_chunk::<8>() {
            v = decimal::eight(head)? as u64;
            rest = tail;
        }
        for &c in rest {
            v = v * 10 + decimal::digit(c)? as u64;
        }
    } else {
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
        }
    }
    T::try_from(v).ok()
}

/// Whole seconds; a fractional timestamp from another writer is cut to its second.
fn seconds(b: &[u8]) -> Option<i64> {
    let v: i64 = match int(b) {
        Some(v) => v,
        None => int(b.split(|&c| c == b'.').next()?)?,
    };
    (0..=crate::policy::MAX_TIMESTAMP).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn times_as_std_writes_them() {
        let mut buf = [0u8; 64];
        let mut t = 1u64;
        let mut times = TimeText::new();
        for v in [
            0u64,
            9,
            999_999_999,
            1_000_000_000,
            1_000_099_999,
            1_710_000_000,
        ]
        .into_iter()
        .chain([9_999_999_999, 10_000_000_000, 253_402_300_799])
        .chain((0..10_000).map(|_| {
            t = t.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            t >> 30
        })) {
            // A time after one of the same first five digits, and after one of others.
            for v in [v, v + 1, v ^ 1] {
                let n = times.write(&mut buf, v);
                assert_eq!(&buf[..n], v.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn rows_round_trip_through_text() {
        let rows = [
            Row {
                key: Key {
                    proto: 6,
                    port: Some(22),
                    dst: Addr::v4([198, 51, 100, 1]),
                    src: Addr::v4([203, 0, 113, 9]),
                },
                first: 1_446_188_056,
                last: 1_446_188_099,
                count: 3,
            },
            Row {
                key: Key {
                    proto: 47,
                    port: None,
                    dst: Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                    src: Addr::v6([0x20, 1, 0xd, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
                },
                first: 5,
                last: 6,
                count: 1,
            },
        ];
        let mut w = RowWriter::new(Vec::new());
        w.header().unwrap();
        for r in &rows {
            w.row(r).unwrap();
        }
        let text = w.into_inner();
        assert_eq!(
            String::from_utf8(text.clone()).unwrap(),
            format!(
                "{HEADER}\nTCP 22 198.51.100.1 203.0.113.9 1446188056 1446188099 3\n\
                 GRE - 2001:db8::1 2001:db8:9::2 5 6 1\n"
            )
        );
        let mut r = RowReader::new(&text[..]);
        assert_eq!(r.next_row().unwrap().unwrap().unwrap(), rows[0]);
        assert_eq!(r.next_row().unwrap().unwrap().unwrap(), rows[1]);
        assert!(r.next_row().unwrap().is_none());
    }

    /// Rows of every protocol, through a buffer of a few rows: the text is std's, in order,
    /// whether the writer is finished or dropped; a failing writer's error reaches the caller.
    #[test]
    fn rows_reach_the_writer_whole_through_a_small_buffer() {
        let mut want = format!("{HEADER}\n");
        let mut rows = Vec::new();
        for i in 0..5000u64 {
            // Runs of two or three rows that share protocol, port and destination, as
            // sorted rows do, in pairs of runs that share only protocol and port.
            let j = i * 2 / 5;
            let proto = (j / 2 % 256) as u8;
            let first = 1_700_000_000 + i as i64 * 37;
            let row = Row {
                key: Key {
                    proto,
                    port: (j / 2 % 3 != 0).then_some((j / 2 * 7919 % 65_536) as u16),
                    dst: if j % 7 == 0 {
                        Addr::v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0, 0, j as u16).octets())
                    } else {
                        Addr::v4([198, 51, 100, (j % 256) as u8])
                    },
                    src: if i % 5 == 0 {
                        Addr::v6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16).octets())
                    } else {
                        Addr::v4([(i >> 8) as u8, 9, 10, (i % 7) as u8])
                    },
                },
                first,
                // Most rows hold one attempt; some a day's worth, some a time past 2286.
                last: match i % 4 {
                    0 | 1 => first,
                    2 => first + 86_000,
                    _ => 253_402_300_799,
                },
                count: 1 + i * i,
            };
            let name = String::from_utf8(proto::name(proto).to_vec()).unwrap();
            let port = row.key.port.map_or("-".to_string(), |p| p.to_string());
            let ip = |a: &Addr| a.to_ip().to_string();
            want += &format!(
                "{name} {port} {} {} {} {} {}\n",
                ip(&row.key.dst),
                ip(&row.key.src),
                row.first,
                row.last,
                row.count
            );
            rows.push(row);
        }
        let mut w = RowWriter::with_capacity(600, Vec::new());
        w.header().unwrap();
        rows.iter().for_each(|r| w.row(r).unwrap());
        assert_eq!(w.bytes, want.len() as u64);
        assert_eq!(String::from_utf8(w.finish().unwrap()).unwrap(), want);
        let mut dropped = Vec::new();
        {
            let mut w = RowWriter::with_capacity(600, &mut dropped);
            w.header().unwrap();
            rows.iter().for_each(|r| w.row(r).unwrap());
        }
        assert_eq!(String::from_utf8(dropped).unwrap(), want);
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        if let Ok(full) = full {
            let mut w = RowWriter::with_capacity(600, full);
            let failed = rows.iter().try_for_each(|r| w.row(r));
            assert!(failed.is_err(), "every write to /dev/full fails");
        }
        let mut w = RowWriter::new(std::fs::File::open("/dev/null").unwrap());
        w.row(&rows[0]).unwrap();
        assert!(
            w.finish().is_err(),
            "a file opened to read cannot be written"
        );
    }

    /// A row or a bad line's number and reason, and the reader's position after it.
    type Read = (Result<Row, (u64, String)>, u64);

    /// Every row and error a reader gives, to the end.
    fn read_all(text: &[u8], buffer: usize, plain: bool) -> Vec<Read> {
        let mut r = RowReader::new(io::BufReader::with_capacity(buffer, text));
        r.plain = plain;
        let mut out = Vec::new();
        while let Some(got) = r.next_row().unwrap() {
            out.push((got.map_err(|e| (e.line, e.why)), r.position()));
        }
        out
    }

    #[test]
    fn plain_lines_read_as_csv_core_reads_them() {
        // Lines as we write them, and as a hand or another tool may: quoted fields, CRLF and
        // lone CR ends, runs of spaces, blank lines, headers, too few and too many fields,
        // bad values, a last line without its end; through buffers that cut lines anywhere.
        let pieces: [&[u8]; 27] = [
            b"TCP 80 1.2.3.4 5.6.7.8 10 20 2\xc3\xa9\n",
            b"TCP! 80 1.2.3.4 5.6.7.8 10 20 #2\n",
            b"UDP 53 2001:db8:100::1234 2001:db8:2120:ba39::1c 1767225600 1767225600 1\n",
            b"TCP\t80 1.2.3.4 5.6.7.8\x7f 10 20 2\xff\n",
            b"TCP 80 1.2.3.4 5.6.7.8 10 20 2\n",
            b"UDP - 2001:db8::1 198.51.100.7 1767225600 1767225660 7\n",
            b"proto dst_port dst_ip src_ip first_seen last_seen count\n",
            b"\"TCP\" 443 1.2.3.4 5.6.7.8 10 20 3\n",
            b"TCP 22 1.2.3.4 5.6.7.8 10 20 4\r\n",
            b"TCP 23 1.2.3.4 5.6.7.8 10 20 5\r",
            b"  TCP   25 1.2.3.4  5.6.7.8 10 20 6  \n",
            b"\n",
            b"   \n",
            b"TCP 80 1.2.3.4\n",
            b"TCP 80 1.2.3.4 5.6.7.8 10 20 2 extra\n",
            b"a b c d e f g h i j k l m n o p q r s t\n",
            b"a b c d e f g h i j k l m n o p\n",
            b"a b c d e f g h i j k l m n o p q\n",
            b"TCP eighty 1.2.3.4 5.6.7.8 10 20 2\n",
            b"TCP 80 1.2.3.4 5.6.7.8 30 20 2\n",
            b"\"UDP 53\" 1.2.3.4 5.6.7.8 10 20 2\n",
            b"ICMP - 1.2.3.4 5.6.7.8 1 1 1",
            b"TCP 8080 10.0.0.1 10.0.0.2 1 2 3\n",
            b"tcp 8081 10.0.0.1 10.0.0.2 1 2 3\n",
            b"47 - 10.0.0.1 10.0.0.2 1 2 3\n",
            b"GRE - 10.0.0.1 10.0.0.2 1 2 3\n",
            b"BOGUS 1 10.0.0.1 10.0.0.2 1 2 3\n",
        ];
        let mut x = 0x853c_49e6_748f_ea9bu64;
        let (mut plain_rows, mut written) = (0, 0);
        for round in 0..300 {
            let mut text = Vec::new();
            for _ in 0..40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.extend_from_slice(pieces[(x % pieces.len() as u64) as usize]);
            }
            // The way for lines as we write them agrees with the general one wherever it
            // takes a line, from any byte on.
            for at in 0..text.len().saturating_sub(64) {
                let b = text[at..].first_chunk::<64>().expect("64 bytes");
                if let Some(line) = written_line(b) {
                    assert_eq!(Some(line), any_plain_line(&text[at..]), "at {at}");
                    written += 1;
                }
            }
            let buffer = [3, 17, 64, 8192][round % 4];
            let want = read_all(&text, buffer, false);
            let got = read_all(&text, buffer, true);
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&text));
            plain_rows += got.iter().filter(|(r, _)| r.is_ok()).count();
        }
        assert!(plain_rows > 3000, "{plain_rows}");
        assert!(written > 3000, "{written}");
    }

    #[test]
    fn every_byte_at_most_a_quote_is_found() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for round in 0..20_000 {
            let mut b = [0u8; 64];
            for c in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every byte value somewhere, and runs of the ones around the edge.
                *c = match round % 3 {
                    0 => x as u8,
                    1 => 0x1f + (x % 6) as u8,
                    _ => [b' ', b'#', b'"', b'!', 0x80, 0xa3, 0xff, b'a'][(x % 8) as usize],
                };
            }
            let want = b
                .iter()
                .enumerate()
                .fold(0u64, |m, (j, &c)| m | ((c <= b'"') as u64) << j);
            assert_eq!(low_mask(&b), want, "{b:?}");
            assert_eq!(low_mask_words(&b), want, "{b:?}");
        }
    }

    #[test]
    fn protocols_read_by_name_or_number_in_runs_and_alone() {
        let text = b"TCP 1 1.2.3.4 5.6.7.8 1 1 1\nTCP 2 1.2.3.4 5.6.7.8 1 1 1\n\
            UDP 3 1.2.3.4 5.6.7.8 1 1 1\nUDP 4 1.2.3.4 5.6.7.8 1 1 1\nudp 4 1.2.3.4 5.6.7.8 1 1 1\n\
            47 - 1.2.3.4 5.6.7.8 1 1 1\nGRE - 1.2.3.4 5.6.7.8 1 1 1\nGRE - 1.2.3.4 5.6.7.8 1 1 1\n\
            \"ICMPv6\" - 1.2.3.4 5.6.7.8 1 1 1\nICMPv6 - 1.2.3.4 5.6.7.8 1 1 1\n\
            ICMPV6 - 1.2.3.4 5.6.7.8 1 1 1\nICMP - 1.2.3.4 5.6.7.8 1 1 1\nTCP 6 1.2.3.4 5.6.7.8 1 1 1\n";
        let protos: Vec<u8> = read_all(text, 8192, true)
            .into_iter()
            .map(|(r, _)| r.unwrap().key.proto)
            .collect();
        assert_eq!(protos, [6, 6, 17, 17, 17, 47, 47, 47, 58, 58, 58, 1, 6]);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let text = b"proto dst_port dst_ip src_ip first_seen last_seen count\r\n\
            TCP 80 1.2.3.4 5.6.7.8 10 20 2\r\nTCP eighty 1.2.3.4 5.6.7.8 10 20 2\n\
            TCP 80 1.2.3.4\nUDP 53 1.2.3.4 5.6.7.8 10 20 2 extra\n\nICMP - 1.2.3.4 5.6.7.8 1 1 1";
        let mut r = RowReader::new(&text[..]);
        assert!(r.next_row().unwrap().unwrap().is_ok());
        let e = r.next_row().unwrap().unwrap().unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.why.contains("port"));
        assert!(r.next_row().unwrap().unwrap().is_err());
        assert!(r.next_row().unwrap().unwrap().is_err());
        let last = r.next_row().unwrap().unwrap().unwrap();
        assert_eq!(last.key.proto, 1);
        assert!(r.next_row().unwrap().is_none());
    }
}
