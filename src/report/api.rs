//! The JSON answers and the metrics, each a plain function of the query string. They run on a
//! blocking thread (see `http`), so a merge of a million rows never stalls the connections.

use super::bigday;
use super::data::{Data, DayStats, PeriodKey, Snapshot, TOP};
use super::days::date_text;
use super::geoip::Geo;
use super::live::LiveHandle;
use super::query::{Filter, Query};
use super::services;
use super::tools::{self, EventTools, Labels};
use super::trend::{self, Rules};
use crate::json;
use crate::proto::{self, SortRank};
use crate::tables::{Row, RowOrder};
use std::cmp::Ordering;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest period one request may cover, in days with files.
const MAX_PERIOD_DAYS: usize = 366;
/// Rows per page: default and most.
const PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 500;
/// Answers kept, by query: the page's refresh and every viewer of the same view reuse them
/// until a file or the live figures change.
const ANSWERS_KEPT: usize = 32;
/// Bytes of answers kept per row of REPORT_CACHE_ROWS: a sixteenth of a row's 64, so 4 MiB by
/// default (32 answers of at most 500 rows or 40 series by 366 days fit in about 3 MiB).
const ANSWER_BYTES_PER_ROW: usize = 4;
/// How long a request waits for the sensor to publish fresher live figures.
pub(super) const LIVE_WAIT: Duration = Duration::from_millis(1500);

/// What the report needs from the settings.
#[derive(Clone, Debug)]
pub struct ReportSettings {
    pub log_directory: PathBuf,
    pub trendline_period: u32,
    pub trendline_daily_threshold: u32,
    pub trendline_daily_burst: u32,
    /// `PUT /YYYY-MM-DD.csv` needs `Authorization: Bearer` this; `None`: PUT refused.
    pub put_token: Option<String>,
    pub geoip_database: Option<PathBuf>,
    pub asn_database: Option<PathBuf>,
    /// EVENTS_FILE, where tool labels outlive the sensor's memory.
    pub event_file: Option<PathBuf>,
    /// The spike rule the events use, so the page marks the same spikes.
    pub spike: crate::detect::spike::SpikeRule,
    /// REPORT_CACHE_ROWS: what the caches keep between requests (see `data`).
    pub cache_rows: usize,
    /// REPORT_REQUEST_ROWS: the rows one request may read (see `data`).
    pub request_rows: usize,
}

impl ReportSettings {
    pub fn from_settings(s: &crate::config::Settings) -> ReportSettings {
        ReportSettings {
            log_directory: s.log_directory.clone(),
            trendline_period: s.trendline_period,
            trendline_daily_threshold: s.trendline_daily_threshold,
            trendline_daily_burst: s.trendline_daily_burst,
            put_token: s.put_token.clone(),
            geoip_database: s.geoip_database.clone(),
            asn_database: s.asn_database.clone(),
            event_file: s.event_file.clone(),
            spike: s.spike.clone(),
            cache_rows: s.report_cache_rows,
            request_rows: s.report_request_rows,
        }
    }
}

/// An answer that is not a 200: status and a one-line reason.
#[derive(Debug)]
pub struct Refusal(pub u16, pub String);

impl From<String> for Refusal {
    fn from(s: String) -> Refusal {
        Refusal(400, s)
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Refusal {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            // A period (or one day) too large for this board's memory: the asker can narrow it.
            log::info!("report: refused: {e}");
            return Refusal(
                400,
                "the period holds more rows than one request may read (REPORT_REQUEST_ROWS): \
                 ask for fewer days"
                    .into(),
            );
        }
        log::error!("report: {e}");
        Refusal(500, "the log directory cannot be read".into())
    }
}

