//! The HTTP side: one picoserve service that checks each request against our limits, routes it,
//! and writes the answer (gzip when the client takes it). API work runs on tokio's blocking
//! pool so one slow merge never holds up the other connections' timeouts.
//!
//! Limits: picoserve reads the request line and headers into a fixed buffer (`HTTP_BUFFER`);
//! a request that does not fit is refused with 400 before it reaches us. It times out a client
//! that is slow to start a request or to finish sending it (slowloris), and each write. We
//! refuse more than `MAX_HEADERS` headers, any request body but a PUT's, and methods other than
//! GET/HEAD/PUT; a path reaches the filesystem only as a date checked by `days::parse_date`.
//! PUT (`put`) reads its body as a stream, with its own size limit and time budget, and only
//! once the bearer token has been checked.

use super::api::{Refusal, Report};
use super::days;
use flate2::write::GzEncoder;
use flate2::Compression;
use picoserve::io::Read;
use picoserve::request::{Path, Request, RequestParts};
use picoserve::response::{
    Content, ForEachHeader, HeadersIter, IntoResponse, Response, ResponseWriter, StatusCode,
};
use picoserve::routing::PathRouterService;
use picoserve::ResponseSent;
use std::io::{Read as _, Write as _};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// Bytes for a request line and its headers.
pub const HTTP_BUFFER: usize = 8 * 1024;
/// Headers in one request.
pub const MAX_HEADERS: usize = 40;
/// Answers smaller than this are not worth compressing.
const GZIP_FLOOR: usize = 1024;
/// Bytes read from a day file per write when downloading it.
const FILE_CHUNK: usize = 64 * 1024;

/// The page: HTML, CSS and JS in one file, compiled in.
pub const PAGE: &str = include_str!("page.html");

/// The page gzipped once, at the highest level (it never changes).
pub fn page_gz() -> &'static [u8] {
    static GZ: OnceLock<Vec<u8>> = OnceLock::new();
    GZ.get_or_init(|| gzip(PAGE.as_bytes(), Compression::best()))
}

fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), level);
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Policy for pages and answers: nothing from another origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

enum Payload {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    /// A day file, `len` bytes of it.
    File(std::fs::File, u64),
}

/// An answer before it is written.
struct Reply {
    status: u16,
    content_type: &'static str,
    payload: Payload,
    headers: Vec<(&'static str, String)>,
    /// HEAD: the headers of the GET answer without its body.
    head: bool,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, payload: Payload) -> Reply {
        Reply {
            status,
            content_type,
            payload,
            headers: Vec::new(),
            head: false,
        }
    }

    fn text(status: u16, msg: &str) -> Reply {
        Reply::new(
            status,
            "text/plain; charset=utf-8",
            Payload::Owned(format!("{msg}\n").into_bytes()),
        )
    }

    fn json(status: u16, body: &str, gzip_ok: bool) -> Reply {
        let mut r = Reply::new(
            status,
            "application/json",
            Payload::Owned(body.as_bytes().to_vec()),
        );
        r.compress(gzip_ok);
        r.headers.push(("Cache-Control", "no-store".into()));
        r
    }

    fn refusal(r: Refusal) -> Reply {
        let mut body = String::from("{\"error\":");
        crate::json::string(&mut body, &r.1);
        body.push('}');
        Reply::json(r.0, &body, false)
    }

    /// Compresses an owned answer in place when the client takes gzip.
    fn compress(&mut self, gzip_ok: bool) {
        if let Payload::Owned(v) = &self.payload {
            if gzip_ok && v.len() >= GZIP_FLOOR {
                self.payload = Payload::Owned(gzip(v, Compression::fast()));
                self.headers.push(("Content-Encoding", "gzip".into()));
            }
            self.headers.push(("Vary", "Accept-Encoding".into()));
        }
    }

    fn len(&self) -> usize {
        match &self.payload {
            Payload::Static(b) => b.len(),
            Payload::Owned(v) => v.len(),
            Payload::File(_, n) => *n as usize,
        }
    }
}

