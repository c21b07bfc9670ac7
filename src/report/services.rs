//! Service names for the ports scanners knock on: the original tsusen's list of well-known
//! scanned ports first (its `MISC_PORTS`), then IANA's service names for common ports. A compact
//! table compiled in, so the page names ports without `/etc/services` (absent on many boards).

use crate::proto::{SCTP, TCP, UDP};

/// tsusen's `MISC_PORTS`: names it gave whatever the protocol.
const MISC: &[(u16, &str)] = &[
    (17, "qotd"),
    (53, "dns"),
    (135, "dcom-rpc"),
    (502, "modbus"),
    (623, "ipmi"),
    (1433, "mssql"),
    (1723, "pptp"),
    (1900, "upnp"),
    (3128, "squid"),
    (3389, "rdesktop"),
    (5351, "nat-pmp"),
    (5357, "wsdapi"),
    (5631, "pc-anywhere"),
    (5800, "vnc"),
    (5900, "vnc"),
    (5901, "vnc-1"),
    (5902, "vnc-2"),
    (5903, "vnc-3"),
    (6379, "redis"),
    (7547, "cwmp"),
    (8118, "privoxy"),
    (8338, "maltrail"),
    (8339, "tsusen"),
    (8443, "https-alt"),
    (9200, "wap-wsp"),
    (11211, "memcached"),
    (17185, "vxworks"),
    (27017, "mongo"),
    (53413, "netis"),
];

/// Which transport an IANA name is registered for.
const T: u8 = 1;
const U: u8 = 2;
const B: u8 = T | U;

