//! Live capture. A named interface (a span port) is opened with pnet_datalink in promiscuous
//! mode and gives Ethernet frames. `any` uses our own AF_PACKET socket in cooked mode: one
//! socket for every interface, each frame with its EtherType and direction, which pnet's
//! receiver throws away (and a tun interface has no Ethernet header to read them from).

use super::Link;
use crate::addr::Cidr;
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
}

pub enum Capture {
    Named(Box<dyn DataLinkReceiver>),
    Any(Cooked),
}

impl Capture {
    pub fn open(interface: &str, poll: Duration) -> Result<Capture, LiveError> {
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
        }))
    }
}

impl Drop for Cooked {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}