/// The report's shared state: settings, the live handle and the data caches.
pub struct Report {
    pub settings: ReportSettings,
    /// Countries and AS of sources, for the rows shown.
    pub geo: Geo,
    /// Tool labels from the events file (the live sensor's own come with its summary).
    event_tools: EventTools,
    pub live: LiveHandle,
    data: Mutex<Data>,
    answers: Mutex<Answers>,
    pub(super) started: Instant,
    rank: SortRank,
    pub requests: AtomicUsize,
    pub refused: AtomicUsize,
    /// One PUT merge at a time.
    pub(super) put_lock: Mutex<()>,
    /// PUT uploads merged into a day file.
    pub puts: AtomicUsize,
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Report {
    pub fn new(settings: ReportSettings, live: LiveHandle) -> Report {
        Report {
            geo: Geo::open(
                settings.geoip_database.as_deref(),
                settings.asn_database.as_deref(),
            ),
            event_tools: EventTools::new(settings.event_file.clone()),
            data: Mutex::new(Data::new(
                settings.log_directory.clone(),
                settings.cache_rows,
                settings.request_rows,
            )),
            answers: Mutex::new(Answers {
                kept: Vec::new(),
                bytes: 0,
                limit: settings.cache_rows.saturating_mul(ANSWER_BYTES_PER_ROW),
            }),
            settings,
            live,
            started: Instant::now(),
            rank: SortRank::new(),
            requests: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            put_lock: Mutex::new(()),
            puts: AtomicUsize::new(0),
        }
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows and bytes the caches hold now, unless a request is busy with them (a merge can
    /// hold the data for a second: the metrics do not wait for it).
    pub(super) fn cache_figures(&self) -> Option<(usize, usize)> {
        let data = self.data.try_lock().ok()?;
        let rows = data.cached_rows();
        let bytes = data.cached_stats_bytes();
        drop(data);
        Some((rows, bytes + self.answers().bytes))
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kept answer to `query` made from the same data, most recent use last.
    fn kept(&self, query: &str, key: &PeriodKey) -> Option<Arc<String>> {
        let mut a = self.answers();
        let i = a.kept.iter().position(|e| e.0 == query && e.1 == *key)?;
        let e = a.kept.remove(i);
        let answer = e.2.clone();
        a.kept.push(e);
        Some(answer)
    }

    fn keep(&self, query: String, key: PeriodKey, answer: Arc<String>) {
        self.answers().keep(query, key, answer);
    }

    /// A day's figures. A day too large to read streams with the data lock given back, so
    /// that other answers need not wait for it; the lock is taken again after.
    fn day_figures<'a>(
        &'a self,
        data: std::sync::MutexGuard<'a, Data>,
        snap: &Snapshot,
        day: i64,
        filter: &Filter,
    ) -> Result<(std::sync::MutexGuard<'a, Data>, Arc<DayStats>), Refusal> {
        let mut data = data;
        match data.day_stats_or_stream(snap, day, filter)? {
            Ok(stats) => Ok((data, stats)),
            Err(stream) => {
                drop(data);
                let stats = stream.run(filter)?;
                let mut data = self.data();
                data.keep_streamed(&stream, filter, stats.clone());
                Ok((data, stats))
            }
        }
    }

    /// Waits for fresh live figures first (never while holding the data lock), then takes the
    /// lock.
    fn data_and_snapshot(&self) -> Result<(std::sync::MutexGuard<'_, Data>, Snapshot), Refusal> {
        let live = self.live.fresh(LIVE_WAIT, true);
        let mut data = self.data();
        let snap = data.snapshot(live, |generation| self.live.take_rows(generation))?;
        Ok((data, snap))
    }

    /// The days a request covers: the last TRENDLINE_PERIOD days with data, or those within
    /// `from` / `to` (at most a year).
    fn period(&self, snap: &Snapshot, q: &Query) -> Result<Vec<i64>, Refusal> {
        let (from, to) = (q.date("from")?, q.date("to")?);
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(Refusal(400, "from is after to".into()));
            }
        }
        let mut days: Vec<i64> = snap
            .days()
            .into_iter()
            .filter(|d| from.is_none_or(|f| *d >= f) && to.is_none_or(|t| *d <= t))
            .collect();
        let keep = if from.is_some() {
            MAX_PERIOD_DAYS
        } else {
            self.settings.trendline_period.max(1) as usize
        };
        if days.len() > keep {
            days.drain(..days.len() - keep);
        }
        Ok(days)
    }

    /// `/api/trendlines`
    pub fn trendlines(&self, query: &str) -> Result<Arc<String>, Refusal> {
        let q = Query::parse(query)?;
        let filter = Filter::from_query(&q)?;
        let (mut data, snap) = self.data_and_snapshot()?;
        let days = self.period(&snap, &q)?;
        let key = Data::period_key(&snap, &days);
        let cache_key = format!("trendlines?{query}");
        if let Some(a) = self.kept(&cache_key, &key) {
            return Ok(a);
        }
        let mut stats: Vec<Arc<DayStats>> = Vec::with_capacity(days.len());
        for &d in &days {
            let (again, s) = self.day_figures(data, &snap, d, &filter)?;
            data = again;
            stats.push(s);
        }
        drop(data);
        let rules = Rules {
            threshold: self.settings.trendline_daily_threshold,
            burst: self.settings.trendline_daily_burst,
            spike: self.settings.spike.clone(),
        };
        let refs: Vec<&DayStats> = stats.iter().map(|s| s.as_ref()).collect();
        let (series, hidden) = trend::series(&refs, &rules, !filter.is_empty());
        let names: Vec<String> = days.iter().map(|&d| date_text(d)).collect();
        let live = days.last().is_some_and(|d| snap.live_days.contains_key(d));
        let estimated: Vec<String> = days
            .iter()
            .zip(&stats)
            .filter(|(_, s)| s.estimated)
            .map(|(&d, _)| date_text(d))
            .collect();
        let answer = Arc::new(trend::to_json(
            &names, &series, hidden, &rules, live, &estimated,
        ));
        self.keep(cache_key, key, answer.clone());
        Ok(answer)
    }

    /// `/api/attempts`: the period's rows merged per key, filtered, sorted, one page.
    pub fn attempts(&self, query: &str) -> Result<Arc<String>, Refusal> {
        let q = Query::parse(query)?;
        let filter = Filter::from_query(&q)?;
        let column = Column::parse(q.get("sort").unwrap_or("last"))?;
        let desc = match q.get("dir") {
            None => column.descending_first(),
            Some("asc") => false,
            Some("desc") => true,
            Some(d) => return Err(Refusal(400, format!("dir: '{d}' is not asc or desc"))),
        };
        let size = q.number("size", PAGE_SIZE, 1, MAX_PAGE_SIZE)? as usize;
        let page = q.number("page", 1, 1, 1 << 32)? as usize;
        let (mut data, snap) = self.data_and_snapshot()?;
        let days = self.period(&snap, &q)?;
        let key = Data::period_key(&snap, &days);
        let (labels, labels_gen) = self.event_tools.labels();
        // Tool labels are not in the period's key: a change of either source of them makes a
        // new answer.
        let live_tools = if snap.live.tools.is_empty() {
            0
        } else {
            snap.live.generation
        };
        // Whether a sensor runs decides the `tools` column too.
        let sensor = snap.live.generation > 0;
        let cache_key = format!("attempts?{query}#{labels_gen}#{live_tools}#{sensor}");
        if let Some(a) = self.kept(&cache_key, &key) {
            return Ok(a);
        }
        let order = |a: &Row, b: &Row| {
            let c = column.compare(a, b, &self.rank);
            let c = if desc { c.reverse() } else { c };
            // Ties in file order, so that pages never overlap or skip.
            c.then_with(|| key_order(a, b, &self.rank))
        };
        let cmp = |a: &&Row, b: &&Row| order(a, b);
        let view = match data.view(&snap, &days) {
            Ok(view) => Some(view),
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => None,
            Err(e) => return Err(e.into()),
        };
        let streamed;
        let (mut rows, total, attempts): (Vec<&Row>, usize, u64) = match &view {
            Some(view) => {
                drop(data);
                let rows: Vec<&Row> = view.iter().filter(|r| filter.matches(r)).collect();
                let attempts = rows.iter().map(|r| r.count).sum();
                let total = rows.len();
                (rows, total, attempts)
            }
            None => {
                // Too large to read: the rows stream through, and only those up to the page's
                // end, in the order asked for, are held.
                let too_large = "the period holds more rows than one request may read \
                                 (REPORT_REQUEST_ROWS)";
                if column.of_source() {
                    return Err(Refusal(
                        400,
                        format!(
                            "sort: {} needs a lookup for every row and {too_large}: ask for \
                             fewer days or sort by another column",
                            column.name()
                        ),
                    ));
                }
                let keep = page.saturating_mul(size);
                let deepest = data.request_rows() / STREAM_DEPTH_SHARE;
                if keep > deepest {
                    return Err(Refusal(
                        400,
                        format!(
                            "page: {too_large}, and pages are kept to the first {deepest} \
                             rows of its order: ask for fewer days or an earlier page"
                        ),
                    ));
                }
                let stream = data.stream_days(&snap, &days);
                // Other answers need not wait for a stream of seconds.
                drop(data);
                streamed = bigday::stream(
                    &stream,
                    &RowOrder::new(),
                    || Top::new(keep),
                    |t, r| {
                        if filter.matches(r) {
                            t.push(r, order)
                        }
                    },
                )?
                .finish(order);
                (
                    streamed.rows.iter().collect(),
                    streamed.total,
                    streamed.attempts,
                )
            }
        };
        let start = (page - 1).saturating_mul(size).min(total);
        let end = start.saturating_add(size).min(total);
        if view.is_none() {
            // Streamed: in order already.
        } else if column.of_source() {
            // One lookup per row, not per comparison; bounded, as lookups cost a microsecond.
            if total > SOURCE_SORT_MAX_ROWS {
                return Err(Refusal(
                    400,
                    format!(
                        "sort: {} needs a lookup for every row; narrow the filter to at most \
                         {SOURCE_SORT_MAX_ROWS} rows (now {total})",
                        column.name()
                    ),
                ));
            }
            let mut keyed: Vec<(SourceKey, &Row)> = rows
                .iter()
                .map(|r| (self.source_key(column, &snap, &labels, &r.key.src), *r))
                .collect();
            let kcmp = |a: &(SourceKey, &Row), b: &(SourceKey, &Row)| {
                let c = a.0.cmp(&b.0);
                let c = if desc { c.reverse() } else { c };
                c.then_with(|| key_order(a.1, b.1, &self.rank))
            };
            if end > 0 && end < total {
                keyed.select_nth_unstable_by(end - 1, kcmp);
            }
            keyed[..end].sort_unstable_by(kcmp);
            for (i, (_, r)) in keyed[..end].iter().enumerate() {
                rows[i] = r;
            }
        } else {
            // Only the rows up to the page's end need to be in order.
            if end > 0 && end < total {
                rows.select_nth_unstable_by(end - 1, cmp);
            }
            rows[..end].sort_unstable_by(cmp);
        }

        let mut o = String::with_capacity(256 + (end - start) * 110);
        o.push('{');
        let mut first = true;
        json::key(&mut o, &mut first, "days");
        json::strings(&mut o, days.iter().map(|&d| date_text(d)));
        for (k, v) in [
            ("total", total as u64),
            ("attempts", attempts),
            ("page", page as u64),
            ("size", size as u64),
        ] {
            json::key(&mut o, &mut first, k);
            let _ = write!(o, "{v}");
        }
        json::key(&mut o, &mut first, "sort");
        json::string(&mut o, column.name());
        json::key(&mut o, &mut first, "dir");
        json::string(&mut o, if desc { "desc" } else { "asc" });
        // Too large to read, so streamed at each look: the page looks less often.
        json::key(&mut o, &mut first, "streamed");
        o.push_str(if view.is_none() { "true" } else { "false" });
        json::key(&mut o, &mut first, "columns");
        o.push_str(
            r#"["proto","port","service","dst","src","first","last","count","country","asn","as_name","tool"]"#,
        );
        // Which of the last columns can be filled at all: the page leaves out the others.
        for (k, on) in [
            ("geoip", self.geo.has_country()),
            ("asn", self.geo.has_asn()),
            (
                "tools",
                snap.live.generation > 0 || self.event_tools.configured(),
            ),
        ] {
            json::key(&mut o, &mut first, k);
            o.push_str(if on { "true" } else { "false" });
        }
        json::key(&mut o, &mut first, "rows");
        o.push('[');
        for (i, r) in rows[start..end].iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            row_json(&mut o, r);
            self.row_extra(&mut o, &snap, &labels, r);
        }
        o.push_str("]}");
        let answer = Arc::new(o);
        self.keep(cache_key, key, answer.clone());
        Ok(answer)
    }

