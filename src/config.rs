//! Settings: policy defaults, overridden by `tsusen.conf` (the original tsusen's `KEY value`
//! format), overridden in turn by the command line.

use crate::addr::Cidr;
use crate::detect::flows::FlowParams;
use crate::detect::scan::ScanParams;
use crate::detect::spike::SpikeRule;
use crate::policy;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Settings {
    pub monitor_interface: String,
    pub write_period: u64,
    pub ignore_addresses: Vec<Cidr>,
    pub ignore_ports: Vec<(u16, u16)>,
    pub http_address: String,
    pub http_port: u16,
    pub trendline_period: u32,
    pub trendline_daily_threshold: u32,
    pub trendline_daily_burst: u32,
    /// Accepted for compatibility; our own rules do this filtering.
    pub capture_filter: Option<String>,
    pub log_directory: PathBuf,
    pub local_networks: Vec<Cidr>,
    pub table_capacity: usize,
    pub flow_capacity: usize,
    pub flow_timeout: u64,
    /// Snapshot file as configured: `None` when unset (run then takes the default, replay
    /// keeps none), an empty path when turned off.
    pub state_file: Option<PathBuf>,
    /// The syslog socket for scan reports: `None` unset (run: /dev/log; replay: none), an
    /// empty path when turned off.
    pub syslog: Option<PathBuf>,
    /// One JSON threat event per line is appended here.
    pub event_file: Option<PathBuf>,
    /// scanlogd's parameters (scanlogd's values unless set).
    pub scan: ScanParams,
    /// The unprivileged user `run` becomes once its capture socket is open; empty: stay.
    pub run_as: String,
    /// RUN_AS was given: a missing user is then an error, not a warning.
    pub run_as_set: bool,
    /// UDP address for NetFlow v5/v9 and IPFIX input (`collect`; `run` listens only when
    /// it is set).
    pub netflow_listen: Option<String>,
    /// How live frames are read: the kernel-filtered ring, or pnet_datalink.
    pub capture_method: CaptureMethod,
    /// Bytes of the capture ring.
    pub ring_bytes: usize,
    /// The bearer token `PUT /YYYY-MM-DD.csv` must present; `None`: PUT is refused.
    pub put_token: Option<String>,
    /// A MaxMind DB with countries (GeoLite2/GeoIP2/DB-IP Country or City, ip-location-db).
    pub geoip_database: Option<PathBuf>,
    /// A MaxMind DB with autonomous systems (GeoLite2-ASN layout).
    pub asn_database: Option<PathBuf>,
    /// The spike rule (SPIKE_* keys).
    pub spike: SpikeRule,
    /// Syslog message format: 3164 (BSD, the default) or 5424.
    pub syslog_format: u16,
    /// MQTT broker, `mqtt://[user:pass@]host[:port]`.
    pub mqtt_url: Option<String>,
    /// AMQP broker, `amqp://user:pass@host:port/vhost`, and its durable queue.
    pub amqp_url: Option<String>,
    pub amqp_queue: String,
    /// This sensor's name in the MQTT topic; empty: the host name.
    pub sensor_name: String,
    /// net-security's flow sensors' thresholds.
    pub flows: FlowParams,
    /// The live flow builder's timeouts, seconds.
    pub flow_export_idle: u64,
    pub flow_export_active: u64,
    /// Flows the live flow builder holds, and sources the spike watch counts per day.
    pub flow_builder_capacity: usize,
    pub spike_sources_capacity: usize,
    /// Rows the report keeps between requests (REPORT_CACHE_ROWS).
    pub report_cache_rows: usize,
    /// Rows one report request may read (REPORT_REQUEST_ROWS).
    pub report_request_rows: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMethod {
    /// AF_PACKET TPACKET_V3 ring with our BPF filter (Linux).
    Ring,
    /// pnet_datalink: a recvfrom per frame, no kernel filter; the portable fallback.
    Pnet,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            monitor_interface: policy::MONITOR_INTERFACE.into(),
            write_period: policy::WRITE_PERIOD,
            ignore_addresses: Vec::new(),
            ignore_ports: Vec::new(),
            http_address: policy::HTTP_ADDRESS.into(),
            http_port: policy::HTTP_PORT,
            trendline_period: policy::TRENDLINE_PERIOD,
            trendline_daily_threshold: policy::TRENDLINE_DAILY_THRESHOLD,
            trendline_daily_burst: policy::TRENDLINE_DAILY_BURST,
            capture_filter: None,
            log_directory: policy::LOG_DIRECTORY.into(),
            local_networks: Vec::new(),
            table_capacity: policy::TABLE_CAPACITY,
            flow_capacity: policy::FLOW_CAPACITY,
            flow_timeout: policy::FLOW_TIMEOUT,
            state_file: None,
            syslog: None,
            event_file: None,
            scan: ScanParams::default(),
            run_as: policy::RUN_AS.into(),
            run_as_set: false,
            capture_method: CaptureMethod::Ring,
            ring_bytes: policy::RING_MEGABYTES * 1024 * 1024,
            netflow_listen: None,
            put_token: None,
            geoip_database: None,
            asn_database: None,
            spike: SpikeRule::default(),
            syslog_format: 3164,
            mqtt_url: None,
            amqp_url: None,
            amqp_queue: policy::AMQP_QUEUE.into(),
            sensor_name: String::new(),
            flows: FlowParams::default(),
            flow_export_idle: policy::FLOW_BUILDER_IDLE,
            flow_export_active: policy::FLOW_BUILDER_ACTIVE,
            flow_builder_capacity: policy::FLOW_BUILDER_CAPACITY,
            spike_sources_capacity: policy::SPIKE_SOURCES_CAPACITY,
            report_cache_rows: policy::REPORT_CACHE_ROWS,
            report_request_rows: policy::REPORT_REQUEST_ROWS,
        }
    }
}

