//! The counting rules: which packets are connection attempts from the outside, and under which
//! key they count. The classifier owns the flow table.

pub mod flow_rules;
mod flows;
mod ports;

pub use flows::{FlowState, FlowStats, FlowTable, FlowsView};
pub use ports::PortSet;

use crate::addr::NetSet;
use crate::decode::{flags, Packet};
use crate::proto;
use crate::tables::Key;

/// ICMPv4 queries: echo, timestamp, information and address mask requests.
const ICMP_QUERIES: [u8; 4] = [8, 13, 15, 17];
/// ICMPv6 echo request.
const ICMPV6_ECHO_REQUEST: u8 = 128;

/// Whether an ICMP (`proto` 1) or ICMPv6 (58) message of `icmp_type` is a query from its
/// sender: the only ICMP that counts.
#[inline]
pub fn icmp_query(proto: u8, icmp_type: u8) -> bool {
    match proto {
        proto::ICMP => ICMP_QUERIES.contains(&icmp_type),
        proto::ICMPV6 => icmp_type == ICMPV6_ECHO_REQUEST,
        _ => false,
    }
}

/// Whether `p` could be an attempt, judging by its own header alone: a TCP SYN without ACK,
/// RST or FIN, an ICMP query, or any other protocol (whose flow decides). The direction and
/// the flow table decide the rest.
#[inline]
pub fn could_count(p: &Packet) -> bool {
    match p.proto {
        proto::TCP => {
            p.tcp_flags & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN
        }
        proto::ICMP | proto::ICMPV6 => icmp_query(p.proto, p.icmp_type),
        _ => true,
    }
}

pub struct Rules {
    pub local: NetSet,
    pub ignore_addresses: NetSet,
    pub ignore_ports: PortSet,
    /// Seconds a flow may stay idle and still go on.
    pub flow_timeout: i64,
}

impl Rules {
    /// The rules the settings ask for, with `local` as our networks.
    pub fn from_settings(settings: &crate::config::Settings, local: NetSet) -> Rules {
        let mut ignore_ports = PortSet::new();
        for &(lo, hi) in &settings.ignore_ports {
            ignore_ports.insert_range(lo, hi);
        }
        Rules {
            local,
            ignore_addresses: NetSet::new(settings.ignore_addresses.clone()),
            ignore_ports,
            flow_timeout: settings.flow_timeout as i64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Dropped by IGNORE_ADDRESSES or IGNORE_PORTS before anything else looked at it.
    Ignored,
    /// Not an attempt; `inbound` when it still came from outside to one of ours.
    Pass {
        inbound: bool,
    },
    Attempt(Key),
}

pub struct Classifier {
    rules: Rules,
    flows: FlowTable,
}

impl Classifier {
    pub fn new(rules: Rules, flow_capacity: usize) -> Classifier {
        Classifier {
            rules,
            flows: FlowTable::new(flow_capacity),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn flow_stats(&self) -> FlowStats {
        self.flows.stats()
    }

    pub fn export_flows(&self, now: i64) -> Vec<FlowState> {
        self.flows.export(now, self.rules.flow_timeout)
    }

    /// Takes the flow table's memory now (see `tables::Room::commit`).
    pub fn commit(&mut self) -> bool {
        self.flows.commit()
    }

    /// `export_flows` for the snapshot, serialised without a copy.
    pub fn flows_view(&self, now: i64) -> FlowsView<'_> {
        self.flows.view(now, self.rules.flow_timeout)
    }

    pub fn import_flows(&mut self, flows: &[FlowState]) {
        self.flows.import(flows);
    }

    /// The row an attempt of `p` counts in.
    #[inline]
    pub fn key(p: &Packet) -> Key {
        Key {
            proto: p.proto,
            port: proto::has_ports(p.proto).then_some(p.dport),
            dst: p.dst,
            src: p.src,
        }
    }

    /// Whether `p` goes through the flow table (every protocol but TCP and ICMP), and if so
    /// its flow's hash, its index slot requested from memory ahead of `classify`.
    #[inline]
    pub fn prefetch(&self, p: &Packet) -> Option<u64> {
        match p.proto {
            proto::TCP | proto::ICMP | proto::ICMPV6 => None,
            _ => Some(self.flows.prefetch(p)),
        }
    }

    /// The second step of `prefetch`: the flow record itself.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        self.flows.prefetch_flow(hash);
    }

    /// The verdict on `p` at second `now`; `flow_hash` is `prefetch`'s answer when the caller
    /// asked ahead.
    #[inline]
    pub fn classify(&mut self, p: &Packet, now: i64, flow_hash: Option<u64>) -> Verdict {
        let r = &self.rules;
        if !r.ignore_addresses.is_empty()
            && (r.ignore_addresses.contains(&p.src) || r.ignore_addresses.contains(&p.dst))
        {
            return Verdict::Ignored;
        }
        let ported = proto::has_ports(p.proto);
        if ported && (r.ignore_ports.contains(p.sport) || r.ignore_ports.contains(p.dport)) {
            return Verdict::Ignored;
        }
        let src_local = r.local.contains(&p.src);
        if p.outgoing && !src_local {
            // A foreign packet leaving the host was forwarded: its arrival is what counts.
            return Verdict::Pass { inbound: false };
        }
        let inbound = !src_local && r.local.contains(&p.dst);
        let counts = match p.proto {
            proto::TCP | proto::ICMP | proto::ICMPV6 => inbound && could_count(p),
            _ => {
                let timeout = r.flow_timeout;
                self.flows.observe(p, now, timeout, inbound, flow_hash)
            }
        };
        if counts {
            Verdict::Attempt(Self::key(p))
        } else {
            Verdict::Pass { inbound }
        }
    }
}