    /// `/api/summary`: the day's totals (the latest day unless `day=` names one), top ports and
    /// sources, and the sensor's status.
    pub fn summary(&self, query: &str) -> Result<Arc<String>, Refusal> {
        let q = Query::parse(query)?;
        let (mut data, snap) = self.data_and_snapshot()?;
        let all = snap.days();
        let day = match q.date("day")? {
            Some(d) => Some(d),
            None => all.last().copied(),
        };
        let stats = match day {
            Some(d) => {
                let (again, s) = self.day_figures(data, &snap, d, &Filter::default())?;
                data = again;
                s
            }
            None => Arc::new(DayStats::default()),
        };
        let cached = data.cached_rows();
        let cached_bytes = data.cached_stats_bytes() + self.answers().bytes;
        drop(data);
        let (labels, _) = self.event_tools.labels();
        let mut o = String::with_capacity(2048);
        o.push('{');
        let mut f = true;
        json::key(&mut o, &mut f, "day");
        json::opt_string(&mut o, day.map(date_text).as_deref());
        json::key(&mut o, &mut f, "live");
        o.push_str(if day.is_some_and(|d| snap.live_days.contains_key(&d)) {
            "true"
        } else {
            "false"
        });
        for (k, v) in [
            ("rows", stats.rows),
            ("attempts", stats.attempts),
            ("sources", stats.sources),
            ("ports", stats.ports.len() as u64),
            ("files", snap.files.len() as u64),
            ("cached_rows", cached as u64),
            ("cache_rows", self.settings.cache_rows as u64),
            ("cached_bytes", cached_bytes as u64),
        ] {
            json::key(&mut o, &mut f, k);
            let _ = write!(o, "{v}");
        }
        json::key(&mut o, &mut f, "estimated");
        o.push_str(if stats.estimated { "true" } else { "false" });
        json::key(&mut o, &mut f, "first_day");
        json::opt_string(&mut o, all.first().map(|d| date_text(*d)).as_deref());
        json::key(&mut o, &mut f, "last_day");
        json::opt_string(&mut o, all.last().map(|d| date_text(*d)).as_deref());
        json::key(&mut o, &mut f, "top_ports");
        o.push('[');
        let mut ports: Vec<&super::data::PortDay> = stats.ports.iter().collect();
        ports.sort_by(|a, b| b.sources.cmp(&a.sources).then(b.attempts.cmp(&a.attempts)));
        for (i, p) in ports.iter().take(TOP).enumerate() {
            if i > 0 {
                o.push(',');
            }
            let s = trend::Series {
                proto: p.proto,
                port: p.port,
                counts: Vec::new(),
                spike: false,
            };
            let mut g = true;
            o.push('{');
            json::key(&mut o, &mut g, "label");
            json::string(&mut o, &s.label());
            json::key(&mut o, &mut g, "sources");
            let _ = write!(o, "{}", p.sources);
            json::key(&mut o, &mut g, "attempts");
            let _ = write!(o, "{}", p.attempts);
            o.push('}');
        }
        o.push(']');
        json::key(&mut o, &mut f, "top_sources");
        o.push('[');
        for (i, (a, n)) in stats.top_sources.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let place = self.geo.place(a);
            let _ = write!(o, "{{\"ip\":\"{a}\",\"attempts\":{n},\"country\":");
            json::opt_string(&mut o, place.country_text());
            o.push_str(",\"asn\":");
            match place.asn {
                Some(n) => {
                    let _ = write!(o, "{n}");
                }
                None => o.push_str("null"),
            }
            o.push_str(",\"tool\":");
            json::opt_string(&mut o, tool_of(&snap, &labels, a));
            o.push('}');
        }
        o.push(']');
        json::key(&mut o, &mut f, "sensor");
        super::status::sensor_json(&mut o, &snap.live, self.started.elapsed().as_secs());
        o.push('}');
        Ok(Arc::new(o))
    }
}

