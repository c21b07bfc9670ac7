//! The counting rules: which packets are connection attempts from the outside, and under which
//! key they count. The classifier owns the flow table.

mod flows;
mod ports;

pub use flows::{FlowState, FlowStats, FlowTable};
pub use ports::PortSet;

use crate::addr::NetSet;
use crate::decode::{flags, Packet};
use crate::proto;
use crate::tables::Key;

/// ICMPv4 queries: echo, timestamp, information and address mask requests.
const ICMP_QUERIES: [u8; 4] = [8, 13, 15, 17];
/// ICMPv6 echo request.
const ICMPV6_ECHO_REQUEST: u8 = 128;

pub struct Rules {
    pub local: NetSet,
    pub ignore_addresses: NetSet,
    pub ignore_ports: PortSet,
    /// Seconds a flow may stay idle and still go on.
    pub flow_timeout: i64,
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

    pub fn import_flows(&mut self, flows: &[FlowState]) {
        self.flows.import(flows);
    }

    #[inline]
    pub fn classify(&mut self, p: &Packet, now: i64) -> Verdict {
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
        let key = || Key {
            proto: p.proto,
            port: ported.then_some(p.dport),
            dst: p.dst,
            src: p.src,
        };
        let counts = match p.proto {
            proto::TCP => {
                inbound
                    && p.tcp_flags & (flags::SYN | flags::ACK | flags::RST | flags::FIN)
                        == flags::SYN
            }
            proto::ICMP => inbound && ICMP_QUERIES.contains(&p.icmp_type),
            proto::ICMPV6 => inbound && p.icmp_type == ICMPV6_ECHO_REQUEST,
            _ => {
                let timeout = r.flow_timeout;
                self.flows.observe(p, now, timeout, inbound)
            }
        };
        if counts {
            Verdict::Attempt(key())
        } else {
            Verdict::Pass { inbound }
        }
    }
}
