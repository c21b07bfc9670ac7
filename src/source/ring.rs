//! Live capture through an AF_PACKET TPACKET_V3 ring: the kernel writes frames that pass our
//! BPF filter ([`super::bpf`]) into blocks of memory we share with it, and we read them in place.
//! One poll per block rather than a poll and a recvfrom per frame, no copy, and each frame keeps
//! its direction (the sockaddr_ll the kernel writes beside it), which pnet's receiver loses.
//!
//! A block belongs to user space from the moment the kernel marks it TP_STATUS_USER until we
//! hand it back with TP_STATUS_KERNEL; we hand it back when the caller asks for the frame after
//! its last one, so a borrowed frame never outlives its block.

use super::bpf::{self, Framing, TcpPass};
use super::Link;
use crate::policy::{RING_BLOCK_BYTES, RING_BLOCK_TIMEOUT_MS};
use std::io;
use std::sync::atomic::{fence, Ordering};

// linux/if_packet.h
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// struct tpacket3_hdr (48 bytes once aligned), then struct sockaddr_ll.
const PKT_NEXT: usize = 0;
const PKT_SEC: usize = 4;
const PKT_NSEC: usize = 8;
const PKT_SNAPLEN: usize = 12;
const PKT_MAC: usize = 24;
const PKT_SLL: usize = 48;
/// Within sockaddr_ll.
const SLL_PROTOCOL: usize = 2;
const SLL_PKTTYPE: usize = 10;

/// One frame lent from the ring.
pub struct RingFrame<'a> {
    pub link: Link,
    pub data: &'a [u8],
    pub outgoing: bool,
    /// The kernel's receive time.
    pub ts: i64,
    pub ts_us: u32,
}

/// Packets the kernel handed over and dropped since the ring was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    pub received: u64,
    pub dropped: u64,
}

pub struct Ring {
    fd: libc::c_int,
    map: *mut u8,
    block_size: usize,
    blocks: usize,
    framing: Framing,
    poll_ms: libc::c_int,
    /// The block being read, its packets left and the offset of the next one, if we hold it.
    block: usize,
    held: bool,
    left: u32,
    offset: usize,
    drops: Drops,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a valid value of the size given for the duration of the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The ARP hardware type of an interface: Ethernet-framed ones (Ethernet, loopback) are read
/// raw, anything else (tun, PPP, ...) cooked.
fn ethernet_framed(interface: &str) -> bool {
    let t = std::fs::read_to_string(format!("/sys/class/net/{interface}/type"));
    matches!(t.as_deref().map(str::trim), Ok("1") | Ok("772"))
}

impl Ring {
    /// Opens a ring of `bytes` (rounded to whole blocks) on `interface` (`ifindex`, or every
    /// interface when `ifindex` is 0), in promiscuous mode on a named one.
    pub fn open(
        interface: &str,
        ifindex: u32,
        bytes: usize,
        tcp: TcpPass,
        poll_ms: libc::c_int,
    ) -> io::Result<Ring> {
        let framing = if ifindex != 0 && ethernet_framed(interface) {
            Framing::Ethernet
        } else {
            Framing::Cooked
        };
        let kind = match framing {
            Framing::Ethernet => libc::SOCK_RAW,
            Framing::Cooked => libc::SOCK_DGRAM,
        };
        // Protocol 0: nothing arrives before the filter is attached and the socket bound.
        // SAFETY: plain socket(2).
        let fd = check(unsafe { libc::socket(libc::AF_PACKET, kind | libc::SOCK_CLOEXEC, 0) })?;
        let mut ring = Ring {
            fd,
            map: std::ptr::null_mut(),
            block_size: RING_BLOCK_BYTES,
            blocks: (bytes / RING_BLOCK_BYTES).max(2),
            framing,
            poll_ms,
            block: 0,
            held: false,
            left: 0,
            offset: 0,
            drops: Drops::default(),
        };
        ring.setup(ifindex, tcp)?;
        Ok(ring)
    }