/// Answers kept, by query and what they were made from, most recent use last; at most
/// ANSWERS_KEPT of them and `limit` bytes.
struct Answers {
    kept: Vec<(String, PeriodKey, Arc<String>)>,
    bytes: usize,
    limit: usize,
}

impl Answers {
    /// Bytes an entry holds: its answer, query and key.
    fn size(e: &(String, PeriodKey, Arc<String>)) -> usize {
        e.0.capacity() + std::mem::size_of_val(e.1.as_slice()) + e.2.capacity()
    }

    fn keep(&mut self, query: String, key: PeriodKey, answer: Arc<String>) {
        if let Some(i) = self.kept.iter().position(|e| e.0 == query) {
            let old = self.kept.remove(i);
            self.bytes -= Self::size(&old);
        }
        let e = (query, key, answer);
        let size = Self::size(&e);
        if size > self.limit {
            return;
        }
        while !self.kept.is_empty()
            && (self.kept.len() >= ANSWERS_KEPT || self.bytes + size > self.limit)
        {
            let old = self.kept.remove(0);
            self.bytes -= Self::size(&old);
        }
        self.bytes += size;
        self.kept.push(e);
    }
}

impl Report {
    /// The end of a row: `, country, asn, as_name, tool]` (each `null` when unknown), after
    /// `row_json` left the array open.
    fn row_extra(&self, o: &mut String, snap: &Snapshot, labels: &Labels, r: &Row) {
        let place = self.geo.place(&r.key.src);
        o.push(',');
        json::opt_string(o, place.country_text());
        match place.asn {
            Some(n) => {
                let _ = write!(o, ",{n},");
            }
            None => o.push_str(",null,"),
        }
        json::opt_string(o, place.as_name.as_deref());
        o.push(',');
        json::opt_string(o, tool_of(snap, labels, &r.key.src));
        o.push(']');
    }
}

