#!/usr/bin/env python3
"""Writes the tiny MaxMind DB files tests/report_geoip.rs reads (committed beside this script,
so the tests need no Python). Rerun after changing the networks below:

    pip install mmdb-writer netaddr
    python3 tests/geoip/make_test_dbs.py

Only documentation networks (RFC 5737, RFC 3849) and AS numbers reserved for documentation
(RFC 5398) are used: nothing here describes a real network.
"""
import os

import netaddr
from mmdb_writer import MMDBWriter, MmdbU16, MmdbU32

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, database_type, records):
    w = MMDBWriter(ip_version=6, database_type=database_type, ipv4_compatible=True)
    for network, data in records:
        w.insert_network(netaddr.IPSet([network]), data)
    w.to_db_file(os.path.join(HERE, name))


def country(iso):
    # GeoLite2-Country / GeoIP2 / DB-IP layout: nested objects with an iso_code.
    return {
        "country": {"iso_code": iso, "names": {"en": iso}},
        "registered_country": {"iso_code": iso},
        "continent": {"code": "EU"},
    }


write(
    "country.mmdb",
    "GeoLite2-Country",
    [
        ("203.0.113.0/25", country("JP")),
        ("203.0.113.128/25", country("US")),
        ("192.0.2.0/24", country("FR")),
        ("2001:db8:9::/48", country("DE")),
    ],
)

# A City database carries the same `country` object among many others.
write(
    "city.mmdb",
    "GeoLite2-City",
    [
        ("203.0.113.0/24", {**country("CA"), "city": {"names": {"en": "Example"}},
                            "location": {"latitude": 1.5, "longitude": 2.5}}),
    ],
)

# The flat layout of the ip-location-db packages (e.g. geo-whois-asn-country).
write(
    "flat-country.mmdb",
    "ip-location-db-country",
    [
        ("203.0.113.0/24", {"country_code": "NL"}),
        ("192.0.2.0/24", {"country_code": "BR"}),
    ],
)

# GeoLite2-ASN layout: the number is a uint32 in MaxMind's files; the second network stores
# it as a uint16, as smaller writers do, which the reader must take too.
write(
    "asn.mmdb",
    "GeoLite2-ASN",
    [
        ("203.0.113.0/24", {"autonomous_system_number": MmdbU32(64500),
                            "autonomous_system_organization": "Example Transit"}),
        ("2001:db8:9::/48", {"autonomous_system_number": MmdbU16(64501),
                             "autonomous_system_organization": "Documentation Net"}),
    ],
)