/// The body as picoserve writes it.
struct Body {
    content_type: &'static str,
    len: usize,
    payload: Option<Payload>,
}

impl Content for Body {
    fn content_type(&self) -> &'static str {
        self.content_type
    }

    fn content_length(&self) -> usize {
        self.len
    }

    async fn write_content<W: picoserve::io::Write>(self, mut w: W) -> Result<(), W::Error> {
        match self.payload {
            None => Ok(()),
            Some(Payload::Static(b)) => w.write_all(b).await,
            Some(Payload::Owned(v)) => w.write_all(&v).await,
            Some(Payload::File(f, len)) => {
                // Reads from the page cache are short; the socket write is what waits.
                let mut f = f.take(len);
                let mut buf = vec![0u8; FILE_CHUNK];
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    w.write_all(&buf[..n]).await?;
                }
                Ok(())
            }
        }
    }
}

struct Headers(Vec<(&'static str, String)>);

impl HeadersIter for Headers {
    async fn for_each_header<F: ForEachHeader>(self, mut f: F) -> Result<F::Output, F::Error> {
        for (name, value) in self.0 {
            f.call(name, value).await?;
        }
        f.finalize().await
    }
}

/// What we keep of a request once its buffer is released.
struct Asked {
    head: bool,
    path: String,
    query: String,
    gzip: bool,
}

/// The one service behind every path.
pub struct App {
    pub report: Arc<Report>,
}

impl PathRouterService for App {
    async fn call_path_router_service<R: Read, W: ResponseWriter<Error = R::Error>>(
        &self,
        _state: &(),
        _path_parameters: (),
        _path: Path<'_>,
        mut request: Request<'_, R>,
        response_writer: W,
    ) -> Result<ResponseSent, W::Error> {
        let body_length = request.body_connection.content_length();
        let reply = if request.parts.method() == "PUT" {
            self.put(&request.parts, &mut request.body_connection).await
        } else {
            match check(&request.parts, body_length) {
                Ok(asked) => self.answer(asked).await,
                Err(reply) => reply,
            }
        };
        self.report.requests.fetch_add(1, Ordering::Relaxed);
        if reply.status >= 400 {
            self.report.refused.fetch_add(1, Ordering::Relaxed);
        }
        let connection = request.body_connection.finalize().await?;
        let mut headers = reply.headers;
        headers.push(("X-Content-Type-Options", "nosniff".into()));
        headers.push(("Referrer-Policy", "no-referrer".into()));
        let body = Body {
            content_type: reply.content_type,
            len: match &reply.payload {
                Payload::Static(b) => b.len(),
                Payload::Owned(v) => v.len(),
                Payload::File(_, n) => *n as usize,
            },
            payload: (!reply.head).then_some(reply.payload),
        };
        Response::new(StatusCode::new(reply.status), body)
            .with_headers(Headers(headers))
            .write_to(connection, response_writer)
            .await
    }
}

/// Refuses what breaks our limits; else keeps what the answer needs.
fn check(parts: &RequestParts<'_>, body_length: usize) -> Result<Asked, Reply> {
    let head = match parts.method() {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = Reply::text(405, "method not allowed");
            r.headers.push(("Allow", "GET, HEAD, PUT".into()));
            return Err(r);
        }
    };
    let headers = parts.headers();
    if headers.iter().nth(MAX_HEADERS).is_some() {
        return Err(Reply::text(431, "too many headers"));
    }
    if body_length > 0 {
        return Err(Reply::text(413, "no request body is accepted"));
    }
    let gzip = headers.get("accept-encoding").is_some_and(|v| {
        v.as_str().unwrap_or("").split(',').any(|t| {
            let mut it = t.split(';');
            let coding = it.next().unwrap_or("").trim();
            // `gzip;q=0` means "not gzip".
            let refused = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    == Some(0.0)
            });
            coding.eq_ignore_ascii_case("gzip") && !refused
        })
    });
    Ok(Asked {
        head,
        path: parts.path().encoded().to_owned(),
        query: parts.query().map(|q| q.0.to_owned()).unwrap_or_default(),
        gzip,
    })
}