/// A source's tool: the live sensor's label, else the events file's.
fn tool_of<'a>(snap: &'a Snapshot, labels: &'a Labels, a: &crate::addr::Addr) -> Option<&'a str> {
    snap.live.tool_of(a).or_else(|| tools::tool_of(labels, a))
}

/// One row as `[proto, port, service, dst, src, first, last, count` (the caller closes it).
fn row_json(o: &mut String, r: &Row) {
    let name = proto::name(r.key.proto);
    o.push_str("[\"");
    o.push_str(std::str::from_utf8(name).unwrap_or("?"));
    o.push_str("\",");
    match r.key.port {
        Some(p) => json::uint(o, p as u64),
        None => o.push_str("null"),
    }
    o.push(',');
    json::opt_string(o, services::name(r.key.proto, r.key.port));
    for a in [&r.key.dst, &r.key.src] {
        o.push(',');
        json::addr(o, a);
    }
    for v in [r.first, r.last] {
        o.push(',');
        json::int(o, v);
    }
    o.push(',');
    json::uint(o, r.count);
}

/// Rows of a view sorted on a source column at most (a lookup each: about a second's work).
const SOURCE_SORT_MAX_ROWS: usize = 500_000;
/// A period too large to read streams, holding the rows up to the page's end; at most this
/// share of REPORT_REQUEST_ROWS of them (twice that while they are picked).
const STREAM_DEPTH_SHARE: usize = 8;

