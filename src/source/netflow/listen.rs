//! The UDP side of flow input: one thread owns the socket, the decoder and its templates, and
//! hands each datagram's flows to the thread that owns the sensor over a bounded queue. When
//! the queue is full the flows are dropped and counted rather than waited for, so a flood of
//! exports cannot stall anything but itself.

use super::{Counters, Decoder, Flow};
use crate::addr::Addr;
use crate::policy::{LIVE_POLL_SECONDS, NETFLOW_QUEUE};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The flows of one datagram and when it arrived (Unix seconds).
pub struct Batch {
    pub arrival: i64,
    pub flows: Vec<Flow>,
}

pub struct Listener {
    pub addr: SocketAddr,
    rx: Receiver<Batch>,
    counters: Arc<Mutex<Counters>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A UDP socket on `addr`, with the address in its error.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on udp {addr}: {e}")))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Listener {
    /// Binds `addr` and starts the receiving thread.
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        Listener::start(bind(addr)?)
    }

    /// Starts the receiving thread on a socket bound earlier (before privileges were
    /// dropped: a thread started before would keep them).
    pub fn start(socket: UdpSocket) -> io::Result<Listener> {
        socket.set_read_timeout(Some(Duration::from_secs(LIVE_POLL_SECONDS)))?;
        let addr = socket.local_addr()?;
        let (tx, rx) = sync_channel::<Batch>(NETFLOW_QUEUE);
        let counters = Arc::new(Mutex::new(Counters::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, halt) = (counters.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("tsusen-netflow".into())
            .spawn(move || {
                let mut decoder = Decoder::new();
                let mut buf = vec![0u8; 65_536];
                let mut flows = Vec::new();
                while !halt.load(Ordering::Relaxed) {
                    let (n, peer) = match socket.recv_from(&mut buf) {
                        Ok(x) => x,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        Err(e) => {
                            log::error!("netflow socket: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    let exporter = Addr::from(peer.ip().to_canonical());
                    decoder.decode(exporter, &buf[..n], &mut |f| flows.push(f));
                    if !flows.is_empty() {
                        let batch = Batch {
                            arrival: unix_now(),
                            flows: std::mem::take(&mut flows),
                        };
                        match tx.try_send(batch) {
                            Ok(()) => {}
                            Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                                decoder.counters.queue_drops += b.flows.len() as u64
                            }
                        }
                    }
                    if let Ok(mut c) = shared.lock() {
                        *c = decoder.counters;
                    }
                }
            })?;
        Ok(Listener {
            addr,
            rx,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// The next batch, waiting at most `wait`.
    pub fn recv_timeout(&self, wait: Duration) -> Option<Batch> {
        match self.rx.recv_timeout(wait) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// A batch if one is waiting.
    pub fn try_recv(&self) -> Option<Batch> {
        self.rx.try_recv().ok()
    }

    pub fn counters(&self) -> Counters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    /// Stops the thread; the batches it queued can still be taken.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}
