//! Live capture. By default through our TPACKET_V3 ring with a kernel filter ([`super::ring`]).
//! The fallback (CAPTURE_METHOD pnet): a named interface (a span port) is opened with
//! pnet_datalink in promiscuous mode and gives Ethernet frames; `any` uses our own AF_PACKET
//! socket in cooked mode: one socket for every interface, each frame with its EtherType and
//! direction, which pnet's receiver throws away (and a tun interface has no Ethernet header to
//! read them from).

use super::bpf::TcpPass;
use super::ring::{Drops, Ring};
use super::Link;
use crate::addr::Cidr;
use crate::config::CaptureMethod;
use pnet_datalink::{Channel, Config, DataLinkReceiver, NetworkInterface};
use std::fmt;
use std::io;
use std::time::Duration;

/// Largest frame read at once: room for GRO/TSO super-frames on veth and virtio.
const FRAME_BUFFER: usize = 65_536 + 1024;

#[derive(Debug)]
pub enum LiveError {
    NotPermitted {
        interface: String,
    },
    NoSuchInterface {
        interface: String,
        known: Vec<String>,
    },
    Other {
        interface: String,
        err: io::Error,
    },
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::NotPermitted { interface } => write!(
                f,
                "capturing on {interface} needs root or the CAP_NET_RAW capability (try sudo)"
            ),
            LiveError::NoSuchInterface { interface, known } => write!(
                f,
                "no interface named '{interface}'; interfaces here: any, {}",
                known.join(", ")
            ),
            LiveError::Other { interface, err } => write!(f, "capture on {interface}: {err}"),
        }
    }
}

impl std::error::Error for LiveError {}

fn classify_err(interface: &str, err: io::Error) -> LiveError {
    if err.kind() == io::ErrorKind::PermissionDenied || err.raw_os_error() == Some(libc::EPERM) {
        LiveError::NotPermitted {
            interface: interface.into(),
        }
    } else {
        LiveError::Other {
            interface: interface.into(),
            err,
        }
    }
}

/// One frame from the wire: how it begins, its bytes, and whether it was leaving the host.
pub struct LiveFrame<'a> {
    pub link: Link,
    pub data: &'a [u8],
    pub outgoing: bool,
    /// The kernel's receive time, when the source gives it (the ring does).
    pub ts: Option<(i64, u32)>,
}

pub enum Capture {
    Ring(Ring),
    Named(Box<dyn DataLinkReceiver>),
    Any(Cooked),
}

/// How a live capture is opened.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub method: CaptureMethod,
    pub ring_bytes: usize,
    /// Which TCP packets the kernel filter lets through.
    pub tcp: TcpPass,
    /// How long a read waits before it returns nothing.
    pub poll: Duration,
}

impl Capture {
    pub fn open(interface: &str, opts: &Options) -> Result<Capture, LiveError> {
        let poll = opts.poll;
        if opts.method == CaptureMethod::Ring {
            let ifindex = if interface == "any" {
                0
            } else {
                find(interface)?.index
            };
            let ms = poll.as_millis().min(i32::MAX as u128) as libc::c_int;
            match Ring::open(interface, ifindex, opts.ring_bytes, opts.tcp, ms) {
                Ok(r) => return Ok(Capture::Ring(r)),
                Err(e) => {
                    let e = classify_err(interface, e);
                    if matches!(e, LiveError::NotPermitted { .. }) {
                        return Err(e);
                    }
                    // An old or unusual kernel: the portable reader still works.
                    log::warn!("{e}: capture ring unavailable, reading with pnet instead");
                }
            }
        }
        if interface == "any" {
            return Cooked::open(poll)
                .map(Capture::Any)
                .map_err(|e| classify_err(interface, e));
        }
        let iface = find(interface)?;
        let config = Config {
            read_buffer_size: FRAME_BUFFER,
            read_timeout: Some(poll),
            promiscuous: true,
            ..Config::default()
        };
        match pnet_datalink::channel(&iface, config) {
            Ok(Channel::Ethernet(_tx, rx)) => Ok(Capture::Named(rx)),
            Ok(_) => Err(LiveError::Other {
                interface: interface.into(),
                err: io::Error::other("not an Ethernet-like channel"),
            }),
            Err(e) => Err(classify_err(interface, e)),
        }
    }