/// The first `keep` rows in an order, of rows given one at a time, with the count and
/// attempts of them all.
struct Top {
    rows: Vec<Row>,
    keep: usize,
    total: usize,
    attempts: u64,
}

impl Top {
    fn new(keep: usize) -> Top {
        Top {
            rows: Vec::new(),
            keep: keep.max(1),
            total: 0,
            attempts: 0,
        }
    }

    fn push(&mut self, r: &Row, order: impl Fn(&Row, &Row) -> Ordering) {
        self.total += 1;
        self.attempts = self.attempts.saturating_add(r.count);
        self.rows.push(*r);
        if self.rows.len() >= 2 * self.keep {
            self.cut(&order);
        }
    }

    /// Keeps the first `keep` (in no order among themselves).
    fn cut(&mut self, order: impl Fn(&Row, &Row) -> Ordering) {
        if self.rows.len() > self.keep {
            self.rows.select_nth_unstable_by(self.keep - 1, &order);
            self.rows.truncate(self.keep);
        }
    }

    /// The first `keep`, in order.
    fn finish(mut self, order: impl Fn(&Row, &Row) -> Ordering) -> Top {
        self.cut(&order);
        self.rows.sort_unstable_by(&order);
        self
    }
}

/// What a source column sorts on: a country code or AS number packed in an integer, or a tool
/// name; unknown first.
type SourceKey<'a> = (Option<u64>, Option<&'a str>);