/// A bad setting, with where it came from.
#[derive(Debug)]
pub struct ConfigError {
    pub origin: String,
    pub key: String,
    pub why: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.why)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.why)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Applies one `KEY value` setting. `origin` names the file and line (or option) for errors.
    pub fn set(&mut self, key: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
        let err = |why: String| ConfigError {
            origin: origin.into(),
            key: key.into(),
            why,
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        match key {
            "MONITOR_INTERFACE" => {
                if value.is_empty() {
                    return Err(err("needs an interface name".into()));
                }
                self.monitor_interface = value.into();
            }
            "WRITE_PERIOD" => self.write_period = number(value, 1, 366 * 86_400).map_err(err)?,
            "IGNORE_ADDRESSES" | "BLACKLISTED_ADDRESSES" => {
                self.ignore_addresses = cidrs(value).map_err(err)?
            }
            "IGNORE_PORTS" => self.ignore_ports = ports(value).map_err(err)?,
            "HTTP_ADDRESS" => self.http_address = value.into(),
            "HTTP_PORT" => self.http_port = number(value, 1, 65_535).map_err(err)? as u16,
            "TRENDLINE_PERIOD" => {
                self.trendline_period = number(value, 1, 3660).map_err(err)? as u32
            }
            "TRENDLINE_DAILY_THRESHOLD" => {
                self.trendline_daily_threshold =
                    number(value, 0, u32::MAX as u64).map_err(err)? as u32
            }
            "TRENDLINE_DAILY_BURST" => {
                self.trendline_daily_burst = number(value, 0, u32::MAX as u64).map_err(err)? as u32
            }
            "CAPTURE_FILTER" => self.capture_filter = Some(value.into()),
            "LOG_DIRECTORY" => {
                if value.is_empty() {
                    return Err(err("needs a directory".into()));
                }
                self.log_directory = value.into()
            }
            "LOCAL_NETWORKS" => self.local_networks = cidrs(value).map_err(err)?,
            "TABLE_CAPACITY" => {
                self.table_capacity = number(value, 1, 1 << 30).map_err(err)? as usize
            }
            "REPORT_CACHE_ROWS" => {
                self.report_cache_rows = number(value, 0, 1 << 28).map_err(err)? as usize
            }
            "REPORT_REQUEST_ROWS" => {
                self.report_request_rows = number(value, 1, 1 << 30).map_err(err)? as usize
            }
            "FLOW_CAPACITY" => {
                self.flow_capacity = number(value, 1, 1 << 28).map_err(err)? as usize
            }
            "FLOW_TIMEOUT" => self.flow_timeout = number(value, 0, 366 * 86_400).map_err(err)?,
            "SYSLOG" => {
                let v: PathBuf = match value.to_ascii_lowercase().as_str() {
                    "yes" | "on" | "true" | "1" => "/dev/log".into(),
                    "no" | "off" | "false" | "0" | "none" | "" => "".into(),
                    _ => {
                        crate::alerts::SyslogTarget::parse(value).map_err(err)?;
                        value.into()
                    }
                };
                self.syslog = Some(v)
            }
            "EVENTS_FILE" | "EVENT_FILE" => {
                self.event_file = (!value.is_empty() && value != "none").then(|| value.into())
            }
            "SCAN_PORT_WEIGHT_PRIV" => {
                self.scan.port_weight_priv = number(value, 1, 1000).map_err(err)? as u32
            }
            "SCAN_PORT_WEIGHT_HIGH" => {
                self.scan.port_weight_high = number(value, 1, 1000).map_err(err)? as u32
            }
            "SCAN_WEIGHT_THRESHOLD" => {
                self.scan.weight_threshold = number(value, 2, 1025).map_err(err)? as u32
            }
            "SCAN_DELAY" => self.scan.delay_us = millis(value).map_err(err)? * 1000,
            "SCAN_LOG_COUNT" => {
                self.scan.log_count = number(value, 1, 1_000_000).map_err(err)? as u32
            }
            "SCAN_LOG_DELAY" => self.scan.log_delay_us = millis(value).map_err(err)? * 1000,
            "SCAN_LOG_MAX_LENGTH" => {
                let n = number(value, 0, 65_536).map_err(err)? as usize;
                self.scan.log_max_length = (n > 0).then_some(n);
            }
            "SCAN_LIST_SIZE" => {
                self.scan.list_size = number(value, 1, 1 << 20).map_err(err)? as usize
            }
            "SCAN_HASH_SIZE" => {
                self.scan.hash_size = number(value, 1, 1 << 24).map_err(err)? as usize
            }
            "SCAN_HASH_MAX" => {
                self.scan.hash_max = number(value, 1, 1 << 20).map_err(err)? as usize
            }
            "RUN_AS" => {
                self.run_as_set = true;
                self.run_as = if value == "none" || value.is_empty() {
                    String::new()
                } else {
                    value.into()
                }
            }
            "STATE_FILE" => {
                // `none` (or empty) turns the snapshot off, even for `run`.
                self.state_file = Some(if value == "none" {
                    "".into()
                } else {
                    value.into()
                })
            }
            "CAPTURE_METHOD" => {
                self.capture_method = match value.to_ascii_lowercase().as_str() {
                    "ring" => CaptureMethod::Ring,
                    "pnet" => CaptureMethod::Pnet,
                    _ => return Err(err("is ring or pnet".into())),
                }
            }
            "RING_SIZE" => {
                self.ring_bytes = number(value, 1, 1024).map_err(err)? as usize * 1024 * 1024
            }
            "NETFLOW_LISTEN" => {
                self.netflow_listen = match value {
                    "" | "none" | "off" => None,
                    v => {
                        netflow_address(v).map_err(err)?;
                        Some(v.into())
                    }
                }
            }
            "PUT_TOKEN" => {
                self.put_token = match value {
                    "" | "none" => None,
                    t if t.len() < policy::PUT_TOKEN_MIN || t.contains(char::is_whitespace) => {
                        return Err(err(format!(
                            "needs at least {} characters and no spaces",
                            policy::PUT_TOKEN_MIN
                        )))
                    }
                    t => Some(t.into()),
                }
            }
            "GEOIP_DATABASE" => self.geoip_database = optional_path(value),
            "ASN_DATABASE" => self.asn_database = optional_path(value),
            "SPIKE_HISTORY_DAYS" => {
                self.spike.history_days = number(value, 1, 3660).map_err(err)? as u32
            }
            "SPIKE_MIN_HISTORY" => {
                self.spike.min_history = number(value, 1, 3660).map_err(err)? as u32
            }
            "SPIKE_MIN_SOURCES" => {
                self.spike.min_sources = number(value, 1, u32::MAX as u64).map_err(err)? as u32
            }
            "SPIKE_MAD_FACTOR" => self.spike.mad_factor = real(value).map_err(err)?,
            "SPIKE_RATIO" => self.spike.ratio = real(value).map_err(err)?,
            "SYSLOG_FORMAT" => {
                self.syslog_format = match value.to_ascii_lowercase().as_str() {
                    "3164" | "rfc3164" | "bsd" => 3164,
                    "5424" | "rfc5424" => 5424,
                    _ => return Err(err(format!("'{value}' is not 3164 or 5424"))),
                }
            }
            "MQTT_URL" => {
                self.mqtt_url = (!value.is_empty() && value != "none").then(|| value.into())
            }
            "AMQP_URL" => {
                self.amqp_url = (!value.is_empty() && value != "none").then(|| value.into())
            }
            "AMQP_QUEUE" => {
                if value.is_empty() || value.len() > 255 {
                    return Err(err("needs a queue name of 1 to 255 bytes".into()));
                }
                self.amqp_queue = value.into()
            }
            "SENSOR_NAME" => {
                if value.contains(['+', '#', '/']) || value.len() > 64 {
                    return Err(err(
                        "a name of at most 64 bytes without '/', '+' or '#' (it is an MQTT topic level)".into(),
                    ));
                }
                self.sensor_name = value.into()
            }
            "PORTSCAN_FLOWS" => {
                self.flows.portscan_flows =
                    number(value, 1, crate::detect::flows::MAX_FLOW_THRESHOLD as u64)
                        .map_err(err)? as u32
            }
            "SPAM_FLOWS" => {
                self.flows.spam_flows =
                    number(value, 1, crate::detect::flows::MAX_FLOW_THRESHOLD as u64)
                        .map_err(err)? as u32
            }
            "FLOW_SENSOR_WINDOW" => {
                self.flows.window_secs = number(value, 1, 86_400).map_err(err)? as i64
            }
            "FLOW_SENSOR_HOLDOFF" => {
                self.flows.holdoff_secs = number(value, 0, 86_400).map_err(err)? as i64
            }
            "FLOW_EXPORT_IDLE" => self.flow_export_idle = number(value, 1, 86_400).map_err(err)?,
            "FLOW_EXPORT_ACTIVE" => {
                let most = crate::detect::flowbuild::MAX_ACTIVE;
                self.flow_export_active = number(value, 1, most).map_err(err)?
            }
            "FLOW_BUILDER_CAPACITY" => {
                self.flow_builder_capacity = number(value, 1, 1 << 24).map_err(err)? as usize
            }
            "SPIKE_SOURCES_CAPACITY" => {
                self.spike_sources_capacity = number(value, 1, 1 << 26).map_err(err)? as usize
            }
            _ => return Err(err("unknown setting".into())),
        }
        Ok(())
    }

    /// Reads a `tsusen.conf`: `KEY value` lines, `#` comments; as in the original, a key alone
    /// on its line takes the indented lines below it as its value.
    pub fn load(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            key: String::new(),
            why: format!("cannot read: {e}"),
        })?;
        // A file saved by an editor that writes a byte-order mark (the image's boot partition
        // is edited on any desktop) still starts with its first key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut pending: Option<(String, String, usize)> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("");
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, v, _)) = pending.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
            }
            if let Some((k, v, at)) = pending.take() {
                self.set(&k, &v, &format!("{}:{}", path.display(), at))?;
            }
            let line = line.trim();
            let (k, v) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            pending = Some((k.to_ascii_uppercase(), v.trim().to_string(), n + 1));
        }
        if let Some((k, v, at)) = pending {
            self.set(&k, &v, &format!("{}:{}", path.display(), at))?;
        }
        Ok(())
    }
}

