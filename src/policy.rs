//! Every default that is policy (capacities, periods, limits), one line each on what it means.
//! Board profiles and `tsusen.conf` override the settable ones; the rest bound what an attacker
//! can make us spend.

/// Seconds between two flushes of the current day's attempts to its CSV file (tsusen: 15 min).
pub const WRITE_PERIOD: u64 = 900;

/// Flush period of a replay that can neither resume (no --state-file) nor was given one: longer
/// than any capture, so each day is written once.
pub const REPLAY_WRITE_PERIOD: u64 = 100 * 366 * 86_400;

/// Seconds a UDP/other-protocol flow may stay idle before its next packet starts a new flow.
pub const FLOW_TIMEOUT: u64 = 300;

/// Distinct (day, proto, port, dst, src) rows held in memory before an early flush merges them
/// into the day's file. A row is 64 B plus 16 B of index: 262 144 rows ≈ 20 MiB, sized for a
/// 1 GiB Raspberry Pi with room for everything else.
pub const TABLE_CAPACITY: usize = 262_144;

/// Flows tracked at once for UDP and other protocols; the least recently seen is evicted when
/// full. A flow is about 72 B plus 8 B of index: 131 072 flows ≈ 10 MiB.
pub const FLOW_CAPACITY: usize = 131_072;

/// Where the daily CSV files live (as the original tsusen).
pub const LOG_DIRECTORY: &str = "/var/log/tsusen";

/// Where `tsusen run` keeps its snapshot of what the CSV files do not hold.
pub const STATE_FILE: &str = "/var/lib/tsusen/state.bin";

/// Interface captured when none is given: every interface, as the original tsusen.
pub const MONITOR_INTERFACE: &str = "any";

/// The unprivileged user `run` becomes once its capture socket is open (scanlogd's way).
pub const RUN_AS: &str = "tsusen";

/// Rows of day files and merged periods (64 B each) the report keeps between requests; day
/// figures and answers kept get an eighth and a sixteenth of those bytes: 1 Mi rows ≈ 76 MiB.
pub const REPORT_CACHE_ROWS: usize = 1 << 20;
/// Rows of day files and live rows one report request may read (about 128 B each while it
/// runs, read and merged); a period or a day with more streams from its files: 8 Mi ≈ 1 GiB.
pub const REPORT_REQUEST_ROWS: usize = 8 << 20;
/// Nice value of the threads that compute the report's answers: a merge or a stream of a
/// flooded period takes seconds of CPU (minutes on a router), and it must yield to capture.
pub const REPORT_NICE: libc::c_int = 10;

/// Nice value of the thread that compacts a growing day file while capture goes on: on a
/// router's one core, the capture must come first.
pub const COMPACT_NICE: libc::c_int = 10;

/// Address and port of the report page (as the original tsusen).
pub const HTTP_ADDRESS: &str = "0.0.0.0";
pub const HTTP_PORT: u16 = 8339;

/// Days of history drawn on the report page's trendlines, and tsusen's thresholds for which
/// series are drawn (read now, used by the report).
pub const TRENDLINE_PERIOD: u32 = 10;
pub const TRENDLINE_DAILY_THRESHOLD: u32 = 2;
pub const TRENDLINE_DAILY_BURST: u32 = 10;

/// Largest captured frame we accept from a capture file (tcpdump's own maximum snap length);
/// a record claiming more is corruption, not a packet.
pub const MAX_FRAME_BYTES: usize = 262_144;

/// Largest pcapng block we accept; anything larger is corruption (a lying length field).
pub const MAX_PCAPNG_BLOCK: usize = 16 * 1024 * 1024;

/// Bytes read from a capture file at a time: small enough that the frames just read are still
/// in the core's cache when they are decoded (1 MiB was measurably slower).
pub const READ_CHUNK: usize = 128 * 1024;

/// Seconds a live capture waits for a frame before it checks the clock and signals.
pub const LIVE_POLL_SECONDS: u64 = 1;

/// Megabytes of the live capture ring (RING_SIZE): about 40 ms of a saturated gigabit link,
/// or seconds of a span port's usual load, that the kernel holds while the sensor is busy.
pub const RING_MEGABYTES: usize = 4;

/// Bytes of one ring block: the kernel hands blocks to us whole, so a block holds the largest
/// (GRO-merged) frame several times over.
pub const RING_BLOCK_BYTES: usize = 256 * 1024;

/// Milliseconds before the kernel hands over a block that is not full, so a quiet link's
/// frames still arrive promptly.
pub const RING_BLOCK_TIMEOUT_MS: u32 = 50;