    /// The next frame, `None` when the poll period passed (or a signal came) without one.
    pub fn next_frame(&mut self) -> io::Result<Option<LiveFrame<'_>>> {
        match self {
            Capture::Named(rx) => match rx.next() {
                Ok(data) => Ok(Some(LiveFrame {
                    link: Link::Ethernet,
                    data,
                    outgoing: false,
                    ts: None,
                })),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            Capture::Any(c) => c.next(),
            Capture::Ring(r) => Ok(r.next_frame()?.map(|f| LiveFrame {
                link: f.link,
                data: f.data,
                outgoing: f.outgoing,
                ts: Some((f.ts, f.ts_us)),
            })),
        }
    }

    /// No frame is waiting in a buffer of ours: the next `next_frame` may block. Frames from
    /// pnet come one by one, so that source is always idle after each.
    pub fn idle(&self) -> bool {
        match self {
            Capture::Ring(r) => r.idle(),
            _ => true,
        }
    }

    /// The kernel's count of frames it received and dropped for us, when the source has one.
    pub fn drops(&mut self) -> Option<Drops> {
        match self {
            Capture::Ring(r) => Some(r.drops()),
            Capture::Any(c) => Some(c.drops()),
            Capture::Named(_) => None,
        }
    }

    /// Whether a kernel filter drops TCP segments with ACK set before they reach us (the ring
    /// attaches one; pnet reads every frame). Those that still come are VLAN-tagged or carry
    /// IPv6 extension headers.
    pub fn drops_under_way(&self) -> bool {
        matches!(self, Capture::Ring(_))
    }

    /// What reads the frames, for the log.
    pub fn method(&self) -> &'static str {
        match self {
            Capture::Ring(_) => "ring",
            _ => "pnet",
        }
    }
}

fn find(name: &str) -> Result<NetworkInterface, LiveError> {
    let all = pnet_datalink::interfaces();
    all.iter()
        .find(|i| i.name == name)
        .cloned()
        .ok_or_else(|| LiveError::NoSuchInterface {
            interface: name.into(),
            known: all.iter().map(|i| i.name.clone()).collect(),
        })
}

/// The networks of an interface's addresses (of every interface for `any`): the default
/// local networks, as the original tsusen took them from ifconfig.
pub fn interface_networks(name: &str) -> Result<Vec<Cidr>, LiveError> {
    let ifaces = if name == "any" {
        pnet_datalink::interfaces()
    } else {
        vec![find(name)?]
    };
    Ok(ifaces
        .iter()
        .flat_map(|i| i.ips.iter())
        .filter_map(|n| Cidr::new(n.network(), n.prefix()))
        .collect())
}

/// An AF_PACKET socket in cooked (SOCK_DGRAM) mode on every interface.
pub struct Cooked {
    fd: libc::c_int,
    poll_ms: libc::c_int,
    buf: Vec<u8>,
    drops: Drops,
}

impl Cooked {
    fn open(poll: Duration) -> io::Result<Cooked> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Cooked {
            fd,
            poll_ms: poll.as_millis().min(i32::MAX as u128) as libc::c_int,
            buf: vec![0; FRAME_BUFFER],
            drops: Drops::default(),
        })
    }

    fn next(&mut self) -> io::Result<Option<LiveFrame<'_>>> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, self.poll_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut sll_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: the buffer and address are valid for the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.fd,
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut sll_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(LiveFrame {
            link: Link::EtherType(u16::from_be(sll.sll_protocol)),
            data: &self.buf[..n as usize],
            outgoing: sll.sll_pkttype == libc::PACKET_OUTGOING,
            ts: None,
        }))
    }

    fn drops(&mut self) -> Drops {
        // SAFETY: tpacket_stats is plain data.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: valid buffer and length for the call.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            self.drops.received += st.tp_packets as u64;
            self.drops.dropped += st.tp_drops as u64;
        }
        self.drops
    }
}

impl Drop for Cooked {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}