/// IANA service names (Service Name and Transport Protocol Port Number Registry) of the ports
/// most seen in scans, sorted by port. Where TCP and UDP names differ, two entries.
const IANA: &[(u16, u8, &str)] = &[
    (7, B, "echo"),
    (9, B, "discard"),
    (13, B, "daytime"),
    (19, B, "chargen"),
    (20, T, "ftp-data"),
    (21, T, "ftp"),
    (22, B, "ssh"),
    (23, T, "telnet"),
    (25, T, "smtp"),
    (37, B, "time"),
    (42, B, "nameserver"),
    (43, T, "whois"),
    (49, B, "tacacs"),
    (67, U, "bootps"),
    (68, U, "bootpc"),
    (69, U, "tftp"),
    (70, T, "gopher"),
    (79, T, "finger"),
    (80, T, "http"),
    (81, T, "hosts2-ns"),
    (88, B, "kerberos"),
    (102, T, "iso-tsap"),
    (110, T, "pop3"),
    (111, B, "sunrpc"),
    (113, T, "ident"),
    (119, T, "nntp"),
    (123, U, "ntp"),
    (137, U, "netbios-ns"),
    (138, U, "netbios-dgm"),
    (139, T, "netbios-ssn"),
    (143, T, "imap"),
    (161, U, "snmp"),
    (162, U, "snmptrap"),
    (177, U, "xdmcp"),
    (179, T, "bgp"),
    (389, B, "ldap"),
    (427, B, "svrloc"),
    (443, T, "https"),
    (443, U, "https"),
    (444, T, "snpp"),
    (445, T, "microsoft-ds"),
    (465, T, "submissions"),
    (500, U, "isakmp"),
    (512, T, "exec"),
    (513, T, "login"),
    (514, T, "shell"),
    (514, U, "syslog"),
    (515, T, "printer"),
    (520, U, "router"),
    (523, B, "ibm-db2"),
    (548, T, "afpovertcp"),
    (554, B, "rtsp"),
    (587, T, "submission"),
    (631, B, "ipp"),
    (636, T, "ldaps"),
    (873, T, "rsync"),
    (902, T, "ideafarm-door"),
    (993, T, "imaps"),
    (995, T, "pop3s"),
    (1025, T, "blackjack"),
    (1080, T, "socks"),
    (1194, U, "openvpn"),
    (1234, T, "search-agent"),
    (1352, T, "lotusnote"),
    (1434, U, "ms-sql-m"),
    (1521, T, "ncube-lm"),
    (1604, U, "icabrowser"),
    (1701, U, "l2tp"),
    (1812, U, "radius"),
    (1813, U, "radius-acct"),
    (1883, T, "mqtt"),
    (2000, T, "cisco-sccp"),
    (2049, B, "nfs"),
    (2082, T, "infowave"),
    (2083, T, "radsec"),
    (2121, T, "scientia-ssdb"),
    (2181, T, "eforward"),
    (2222, T, "EtherNet-IP-1"),
    (2323, T, "3d-nfsd"),
    (2375, T, "docker"),
    (2376, T, "docker-s"),
    (2379, T, "etcd-client"),
    (2483, T, "ttc"),
    (3000, T, "hbci"),
    (3283, U, "net-assistant"),
    (3306, T, "mysql"),
    (3478, U, "stun"),
    (3702, U, "ws-discovery"),
    (4369, T, "epmd"),
    (4433, T, "vop"),
    (4443, T, "pharos"),
    (4500, U, "ipsec-nat-t"),
    (4567, T, "tram"),
    (4899, T, "radmin"),
    (5000, T, "commplex-main"),
    (5060, B, "sip"),
    (5061, T, "sips"),
    (5353, U, "mdns"),
    (5432, T, "postgresql"),
    (5555, T, "personal-agent"),
    (5671, T, "amqps"),
    (5672, T, "amqp"),
    (5683, U, "coap"),
    (5684, U, "coaps"),
    (5938, T, "teamviewer"),
    (5984, T, "couchdb"),
    (5985, T, "wsman"),
    (5986, T, "wsmans"),
    (6000, T, "x11"),
    (6443, T, "sun-sr-https"),
    (6666, T, "ircu"),
    (6667, T, "ircu"),
    (7001, T, "afs3-callback"),
    (7070, T, "arcp"),
    (8000, T, "irdmi"),
    (8008, T, "http-alt"),
    (8009, T, "ajp13"),
    (8080, T, "http-alt"),
    (8081, T, "sunproxyadmin"),
    (8088, T, "radan-http"),
    (8291, T, "winbox"),
    (8333, T, "bitcoin"),
    (8545, T, "ethereum-rpc"),
    (8728, T, "mikrotik-api"),
    (8883, T, "secure-mqtt"),
    (8888, T, "ddi-tcp-1"),
    (9000, T, "cslistener"),
    (9001, T, "etlservicemgr"),
    (9042, T, "cassandra"),
    (9090, T, "websm"),
    (9100, T, "jetdirect"),
    (9418, T, "git"),
    (9443, T, "tungsten-https"),
    (9999, T, "distinct"),
    (10000, T, "ndmp"),
    (10001, U, "scp-config"),
    (11211, U, "memcache"),
    (27015, U, "srcds"),
    (37215, T, "huawei-hg"),
    (47808, U, "bacnet"),
    (49152, T, "upnp-dynamic"),
    (50000, T, "ibm-db2-drda"),
    (50070, T, "hadoop-hdfs"),
    (52869, T, "upnp-miniupnpd"),
];

/// The name for a port of a protocol, as tsusen chose it: its own list first, then the
/// registry's name for that transport.
pub fn name(proto: u8, port: Option<u16>) -> Option<&'static str> {
    let port = port?;
    if let Ok(i) = MISC.binary_search_by_key(&port, |e| e.0) {
        return Some(MISC[i].1);
    }
    let want = match proto {
        TCP | SCTP => T,
        UDP => U,
        _ => B,
    };
    let start = IANA.partition_point(|e| e.0 < port);
    IANA[start..]
        .iter()
        .take_while(|e| e.0 == port)
        .find(|e| e.1 & want != 0)
        .map(|e| e.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_tsusen_names_win() {
        assert!(MISC.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(IANA.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(name(TCP, Some(22)), Some("ssh"));
        assert_eq!(name(UDP, Some(53)), Some("dns"));
        assert_eq!(name(TCP, Some(3389)), Some("rdesktop"));
        assert_eq!(name(UDP, Some(514)), Some("syslog"));
        assert_eq!(name(TCP, Some(514)), Some("shell"));
        assert_eq!(name(UDP, Some(80)), None);
        assert_eq!(name(TCP, Some(61_234)), None);
        assert_eq!(name(1, None), None);
    }
}