/// VLAN tags decoded in front of an IP header (802.1Q, 802.1ad); a deeper stack is skipped.
pub const MAX_VLAN_TAGS: usize = 2;

/// IPv6 extension headers walked before we give up on finding the transport header.
pub const MAX_IPV6_EXTENSIONS: usize = 8;

/// Latest timestamp we accept (9999-12-31T23:59:59Z): beyond it a day has no file name.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// Where `tsusen collect` listens for NetFlow v5/v9 and IPFIX when not told (the usual port).
pub const NETFLOW_LISTEN: &str = "0.0.0.0:2055";

/// v9/IPFIX templates kept over all exporters; the oldest goes when a new one comes (a few
/// hundred bytes each: 4096 ≈ 1 MiB at most).
pub const NETFLOW_TEMPLATES: usize = 4096;

/// Templates one exporter and observation domain may hold, so a flood of new template ids
/// from one source cannot push out the others' (real exporters use a handful).
pub const NETFLOW_TEMPLATES_PER_SOURCE: usize = 256;

/// Datagrams' worth of decoded flows waiting for the sensor thread before more are dropped.
pub const NETFLOW_QUEUE: usize = 4096;

/// Seconds a UDP/other flow record (or a TCP one with ACK) is held back before it is decided,
/// waiting for a reverse record that started earlier: each direction is exported when it goes
/// idle or its active timer fires, so ours may arrive after theirs (by the exporter's scan
/// period, or more when our side kept sending). Two minutes, well within WRITE_PERIOD.
pub const FLOW_RECORD_HOLD: u64 = 120;

/// Flow records held back at most (about 128 B each: 131 072 ≈ 16 MiB); beyond it the
/// earliest-started is decided at once.
pub const FLOW_RECORDS_HELD: usize = 131_072;
/// Shortest PUT_TOKEN accepted: a bearer token is the only guard on rewriting a day's file.
pub const PUT_TOKEN_MIN: usize = 16;

/// Largest body `PUT /YYYY-MM-DD.csv` takes (about a million rows); more is refused with 413.
pub const PUT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Seconds an authorised PUT may take to send its body (a slow link at 1 Mbit/s moves 64 MiB
/// in about 9 minutes; the budget covers the limit on a link of about 2 Mbit/s).
pub const PUT_BODY_SECONDS: u64 = 300;
/// Spikes (see `detect::spike`): days with a file before today that form a port's baseline
/// (the page's trendline period less today), the fewest of them for a verdict, the fewest
/// distinct sources today that can spike, how many robust spreads above the median, and how
/// many times the median a spike must reach at least.
pub const SPIKE_HISTORY_DAYS: u32 = 9;
pub const SPIKE_MIN_HISTORY: u32 = 3;
pub const SPIKE_MIN_SOURCES: u32 = 10;
pub const SPIKE_MAD_FACTOR: f64 = 3.0;
pub const SPIKE_RATIO: f64 = 2.0;

/// Sources held to count one day's distinct sources per port exactly (8 B each: 524 288 =
/// 4 MiB, allocated at the day's first source, resident as it fills); past it the counts stop
/// growing.
pub const SPIKE_SOURCES_CAPACITY: usize = 524_288;

/// Live flow builder (detect::flowbuild): flows held (72 B each), seconds idle before a
/// flow is exported, and seconds a long flow runs before it is exported anyway (NetFlow's
/// inactive and active timeouts; short, because the flow sensors judge within 60 s).
pub const FLOW_BUILDER_CAPACITY: usize = 65_536;
pub const FLOW_BUILDER_IDLE: u64 = 15;
pub const FLOW_BUILDER_ACTIVE: u64 = 60;

/// Events of one type sent per minute (of event time) at most; more are counted as suppressed
/// (a flood of spoofed sources can make each packet an offender).
pub const EVENT_RATE_LIMIT: u32 = 600;

/// Milliseconds an alert waits on the sink thread for others to join it when alerts come in
/// real time: a burst costs one wake and one write of the event file, not one per event, and
/// is that much later. Short enough that the queue (4096) cannot fill meanwhile at any rate
/// the per-minute limits let through.
pub const SINK_GATHER_MS: u64 = 20;

/// Alerts each network sink (MQTT, AMQP) holds while its broker is slow or away before it
/// drops new ones (counted per sink).
pub const SINK_BUFFER: usize = 1024;

/// Seconds a network sink waits before its first reconnection, and at most between two.
pub const SINK_BACKOFF_MIN: u64 = 1;
pub const SINK_BACKOFF_MAX: u64 = 60;

/// AMQP queue events go to (net-security's AMQP_REPORTING_QUEUE default).
pub const AMQP_QUEUE: &str = "security-threat";