/// A NetFlow listening address: `ADDR:PORT`, `[V6]:PORT`, or a bare port (on every
/// IPv4 address).
pub fn netflow_address(v: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = v.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([0, 0, 0, 0], port)));
    }
    v.parse()
        .map_err(|_| format!("'{v}' is not ADDRESS:PORT (e.g. 0.0.0.0:2055 or [::]:2055)"))
}

/// A file setting that `none` (or nothing) turns off.
fn optional_path(v: &str) -> Option<PathBuf> {
    (!v.is_empty() && v != "none").then(|| v.into())
}

/// Seconds, possibly fractional (`3`, `0.5`), as whole milliseconds.
fn millis(v: &str) -> Result<i64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(|s| (s * 1000.0).round() as i64)
        .ok_or_else(|| format!("'{v}' is not a number of seconds from 0.001 to 86400"))
}

/// A number of at least 0, such as 2.5.
fn real(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && (0.0..=1e6).contains(x))
        .ok_or_else(|| format!("'{v}' is not a number from 0 to 1000000"))
}

fn number(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("'{v}' is not a whole number from {lo} to {hi}"))
}

/// Addresses or CIDRs separated by spaces or commas.
pub fn cidrs(v: &str) -> Result<Vec<Cidr>, String> {
    v.split([' ', ',', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// Ports or `LO-HI` ranges separated by spaces or commas.
pub fn ports(v: &str) -> Result<Vec<(u16, u16)>, String> {
    v.split([' ', ',', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            let bad = || format!("'{s}' is not a port or a port range");
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            let lo: u16 = lo.parse().map_err(|_| bad())?;
            let hi: u16 = hi.parse().map_err(|_| bad())?;
            if lo > hi {
                return Err(bad());
            }
            Ok((lo, hi))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_original_format() {
        let dir = std::env::temp_dir().join(format!("tsusen-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tsusen.conf");
        std::fs::write(
            &path,
            "# comment\nHTTP_PORT 8339\nCAPTURE_FILTER (tcp[13] == 2) or not tcp\n\
             BLACKLISTED_ADDRESSES 255.255.255.255 127.0.0.1\nIGNORE_PORTS\n  53, 137-139\n\
             LOCAL_NETWORKS 198.51.100.0/24 2001:db8::/32 # ours\nWRITE_PERIOD 60\n",
        )
        .unwrap();
        let mut s = Settings::default();
        s.load(&path).unwrap();
        assert_eq!(s.write_period, 60);
        assert_eq!(s.ignore_ports, vec![(53, 53), (137, 139)]);
        assert_eq!(s.ignore_addresses.len(), 2);
        assert_eq!(s.local_networks.len(), 2);
        assert_eq!(
            s.capture_filter.as_deref(),
            Some("(tcp[13] == 2) or not tcp")
        );
        std::fs::write(&path, "HTTP_PORT 8339\nNO_SUCH_KEY 1\n").unwrap();
        let e = Settings::default().load(&path).unwrap_err().to_string();
        assert!(
            e.contains("tsusen.conf:2") && e.contains("NO_SUCH_KEY"),
            "{e}"
        );
        // A byte-order mark and CRLF line ends, as a desktop editor may save the file.
        std::fs::write(&path, "\u{feff}WRITE_PERIOD 120\r\nHTTP_PORT 8080\r\n").unwrap();
        let mut s = Settings::default();
        s.load(&path).unwrap();
        assert_eq!((s.write_period, s.http_port), (120, 8080));
        std::fs::write(&path, "WRITE_PERIOD soon\n").unwrap();
        let e = Settings::default().load(&path).unwrap_err().to_string();
        assert!(e.contains(":1") && e.contains("WRITE_PERIOD"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn report_cache_rows_is_a_count_of_rows() {
        let dir = std::env::temp_dir().join(format!("tsusen-conf-rc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tsusen.conf");
        assert_eq!(Settings::default().report_cache_rows, 1 << 20);
        for (text, rows) in [("65536", 65_536), ("0", 0)] {
            std::fs::write(&path, format!("REPORT_CACHE_ROWS {text}\n")).unwrap();
            let mut s = Settings::default();
            s.load(&path).unwrap();
            assert_eq!(s.report_cache_rows, rows);
        }
        std::fs::write(&path, "REPORT_CACHE_ROWS 64MiB\n").unwrap();
        let e = Settings::default().load(&path).unwrap_err().to_string();
        assert!(e.contains("REPORT_CACHE_ROWS"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
