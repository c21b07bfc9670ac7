//! Countries and autonomous systems of sources, from MaxMind DB files (GEOIP_DATABASE,
//! ASN_DATABASE). Read by the `maxminddb` crate; we decode only the few fields we show, so one
//! reader serves every layout in use:
//! - GeoLite2/GeoIP2 Country or City, and DB-IP's: `country.iso_code` (else
//!   `registered_country.iso_code`, for addresses with no located country);
//! - the ip-location-db packages: a flat `country_code`;
//! - GeoLite2-ASN (and ip-location-db's ASN files): `autonomous_system_number`,
//!   `autonomous_system_organization`.
//!
//! Lookups are made for the rows a page shows (and the summary's top sources), never for a whole
//! period, so they cost microseconds per answer; the answers are cached with the rest. No
//! database, or one that does not open (logged once, naming the file), and the report simply
//! has no country or AS columns.

use crate::addr::Addr;
use maxminddb::Reader;
use serde::Deserialize;
use std::path::Path;

/// Largest database file loaded (it is read into memory): a City database is about 60 MiB.
const MAX_DATABASE_BYTES: u64 = 256 * 1024 * 1024;

/// What we know of one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<[u8; 2]>,
    pub asn: Option<u32>,
    pub as_name: Option<String>,
}

impl Place {
    pub fn country_text(&self) -> Option<&str> {
        self.country
            .as_ref()
            .and_then(|c| std::str::from_utf8(c).ok())
    }
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// The country fields of every country layout we read; the rest of a record is passed over.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<AnyUint>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

/// An unsigned number stored as any MaxMind integer type: MaxMind's ASN files use uint32,
/// other writers uint16 or uint64, and a strict `u32` field refuses all but one.
struct AnyUint(u64);

impl<'de> Deserialize<'de> for AnyUint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AnyUint, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AnyUint;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AnyUint, E> {
                Ok(AnyUint(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<AnyUint, E> {
                u64::try_from(v)
                    .map(AnyUint)
                    .map_err(|_| E::custom("too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AnyUint, E> {
                u64::try_from(v)
                    .map(AnyUint)
                    .map_err(|_| E::custom("negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The databases that opened.
#[derive(Default)]
pub struct Geo {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

/// Opens a database, or says in one line why not.
fn open(key: &str, path: &Path) -> Option<Reader<Vec<u8>>> {
    let fail = |why: String| {
        log::error!(
            "{key} {}: cannot be used ({why}); the report goes on without it",
            path.display()
        );
        None
    };
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_DATABASE_BYTES => {
            return fail(format!(
                "{} bytes, more than the {MAX_DATABASE_BYTES} we load",
                m.len()
            ))
        }
        Ok(_) => {}
        Err(e) => return fail(e.to_string()),
    }
    match Reader::open_readfile(path) {
        Ok(r) => {
            log::info!(
                "{key} {}: {}, {} nodes",
                path.display(),
                r.metadata().database_type,
                r.metadata().node_count
            );
            Some(r)
        }
        Err(e) => fail(e.to_string()),
    }
}

impl Geo {
    pub fn open(country: Option<&Path>, asn: Option<&Path>) -> Geo {
        Geo {
            country: country.and_then(|p| open("GEOIP_DATABASE", p)),
            asn: asn.and_then(|p| open("ASN_DATABASE", p)),
        }
    }

    pub fn has_country(&self) -> bool {
        self.country.is_some()
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// The source's country and AS, as far as the databases know. A record that does not
    /// decode counts as unknown: the database is data, not a reason to fail a page.
    pub fn place(&self, a: &Addr) -> Place {
        let ip = a.to_ip();
        let mut p = Place::default();
        if let Some(r) = &self.country {
            if let Ok(Some(rec)) = r.lookup(ip).and_then(|l| l.decode::<CountryRecord>()) {
                p.country = rec
                    .country
                    .and_then(|c| c.iso_code)
                    .or(rec.country_code)
                    .or(rec.registered_country.and_then(|c| c.iso_code))
                    .and_then(iso);
            }
        }
        if let Some(r) = &self.asn {
            if let Ok(Some(rec)) = r.lookup(ip).and_then(|l| l.decode::<AsnRecord>()) {
                p.asn = rec
                    .autonomous_system_number
                    .and_then(|n| u32::try_from(n.0).ok());
                p.as_name = rec
                    .autonomous_system_organization
                    .map(|s| s.chars().filter(|c| !c.is_control()).take(80).collect());
            }
        }
        p
    }
}

/// Two ASCII letters, upper-cased; anything else is no country.
fn iso(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/geoip")
            .join(name)
    }

    fn ip(s: &str) -> Addr {
        Addr::from(s.parse::<std::net::IpAddr>().unwrap())
    }

    #[test]
    fn every_layout_gives_a_country() {
        let g = Geo::open(Some(&db("country.mmdb")), Some(&db("asn.mmdb")));
        let p = g.place(&ip("203.0.113.7"));
        assert_eq!(p.country_text(), Some("JP"));
        assert_eq!(p.asn, Some(64500));
        assert_eq!(p.as_name.as_deref(), Some("Example Transit"));
        assert_eq!(g.place(&ip("203.0.113.200")).country_text(), Some("US"));
        let p6 = g.place(&ip("2001:db8:9::2"));
        assert_eq!((p6.country_text(), p6.asn), (Some("DE"), Some(64501)));
        assert_eq!(g.place(&ip("198.51.100.1")), Place::default());
        let city = Geo::open(Some(&db("city.mmdb")), None);
        assert_eq!(city.place(&ip("203.0.113.7")).country_text(), Some("CA"));
        let flat = Geo::open(Some(&db("flat-country.mmdb")), None);
        assert_eq!(flat.place(&ip("192.0.2.1")).country_text(), Some("BR"));
        assert!(!flat.has_asn());
    }

    #[test]
    fn a_database_that_does_not_open_is_left_out() {
        let g = Geo::open(
            Some(Path::new("/nonexistent/x.mmdb")),
            Some(&db("make_test_dbs.py")),
        );
        assert!(!g.has_country() && !g.has_asn());
        assert_eq!(g.place(&ip("203.0.113.7")), Place::default());
    }
}