impl App {
    /// `PUT /YYYY-MM-DD.csv` (see `put`).
    async fn put<R: Read>(
        &self,
        parts: &RequestParts<'_>,
        body: &mut picoserve::request::RequestBodyConnection<'_, R>,
    ) -> Reply {
        if parts.headers().iter().nth(MAX_HEADERS).is_some() {
            return Reply::text(431, "too many headers");
        }
        let p = super::put::handle(&self.report, parts, body).await;
        let mut r = Reply::text(p.status, &p.text);
        if p.challenge {
            r.headers
                .push(("WWW-Authenticate", "Bearer realm=\"tsusen\"".into()));
        }
        r.headers.push(("Cache-Control", "no-store".into()));
        r
    }

    async fn answer(&self, asked: Asked) -> Reply {
        let mut reply = match asked.path.as_str() {
            "/" | "/index.html" => page(asked.gzip),
            "/api/trendlines" | "/api/attempts" | "/api/summary" | "/metrics" => {
                self.blocking(asked.path.clone(), asked.query, asked.gzip)
                    .await
            }
            p => match p
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix(".csv"))
                .and_then(days::parse_date)
            {
                Some(day) => self.csv(day),
                None => Reply::text(404, "not found"),
            },
        };
        reply.head = asked.head;
        reply
    }

    /// An API answer computed on the blocking pool.
    async fn blocking(&self, path: String, query: String, gzip_ok: bool) -> Reply {
        let report = self.report.clone();
        let work = move || -> Reply {
            let answer = match path.as_str() {
                "/api/trendlines" => report.trendlines(&query),
                "/api/attempts" => report.attempts(&query),
                "/api/summary" => report.summary(&query),
                _ => {
                    let mut r = Reply::new(
                        200,
                        "text/plain; version=0.0.4; charset=utf-8",
                        Payload::Owned(report.metrics().into_bytes()),
                    );
                    r.compress(gzip_ok);
                    return r;
                }
            };
            match answer {
                Ok(json) => Reply::json(200, &json, gzip_ok),
                Err(refusal) => Reply::refusal(refusal),
            }
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(e) => {
                log::error!("report: an API call failed: {e}");
                Reply::text(500, "internal error")
            }
        }
    }

    /// `/YYYY-MM-DD.csv`: the day's file as it is on disk.
    fn csv(&self, day: i64) -> Reply {
        let path = days::path(&self.report.settings.log_directory, day);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return Reply::text(404, "no file for that day"),
        };
        let len = match file.metadata() {
            Ok(m) if m.is_file() => m.len(),
            _ => return Reply::text(404, "no file for that day"),
        };
        let mut r = Reply::new(200, "text/csv; charset=utf-8", Payload::File(file, len));
        r.headers.push((
            "Content-Disposition",
            format!("attachment; filename=\"{}.csv\"", days::date_text(day)),
        ));
        r.headers.push(("Cache-Control", "no-cache".into()));
        debug_assert_eq!(r.len() as u64, len);
        r
    }
}

fn page(gzip_ok: bool) -> Reply {
    let mut r = if gzip_ok {
        let mut r = Reply::new(200, "text/html; charset=utf-8", Payload::Static(page_gz()));
        r.headers.push(("Content-Encoding", "gzip".into()));
        r
    } else {
        Reply::new(
            200,
            "text/html; charset=utf-8",
            Payload::Static(PAGE.as_bytes()),
        )
    };
    r.headers.push(("Vary", "Accept-Encoding".into()));
    r.headers.push(("Cache-Control", "no-cache".into()));
    r.headers.push(("Content-Security-Policy", CSP.into()));
    r.headers.push(("X-Frame-Options", "DENY".into()));
    r
}