impl Report {
    fn source_key<'a>(
        &self,
        column: Column,
        snap: &'a Snapshot,
        labels: &'a Labels,
        a: &crate::addr::Addr,
    ) -> SourceKey<'a> {
        match column {
            Column::Country => (
                self.geo
                    .place(a)
                    .country
                    .map(|c| u16::from_be_bytes(c) as u64),
                None,
            ),
            Column::Asn => (self.geo.place(a).asn.map(u64::from), None),
            Column::Tool => (None, tool_of(snap, labels, a)),
            _ => (None, None),
        }
    }
}

fn key_order(a: &Row, b: &Row, rank: &SortRank) -> Ordering {
    (rank.of(a.key.proto), a.key.port, a.key.dst, a.key.src).cmp(&(
        rank.of(b.key.proto),
        b.key.port,
        b.key.dst,
        b.key.src,
    ))
}

/// A column of the details table.
#[derive(Clone, Copy, Debug)]
enum Column {
    Proto,
    Port,
    Service,
    Dst,
    Src,
    First,
    Last,
    Count,
    /// The source's country, AS number or tool: looked up for every row of the view.
    Country,
    Asn,
    Tool,
}

impl Column {
    const ALL: [(&'static str, Column); 11] = [
        ("proto", Column::Proto),
        ("port", Column::Port),
        ("service", Column::Service),
        ("dst", Column::Dst),
        ("src", Column::Src),
        ("first", Column::First),
        ("last", Column::Last),
        ("count", Column::Count),
        ("country", Column::Country),
        ("asn", Column::Asn),
        ("tool", Column::Tool),
    ];

    fn parse(s: &str) -> Result<Column, Refusal> {
        Column::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| *c)
            .ok_or_else(|| Refusal(400, format!("sort: no column '{s}'")))
    }

