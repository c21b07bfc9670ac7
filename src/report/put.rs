//! `PUT /YYYY-MM-DD.csv`: rows gathered elsewhere (the original tsusen's
//! `curl -T 2015-10-28.csv http://sensor:8339/`) merged into that day's file, per key: earliest
//! first_seen, latest last_seen, summed count.
//!
//! Checks, in this order, each refusal leaving every file as it was: PUT_TOKEN configured (403),
//! `Authorization: Bearer <PUT_TOKEN>` (401, compared in constant time), a day in the path
//! (404), a Content-Length no larger than `PUT_MAX_BYTES` (411, 413). Only then is the body
//! read, as a stream, into a temporary file in the log directory (never whole in memory), with
//! its own time budget; every line must be a row of that day (400 naming the first bad line).
//! The merge itself is `DayFiles::merge_upload`: sorted runs, one k-way merge, a temporary file
//! synced and renamed over the day's file, the directory synced.
//!
//! A running sensor (`tsusen run`) writes the same files. Both sides take an `flock` on the log
//! directory around every write of a day file, so neither renames a file over the other's work,
//! and the sensor notices a file replaced under it (by inode, not only length) and merges its
//! next flush into the new file rather than appending to the old layout: the uploaded rows are
//! neither lost nor counted twice. The same lock works between processes, so a `tsusen serve`
//! beside a `tsusen run` on one directory is safe too.

use super::api::Report;
use super::days;
use crate::policy::{PUT_BODY_SECONDS, PUT_MAX_BYTES};
use crate::store::{DayFiles, RowReader};
use picoserve::io::Read;
use picoserve::request::{RequestBodyConnection, RequestParts};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Rows sorted in memory at a time while merging an upload (64 B each: 8 MiB).
const PUT_SORT_CHUNK: usize = 128 * 1024;
/// Bytes read from the socket per write to the spool file.
const READ_CHUNK: usize = 16 * 1024;

/// A PUT's outcome: status and a one-line text.
pub struct PutReply {
    pub status: u16,
    pub text: String,
    /// 401 asks for a bearer token.
    pub challenge: bool,
}

fn reply(status: u16, text: impl Into<String>) -> PutReply {
    PutReply {
        status,
        text: text.into(),
        challenge: false,
    }
}

/// Equal in constant time for a given length: the comparison does not stop at the first
/// differing byte, so its timing does not tell an attacker how much of a guess was right.
pub fn same_secret(given: &[u8], want: &[u8]) -> bool {
    let mut diff = (given.len() != want.len()) as u8;
    for (i, &w) in want.iter().enumerate() {
        diff |= w ^ given.get(i).copied().unwrap_or(!w);
    }
    diff == 0
}

/// The checks before the body is read; `Ok(day)` when it may be.
fn admit(report: &Report, parts: &RequestParts<'_>, length: usize) -> Result<i64, PutReply> {
    let Some(token) = report.settings.put_token.as_deref() else {
        return Err(reply(
            403,
            "PUT is turned off on this sensor: set PUT_TOKEN in its tsusen.conf to accept uploads",
        ));
    };
    let headers = parts.headers();
    let given = headers
        .get("authorization")
        .map(|v| v.as_raw())
        .unwrap_or_default();
    let ok = given.len() > 7
        && given[..7].eq_ignore_ascii_case(b"bearer ")
        && same_secret(given[7..].trim_ascii(), token.as_bytes());
    if !ok {
        return Err(PutReply {
            status: 401,
            text: "an 'Authorization: Bearer <PUT_TOKEN>' header is needed".into(),
            challenge: true,
        });
    }
    let path = parts.path().encoded();
    let Some(day) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix(".csv"))
        .and_then(days::parse_date)
    else {
        return Err(reply(404, "PUT goes to /YYYY-MM-DD.csv"));
    };
    if headers.get("transfer-encoding").is_some() {
        return Err(reply(
            411,
            "send the file with a Content-Length (chunked bodies are not taken)",
        ));
    }
    if length as u64 > PUT_MAX_BYTES {
        return Err(reply(
            413,
            format!("the body is larger than the limit of {PUT_MAX_BYTES} bytes"),
        ));
    }
    Ok(day)
}

