//! `tsusen serve`: the report page and API over a log directory, with no capture and no root —
//! for a box that only shows CSV files gathered from sensors.

use crate::cli::{self, Spec, Usage};
use crate::commands::{settings, usage_exit, EXIT_FAILURE};
use crate::signals;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

pub const SPEC: Spec = Spec {
    command: "serve",
    help: "\
Usage: tsusen serve [OPTIONS]

Serves the report page and its API (trendlines, details, summary, metrics, the daily CSV
files) over the daily CSV files of a log directory. Captures nothing; needs no root.

Options:
  --config FILE          read settings from FILE (tsusen.conf format)
  --log-dir DIR          where the daily CSV files are (LOG_DIRECTORY, default /var/log/tsusen)
  --http ADDR:PORT       where to listen (HTTP_ADDRESS and HTTP_PORT, default 0.0.0.0:8339)
  --geoip FILE           a MaxMind DB of countries (GEOIP_DATABASE): GeoLite2/GeoIP2 or
                         DB-IP Country or City, or an ip-location-db country file
  --asn FILE             a MaxMind DB of autonomous systems (ASN_DATABASE, GeoLite2-ASN)
  -h, --help             this text

Exit status: 0 stopped by a signal; 1 cannot listen; 2 usage.",
    valued: &["--config", "--log-dir", "--http", "--geoip", "--asn"],
    flags: &[],
};

pub fn main(args: Vec<String>) -> ExitCode {
    let p = match cli::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(extra) = p.positional.first() {
        return usage_exit(Usage(format!(
            "tsusen serve: unexpected argument '{extra}'\nTry 'tsusen serve --help'."
        )));
    }
    let mut s = match settings(&p, "serve") {
        Ok(s) => s,
        Err(u) => return usage_exit(u),
    };
    if let Some(f) = p.last("--geoip") {
        s.geoip_database = Some(f.into());
    }
    if let Some(f) = p.last("--asn") {
        s.asn_database = Some(f.into());
    }
    let addr = match p.last("--http") {
        Some(v) => match parse_http(v) {
            Some(a) => a,
            None => {
                return usage_exit(Usage(format!(
                "tsusen serve: option --http: '{v}' is not ADDR:PORT\nTry 'tsusen serve --help'."
            )))
            }
        },
        None => match super::address(&s) {
            Ok(a) => a,
            Err(e) => return usage_exit(Usage(format!("tsusen serve: {e}"))),
        },
    };
    signals::install();
    let running = match super::serve_on(addr, &s, super::LiveHandle::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tsusen serve: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    log::info!(
        "serving http://{}/ from {}",
        running.addr,
        s.log_directory.display()
    );
    while !signals::stop_requested() {
        std::thread::sleep(Duration::from_millis(200));
    }
    running.join();
    ExitCode::SUCCESS
}

/// `ADDR:PORT`, `[V6]:PORT` or `HOST:PORT`.
fn parse_http(v: &str) -> Option<SocketAddr> {
    if let Ok(a) = v.parse() {
        return Some(a);
    }
    v.to_socket_addrs().ok()?.next()
}