    fn setup(&mut self, ifindex: u32, tcp: TcpPass) -> io::Result<()> {
        let prog: Vec<libc::sock_filter> = bpf::program(self.framing, tcp)
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        setsockopt(self.fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V3)?;
        let req = libc::tpacket_req3 {
            tp_block_size: self.block_size as u32,
            tp_block_nr: self.blocks as u32,
            // Frames are packed back to back in a V3 block; the frame size only has to divide it.
            tp_frame_size: 2048,
            tp_frame_nr: (self.block_size / 2048 * self.blocks) as u32,
            tp_retire_blk_tov: RING_BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(self.fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let len = self.block_size * self.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.map = map.cast();
        // SAFETY: sockaddr_ll is plain data; zeroed is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a valid sockaddr_ll of the size given.
        check(unsafe {
            libc::bind(
                self.fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        if ifindex != 0 {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as i32,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            setsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
            )?;
        }
        Ok(())
    }

    /// A native-order u32 of the shared memory, read as the kernel wrote it.
    fn word(&self, at: usize) -> u32 {
        debug_assert!(at + 4 <= self.block_size * self.blocks);
        // SAFETY: `at` lies inside the mapping (offsets come from the kernel's block headers,
        // checked against the block size before use).
        unsafe { std::ptr::read_volatile(self.map.add(at).cast::<u32>()) }
    }

    fn status(&self) -> u32 {
        self.word(self.block * self.block_size + BLOCK_STATUS)
    }

    /// No frame is ready now: the block in hand is done and the next one is still the
    /// kernel's. The caller finishes what it holds back before the next call waits.
    pub fn idle(&self) -> bool {
        if self.held && self.left > 0 {
            return false;
        }
        let next = if self.held {
            (self.block + 1) % self.blocks
        } else {
            self.block
        };
        self.word(next * self.block_size + BLOCK_STATUS) & TP_STATUS_USER == 0
    }

    fn release(&mut self) {
        // Every read of the block happens before the kernel may write it again.
        fence(Ordering::Release);
        let at = self.block * self.block_size + BLOCK_STATUS;
        // SAFETY: inside the mapping; the kernel reads this word to take the block back.
        unsafe { std::ptr::write_volatile(self.map.add(at).cast::<u32>(), TP_STATUS_KERNEL) };
        self.held = false;
        self.block = (self.block + 1) % self.blocks;
    }

    /// The next frame, `None` when the poll period passed (or a signal came) without one.
    pub fn next_frame(&mut self) -> io::Result<Option<RingFrame<'_>>> {
        loop {
            if self.held && self.left == 0 {
                self.release();
            }
            if !self.held {
                if self.status() & TP_STATUS_USER == 0 {
                    let mut pfd = libc::pollfd {
                        fd: self.fd,
                        events: libc::POLLIN | libc::POLLERR,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    let r = unsafe { libc::poll(&mut pfd, 1, self.poll_ms) };
                    if r < 0 {
                        let e = io::Error::last_os_error();
                        if e.kind() == io::ErrorKind::Interrupted {
                            return Ok(None);
                        }
                        return Err(e);
                    }
                    if self.status() & TP_STATUS_USER == 0 {
                        return Ok(None);
                    }
                }
                fence(Ordering::Acquire);
                let base = self.block * self.block_size;
                self.left = self.word(base + BLOCK_NUM_PKTS);
                self.offset = self.word(base + BLOCK_FIRST_PKT) as usize;
                self.held = true;
                continue;
            }
            self.left -= 1;
            let base = self.block * self.block_size;
            let at = self.offset;
            // The kernel wrote these; still, never read outside the block.
            if at + PKT_SLL + 12 > self.block_size {
                self.left = 0;
                continue;
            }
            let next = self.word(base + at + PKT_NEXT) as usize;
            self.offset = if next == 0 {
                self.block_size
            } else {
                at + next
            };
            let sec = self.word(base + at + PKT_SEC);
            let nsec = self.word(base + at + PKT_NSEC);
            let snaplen = self.word(base + at + PKT_SNAPLEN) as usize;
            // SAFETY: inside the block (checked above); tp_mac is a u16 at an even offset.
            let mac =
                unsafe { std::ptr::read_volatile(self.map.add(base + at + PKT_MAC).cast::<u16>()) }
                    as usize;
            let start = at + mac;
            if start + snaplen > self.block_size {
                self.left = 0;
                continue;
            }
            // SAFETY: [base+start, base+start+snaplen) lies inside this block, which is ours
            // until `release`, and `release` needs `&mut self`, which the borrow prevents.
            let data = unsafe { std::slice::from_raw_parts(self.map.add(base + start), snaplen) };
            // SAFETY: inside the block (checked above).
            let (proto, pkttype) = unsafe {
                let sll = self.map.add(base + at + PKT_SLL);
                (
                    u16::from_be(std::ptr::read_unaligned(
                        sll.add(SLL_PROTOCOL).cast::<u16>(),
                    )),
                    *sll.add(SLL_PKTTYPE),
                )
            };
            let link = match self.framing {
                Framing::Ethernet => Link::Ethernet,
                Framing::Cooked => Link::EtherType(proto),
            };
            return Ok(Some(RingFrame {
                link,
                data,
                outgoing: pkttype == libc::PACKET_OUTGOING,
                ts: sec as i64,
                ts_us: nsec / 1000,
            }));
        }
    }

    /// The kernel's counters, added up (reading them resets the kernel's).
    pub fn drops(&mut self) -> Drops {
        // SAFETY: tpacket_stats_v3 is plain data.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: valid buffer and length for the call.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
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

impl Drop for Ring {
    fn drop(&mut self) {
        if !self.map.is_null() {
            // SAFETY: the mapping we made, of that length.
            unsafe { libc::munmap(self.map.cast(), self.block_size * self.blocks) };
        }
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.fd) };
    }
}