/// Handles one PUT to the end: checks, body, merge.
pub async fn handle<R: Read>(
    report: &Arc<Report>,
    parts: &RequestParts<'_>,
    body: &mut RequestBodyConnection<'_, R>,
) -> PutReply {
    let length = body.content_length();
    let day = match admit(report, parts, length) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let dir = report.settings.log_directory.clone();
    let spool = match spool_path(&dir, day) {
        Ok(p) => p,
        Err(e) => {
            log::error!("PUT: {}: {e}", dir.display());
            return reply(500, "the log directory cannot be written");
        }
    };
    let received = receive(body, length, &spool).await;
    let result = match received {
        Ok(()) => {
            let report = report.clone();
            let spool2 = spool.clone();
            tokio::task::spawn_blocking(move || merge(&report, day, &spool2))
                .await
                .unwrap_or_else(|e| {
                    log::error!("PUT: the merge failed: {e}");
                    reply(500, "internal error")
                })
        }
        Err(r) => r,
    };
    let _ = std::fs::remove_file(&spool);
    if result.status == 200 {
        log::info!("PUT {}: {}", days::date_text(day), result.text);
    }
    result
}

/// A temporary file for the body, beside the day files (cleared by a sensor's start like its
/// own temporary files if we die with it).
fn spool_path(dir: &Path, day: i64) -> std::io::Result<PathBuf> {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::fs::create_dir_all(dir)?;
    Ok(dir.join(format!(
        ".{}.csv.put{}-{}.upload.tmp",
        days::date_text(day),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )))
}

/// Streams the body into `spool`, within `PUT_BODY_SECONDS`.
async fn receive<R: Read>(
    body: &mut RequestBodyConnection<'_, R>,
    length: usize,
    spool: &Path,
) -> Result<(), PutReply> {
    let mut file = File::create(spool).map_err(|e| {
        log::error!("PUT: {}: {e}", spool.display());
        reply(500, "the log directory cannot be written")
    })?;
    let deadline = Box::pin(tokio::time::sleep(Duration::from_secs(PUT_BODY_SECONDS)));
    let mut reader = body.body().reader().with_different_timeout_signal(deadline);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut got = 0usize;
    while got < length {
        let n = match reader.read(&mut buf).await {
            Ok(0) => {
                return Err(reply(
                    400,
                    format!("the body ended after {got} of {length} bytes"),
                ))
            }
            Ok(n) => n,
            Err(_) => {
                return Err(reply(
                    408,
                    format!("the body did not arrive within {PUT_BODY_SECONDS} s"),
                ))
            }
        };
        got += n;
        // Small writes into the page cache: not worth a trip to the blocking pool.
        if let Err(e) = file.write_all(&buf[..n]) {
            log::error!("PUT: {}: {e}", spool.display());
            return Err(reply(507, "no room for the upload in the log directory"));
        }
    }
    Ok(())
}

/// Checks every line of the spooled body, then merges it (on a blocking thread).
fn merge(report: &Report, day: i64, spool: &Path) -> PutReply {
    let rows = match check_rows(day, spool) {
        Ok(n) => n,
        Err(r) => return r,
    };
    // One upload at a time: each sorts up to `PUT_SORT_CHUNK` rows in memory.
    let _one = report.put_lock.lock().unwrap_or_else(|p| p.into_inner());
    let dir = &report.settings.log_directory;
    let tag = format!("put{}", std::process::id());
    let merged =
        DayFiles::attach(dir, PUT_SORT_CHUNK).and_then(|mut f| f.merge_upload(day, spool, &tag));
    match merged {
        Ok(total) => {
            report.puts.fetch_add(1, Ordering::Relaxed);
            reply(
                200,
                format!(
                    "merged {rows} rows into {}.csv, which now has {total} rows",
                    days::date_text(day)
                ),
            )
        }
        Err(e) => {
            log::error!("PUT {}: {e}", days::date_text(day));
            reply(500, "the merge failed; the day's file is unchanged")
        }
    }
}

/// Every line a row of `day` (the header line may be there or not); the rows counted.
fn check_rows(day: i64, spool: &Path) -> Result<u64, PutReply> {
    let file = File::open(spool).map_err(|e| {
        log::error!("PUT: {}: {e}", spool.display());
        reply(500, "internal error")
    })?;
    let mut reader = RowReader::new(BufReader::with_capacity(64 * 1024, file));
    let mut rows = 0u64;
    loop {
        match reader.next_row() {
            Ok(None) => return Ok(rows),
            Ok(Some(Ok(row))) => {
                if row.day() != day {
                    return Err(reply(
                        400,
                        format!(
                            "line {}: a row of {}, not of {}; nothing was changed",
                            reader.line(),
                            days::date_text(row.day()),
                            days::date_text(day)
                        ),
                    ));
                }
                rows += 1;
            }
            Ok(Some(Err(bad))) => {
                return Err(reply(
                    400,
                    format!("line {}: {}; nothing was changed", bad.line, bad.why),
                ))
            }
            Err(e) => {
                return Err(reply(
                    400,
                    format!("line {}: {e}; nothing was changed", reader.line() + 1),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }
}