    fn name(self) -> &'static str {
        Column::ALL
            .iter()
            .find(|(_, c)| std::mem::discriminant(c) == std::mem::discriminant(&self))
            .map_or("?", |(n, _)| n)
    }

    /// Times and counts read best largest first, as tsusen's table did.
    /// Columns that describe the source rather than the row: sorted on looked-up keys.
    fn of_source(self) -> bool {
        matches!(self, Column::Country | Column::Asn | Column::Tool)
    }

    fn descending_first(self) -> bool {
        matches!(self, Column::First | Column::Last | Column::Count)
    }

    #[inline]
    fn compare(self, a: &Row, b: &Row, rank: &SortRank) -> Ordering {
        match self {
            Column::Proto => rank.of(a.key.proto).cmp(&rank.of(b.key.proto)),
            Column::Port => a.key.port.cmp(&b.key.port),
            Column::Service => services::name(a.key.proto, a.key.port)
                .cmp(&services::name(b.key.proto, b.key.port)),
            Column::Dst => a.key.dst.cmp(&b.key.dst),
            Column::Src => a.key.src.cmp(&b.key.src),
            Column::First => a.first.cmp(&b.first),
            Column::Last => a.last.cmp(&b.last),
            Column::Count => a.count.cmp(&b.count),
            // Sorted on looked-up keys by `sort_on_sources`, never row by row.
            Column::Country | Column::Asn | Column::Tool => Ordering::Equal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_kept_stay_within_their_bytes_and_count() {
        let mut a = Answers {
            kept: Vec::new(),
            bytes: 0,
            limit: 1000,
        };
        let answer = |n: usize| Arc::new("x".repeat(n));
        for i in 0..10 {
            a.keep(format!("q{i}"), Vec::new(), answer(300));
            assert!(a.bytes <= 1000, "{}", a.bytes);
            assert_eq!(a.bytes, a.kept.iter().map(Answers::size).sum::<usize>());
        }
        // Three of 302 bytes fit in 1000: the most recent ones.
        let queries: Vec<&str> = a.kept.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(queries, ["q7", "q8", "q9"]);
        // The same query replaces its answer; one larger than the limit is not kept at all.
        a.keep("q9".into(), Vec::new(), answer(10));
        assert_eq!(a.kept.len(), 3);
        a.keep("big".into(), Vec::new(), answer(1001));
        assert!(a.kept.iter().all(|e| e.0 != "big"));
        assert!(a.bytes <= 1000);
        // And never more than ANSWERS_KEPT, however small.
        a.limit = usize::MAX;
        for i in 0..100 {
            a.keep(format!("s{i}"), Vec::new(), answer(1));
        }
        assert_eq!(a.kept.len(), ANSWERS_KEPT);
    }

    #[test]
    fn a_row_is_written_as_its_fields_in_order() {
        let ip = |t: &str| crate::addr::Addr::from(t.parse::<std::net::IpAddr>().unwrap());
        let row = |proto, port, dst, src| Row {
            key: crate::tables::Key {
                proto,
                port,
                dst: ip(dst),
                src: ip(src),
            },
            first: 1_710_113_416,
            last: 1_710_199_999,
            count: 18_446_744_073_709_551_615,
        };
        let cases = [
            (
                row(6, Some(22), "198.51.100.7", "203.0.113.9"),
                r#"["TCP",22,"ssh","198.51.100.7","203.0.113.9",1710113416,1710199999,18446744073709551615"#,
            ),
            (
                row(47, None, "2001:db8::1", "::ffff:10.0.0.1"),
                r#"["GRE",null,null,"2001:db8::1","::ffff:10.0.0.1",1710113416,1710199999,18446744073709551615"#,
            ),
            (
                row(17, Some(0), "0.0.0.0", "255.255.255.255"),
                r#"["UDP",0,null,"0.0.0.0","255.255.255.255",1710113416,1710199999,18446744073709551615"#,
            ),
        ];
        for (r, want) in cases {
            let mut o = String::new();
            row_json(&mut o, &r);
            assert_eq!(o, want);
        }
    }
}
