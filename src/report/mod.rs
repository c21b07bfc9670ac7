//! The report: the page and API on HTTP_ADDRESS:HTTP_PORT (default 0.0.0.0:8339), as the
//! original tsusen served them, with no request to any other host.
//!
//! `serve` binds the address at once (so a taken port is an error the caller sees) and runs
//! picoserve on a tokio current-thread runtime on a thread of its own. `tsusen run` gives it a
//! `LiveHandle` the sensor publishes to; `tsusen serve` (`serve_cmd`) gives it one nobody
//! publishes to, and it shows the CSV files alone.
//!
//! - `live`: what the sensor shares (rows not yet in the files, counters).
//! - `days`, `data`: day files read, merged and cached.
//! - `bigday`, `sketch`: days and periods too large to read, streamed in fixed memory (a day's
//!   figures, a page of details).
//! - `query`, `api`, `trend`, `status`, `services`, `json`: the answers.
//! - `http`: picoserve, limits, gzip; `page.html`: the page.
//! - `put`: `PUT /YYYY-MM-DD.csv`, rows merged into a day's file.
//! - `geoip`: countries and AS of sources; `tools`: tool labels kept in EVENTS_FILE.

mod api;
mod bigday;
mod data;
pub mod days;
mod geoip;
mod http;
pub mod live;
mod put;
mod query;
pub mod serve_cmd;
mod services;
mod sketch;
mod status;
mod tools;
mod trend;

pub use api::ReportSettings;
pub use live::{publish, LiveHandle, LiveSummary};

use crate::config::Settings;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::Notify;

/// Connections served at once, and from one address; more are closed as soon as they are
/// accepted, so that one host holding idle connections cannot lock the others out.
pub const MAX_CONNECTIONS: usize = 256;
pub const MAX_PER_PEER: usize = 64;
/// Threads that compute API answers (the merges); the machine may have two cores.
const API_THREADS: usize = 2;
/// After a failed accept (out of file descriptors and the like), the wait before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(200);

/// Timeouts: to start a request, to send all of its head, and for each write of an answer.
static CONFIG: picoserve::Config = picoserve::Config::new(picoserve::Timeouts {
    start_read_request: picoserve::time::Duration::from_secs(10),
    persistent_start_read_request: picoserve::time::Duration::from_secs(10),
    read_request: picoserve::time::Duration::from_secs(5),
    write: picoserve::time::Duration::from_secs(10),
})
.keep_connection_alive();

/// A running report server.
pub struct Running {
    /// The address it listens on (the port is the real one when 0 was asked for).
    pub addr: SocketAddr,
    thread: JoinHandle<()>,
    /// Ends the server's thread. A wake-up rather than a flag looked at on a timer: an idle
    /// sensor's server then sleeps until a visitor comes, instead of waking five times a second.
    end: Arc<Notify>,
}

impl Running {
    /// Stops the server and waits for its thread to end.
    pub fn join(self) {
        self.end.notify_one();
        let _ = self.thread.join();
    }
}

/// The address to listen on from the settings (`HTTP_ADDRESS`, `HTTP_PORT`).
pub fn address(settings: &Settings) -> io::Result<SocketAddr> {
    (settings.http_address.as_str(), settings.http_port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "HTTP_ADDRESS '{}' resolves to nothing",
                    settings.http_address
                ),
            )
        })
}

/// Binds `addr` and serves the report from its own thread until `Running::join`.
pub fn serve(settings: &Settings, live: LiveHandle) -> io::Result<Running> {
    serve_on(address(settings)?, settings, live)
}

/// As `serve`, on an address given apart from the settings (`--http`, tests).
pub fn serve_on(addr: SocketAddr, settings: &Settings, live: LiveHandle) -> io::Result<Running> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let report = Arc::new(api::Report::new(
        ReportSettings::from_settings(settings),
        live,
    ));
    // Compressed now rather than on the first visit.
    let _ = http::page_gz();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(API_THREADS)
        .thread_name("tsusen-report")
        .on_thread_start(|| {
            // SAFETY: setpriority on the calling thread (under Linux, who = 0 is the caller's
            // thread) changes its scheduling only. Raising a nice value needs no privilege;
            // were it refused, the answers would only run at the capture's priority.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, crate::policy::REPORT_NICE);
            }
        })
        .build()?;
    let end = Arc::new(Notify::new());
    let ended = end.clone();
    let thread = std::thread::Builder::new()
        .name("tsusen-http".into())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let accepting = tokio::task::spawn_local(accept_loop(listener, report));
                ended.notified().await;
                // Leaving drops the runtime, and with it every connection still open.
                accepting.abort();
            });
        })?;
    Ok(Running { addr, thread, end })
}

async fn accept_loop(listener: TcpListener, report: Arc<api::Report>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("report server: {e}");
            return;
        }
    };
    let app = Rc::new(picoserve::Router::from_service(http::App { report }));
    let open: Rc<RefCell<Open>> = Rc::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                log::warn!("report server: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        if !open.borrow_mut().enter(peer.ip()) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (app, open) = (app.clone(), open.clone());
        tokio::task::spawn_local(async move {
            let mut buffer = vec![0u8; http::HTTP_BUFFER];
            let _ = picoserve::Server::new_tokio(&app, &CONFIG, &mut buffer)
                .serve(stream)
                .await;
            open.borrow_mut().leave(peer.ip());
        });
    }
}

/// Open connections, in all and per peer address.
#[derive(Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

impl Open {
    fn enter(&mut self, peer: IpAddr) -> bool {
        let n = self.per_peer.entry(peer).or_insert(0);
        if self.total >= MAX_CONNECTIONS || *n >= MAX_PER_PEER {
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
            return false;
        }
        *n += 1;
        self.total += 1;
        true
    }

    fn leave(&mut self, peer: IpAddr) {
        self.total -= 1;
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}
