//! The daily file's rows as text: `proto dst_port dst_ip src_ip first_seen last_seen count`,
//! one space between fields, as the original tsusen wrote them.

use crate::addr::Addr;
use crate::proto;
use crate::tables::{Key, Row};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder, WriteResult, Writer, WriterBuilder};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;

pub const HEADER: &str = "proto dst_port dst_ip src_ip first_seen last_seen count";

/// Writes rows through csv-core into any writer, counting the bytes.
pub struct RowWriter<W: Write> {
    out: W,
    csv: Writer,
    buf: [u8; 256],
    pub bytes: u64,
}

impl<W: Write> RowWriter<W> {
    pub fn new(out: W) -> RowWriter<W> {
        RowWriter {
            out,
            csv: WriterBuilder::new().delimiter(b' ').build(),
            buf: [0; 256],
            bytes: 0,
        }
    }

    pub fn header(&mut self) -> io::Result<()> {
        let fields: Vec<&[u8]> = HEADER.split(' ').map(str::as_bytes).collect();
        self.record(&fields)
    }

    pub fn row(&mut self, r: &Row) -> io::Result<()> {
        let mut pbuf = [0u8; 4];
        let name = proto::name(r.key.proto, &mut pbuf);
        let mut port = [0u8; 20];
        let port = match r.key.port {
            None => &b"-"[..],
            Some(p) => decimal(&mut port, p as u64),
        };
        let mut dst = [0u8; 48];
        let dst = address(&mut dst, &r.key.dst);
        let mut src = [0u8; 48];
        let src = address(&mut src, &r.key.src);
        // Timestamps are checked to lie in 0..=MAX_TIMESTAMP where rows are made.
        let mut first = [0u8; 20];
        let first = decimal(&mut first, r.first.max(0) as u64);
        let mut last = [0u8; 20];
        let last = decimal(&mut last, r.last.max(0) as u64);
        let mut count = [0u8; 20];
        let count = decimal(&mut count, r.count);
        self.record(&[name, port, dst, src, first, last, count])
    }

    fn record(&mut self, fields: &[&[u8]]) -> io::Result<()> {
        let mut n = 0;
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                let (res, k) = self.csv.delimiter(&mut self.buf[n..]);
                debug_assert_eq!(res, WriteResult::InputEmpty);
                n += k;
            }
            // Fields are short tokens: the 256-byte buffer always holds a whole record.
            let (res, _, k) = self.csv.field(f, &mut self.buf[n..]);
            if res != WriteResult::InputEmpty {
                return Err(io::Error::other("row longer than the CSV buffer"));
            }
            n += k;
        }
        let (res, k) = self.csv.terminator(&mut self.buf[n..]);
        if res != WriteResult::InputEmpty {
            return Err(io::Error::other("row longer than the CSV buffer"));
        }
        n += k;
        self.out.write_all(&self.buf[..n])?;
        self.bytes += n as u64;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Writes `v` in decimal at the end of `buf`; formatting by hand because rows are written by
/// the million and `fmt` costs several times more.
#[inline]
fn decimal(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[inline]
fn address<'a>(buf: &'a mut [u8; 48], a: &Addr) -> &'a [u8] {
    if a.is_v6() {
        // RFC 5952 text, which std writes; IPv6 rows are the rarer kind.
        let mut cur = io::Cursor::new(&mut buf[..]);
        let _ = write!(cur, "{a}");
        let n = cur.position() as usize;
        return &buf[..n];
    }
    let mut n = 0;
    for (k, &octet) in a.bytes()[..4].iter().enumerate() {
        if k > 0 {
            buf[n] = b'.';
            n += 1;
        }
        let mut d = [0u8; 20];
        let digits = decimal(&mut d, octet as u64);
        buf[n..n + digits.len()].copy_from_slice(digits);
        n += digits.len();
    }
    &buf[..n]
}

/// A row that could not be read, and where.
#[derive(Debug)]
pub struct BadRow {
    pub line: u64,
    pub why: String,
}

/// Reads rows from a daily file (ours or the original tsusen's) one at a time.
pub struct RowReader<R: BufRead> {
    input: R,
    csv: Reader,
    record: Vec<u8>,
    ends: [usize; 16],
    line: u64,
}

impl<R: BufRead> RowReader<R> {
    pub fn new(input: R) -> RowReader<R> {
        RowReader {
            input,
            csv: ReaderBuilder::new().delimiter(b' ').build(),
            record: vec![0; 1024],
            ends: [0; 16],
            line: 0,
        }
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
                    self.line = self.csv.line().saturating_sub(1).max(1);
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
            let Some(n) = self.next_record()? else {
                return Ok(None);
            };
            if n == usize::MAX {
                return Ok(Some(Err(self.bad("too many fields".into()))));
            }
            let mut fields: [&[u8]; 7] = [&[]; 7];
            let mut start = 0;
            let mut k = 0;
            for &end in &self.ends[..n] {
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
            if k == 0 {
                continue;
            }
            if fields[0] == b"proto" {
                continue;
            }
            if k != 7 {
                return Ok(Some(Err(self.bad(format!("{k} fields, not 7")))));
            }
            return Ok(Some(parse_row(&fields).map_err(|why| self.bad(why))));
        }
    }

    fn bad(&self, why: String) -> BadRow {
        BadRow {
            line: self.line,
            why,
        }
    }
}

fn parse_row(f: &[&[u8]; 7]) -> Result<Row, String> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let proto = proto::parse(f[0]).ok_or_else(|| format!("unknown protocol '{}'", text(f[0])))?;
    let port = if f[1] == b"-" {
        None
    } else {
        Some(int::<u16>(f[1]).ok_or_else(|| format!("bad port '{}'", text(f[1])))?)
    };
    let ip = |b: &[u8]| -> Result<Addr, String> {
        parse_ipv4(b)
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
fn int<T: TryFrom<u64>>(b: &[u8]) -> Option<T> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    T::try_from(v).ok()
}

/// Dotted-quad IPv4 without leading signs or spaces; `None` sends the text to std's parser.
fn parse_ipv4(b: &[u8]) -> Option<Addr> {
    let mut octets = [0u8; 4];
    let mut parts = b.split(|&c| c == b'.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return None;
        }
        *o = int::<u8>(part)?;
    }
    parts.next().is_none().then(|| Addr::v4(octets))
}

/// Whole seconds; a fractional timestamp from another writer is cut to its second.
fn seconds(b: &[u8]) -> Option<i64> {
    let whole = b.split(|&c| c == b'.').next()?;
    let v: i64 = int(whole)?;
    (0..=crate::policy::MAX_TIMESTAMP).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

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
