//! NetFlow v9 (RFC 3954): a 20-byte header, then flowsets: templates (id 0), options
//! templates (id 1) and data (id ≥ 256) read through a template this exporter and source id
//! announced earlier. Times are the router's uptime, as in v5.

use super::fields::{self, TimeBase};
use super::templates::{Field, Learned, Source, Template, TemplateCache, MAX_FIELDS};
use super::{be16, be32, Counters, Flow};
use crate::addr::Addr;

pub const HEADER_LEN: usize = 20;
const SET_HEADER_LEN: usize = 4;

#[derive(Clone, Copy, Debug)]
pub struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    pub fn new_checked(b: &'a [u8]) -> Option<Header<'a>> {
        (b.len() >= HEADER_LEN).then_some(Header(b))
    }
    pub fn version(&self) -> u16 {
        be16(self.0, 0)
    }
    /// Records (templates and data) in the datagram, by the exporter's count; many
    /// exporters get it wrong, so it is not relied on.
    pub fn count(&self) -> u16 {
        be16(self.0, 2)
    }
    pub fn sys_uptime(&self) -> u32 {
        be32(self.0, 4)
    }
    pub fn unix_secs(&self) -> u32 {
        be32(self.0, 8)
    }
    pub fn sequence(&self) -> u32 {
        be32(self.0, 12)
    }
    pub fn source_id(&self) -> u32 {
        be32(self.0, 16)
    }
}

/// A flowset (v9) or set (IPFIX): an id and a body, its length checked against what follows.
#[derive(Clone, Copy, Debug)]
pub struct Set<'a> {
    pub id: u16,
    pub body: &'a [u8],
}

/// Why the sets of a datagram stopped before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// A set length below its own header: nothing after it can be found.
    BadLength,
    /// A set longer than the datagram.
    Truncated,
}

/// Iterates the sets in `b` (the bytes after the message header).
pub struct Sets<'a> {
    rest: &'a [u8],
}

impl<'a> Sets<'a> {
    pub fn new(rest: &'a [u8]) -> Sets<'a> {
        Sets { rest }
    }
}

impl<'a> Iterator for Sets<'a> {
    type Item = Result<Set<'a>, SetError>;
    fn next(&mut self) -> Option<Self::Item> {
        // Fewer bytes than a set header: padding at the end of the datagram.
        if self.rest.len() < SET_HEADER_LEN {
            return None;
        }
        let id = be16(self.rest, 0);
        let len = be16(self.rest, 2) as usize;
        let r = if len < SET_HEADER_LEN {
            Err(SetError::BadLength)
        } else if len > self.rest.len() {
            Err(SetError::Truncated)
        } else {
            let body = &self.rest[SET_HEADER_LEN..len];
            self.rest = &self.rest[len..];
            return Some(Ok(Set { id, body }));
        };
        self.rest = &[];
        Some(r)
    }
}

/// Reads `n` field specifiers at the start of `b` (IPFIX ones may carry an enterprise number).
pub(super) fn field_specs(b: &[u8], n: usize, ipfix: bool) -> Option<(Vec<Field>, usize)> {
    if n > MAX_FIELDS || n * 4 > b.len() {
        return None;
    }
    let mut v = Vec::with_capacity(n);
    let mut at = 0;
    for _ in 0..n {
        let spec = b.get(at..at + 4)?;
        let raw = be16(spec, 0);
        let len = be16(spec, 2);
        at += 4;
        let mut pen = 0;
        if ipfix && raw & 0x8000 != 0 {
            let p = b.get(at..at + 4)?;
            pen = u32::from_be_bytes([p[0], p[1], p[2], p[3]]).max(1);
            at += 4;
        }
        v.push(Field {
            id: if ipfix { raw & 0x7fff } else { raw },
            len: if !ipfix && len == super::templates::VARIABLE {
                // v9 has no variable-length fields: such a length is a lie.
                return None;
            } else {
                len
            },
            pen,
        });
    }
    Some((v, at))
}

/// Offers a parsed template to the cache and counts the outcome.
pub(super) fn learn(
    templates: &mut TemplateCache,
    src: Source,
    id: u16,
    t: Option<Template>,
    c: &mut Counters,
) {
    let Some(t) = t.filter(|_| id >= 256) else {
        c.bad_template += 1;
        return;
    };
    match templates.insert(src, id, t) {
        Learned::New | Learned::Refreshed => c.templates += 1,
        Learned::Evicted => {
            c.templates += 1;
            c.template_evictions += 1;
        }
        Learned::Refused => c.template_flood += 1,
    }
}

/// The records of one data set, through its template.
#[allow(clippy::too_many_arguments)]
pub(super) fn data_set(
    src: &Source,
    id: u16,
    body: &[u8],
    templates: &mut TemplateCache,
    mut base: TimeBase,
    c: &mut Counters,
    emit: &mut dyn FnMut(Flow),
) {
    let Some(t) = templates.get(src, id) else {
        c.no_template += 1;
        return;
    };
    if !src.ipfix {
        base.init_ms = None;
    } else {
        base.init_ms = templates.init_ms(src);
    }
    let mut init = None;
    let mut rest = body;
    while rest.len() >= t.min_len {
        let Some((raw, used)) = fields::read(t, rest) else {
            c.truncated += 1;
            break;
        };
        rest = &rest[used.max(1).min(rest.len())..];
        if t.options {
            c.options_records += 1;
            init = raw.init_ms.or(init);
            continue;
        }
        if raw.init_ms.is_some() {
            init = raw.init_ms;
        }
        match fields::to_flow(&raw, src.exporter, &base) {
            Some(f) => {
                c.records += 1;
                emit(f);
                // A biflow (RFC 5103): its reverse direction as a flow of its own.
                if let Some(r) = fields::reverse(&raw, &f) {
                    emit(r);
                }
            }
            None => c.unusable += 1,
        }
    }
    if let Some(ms) = init {
        templates.set_init_ms(src, ms);
    }
}

pub fn decode(
    exporter: Addr,
    b: &[u8],
    templates: &mut TemplateCache,
    c: &mut Counters,
    emit: &mut dyn FnMut(Flow),
) {
    let Some(h) = Header::new_checked(b) else {
        c.truncated += 1;
        return;
    };
    let src = Source {
        exporter,
        domain: h.source_id(),
        ipfix: false,
    };
    let base = TimeBase {
        export_ms: h.unix_secs() as i64 * 1000,
        uptime_ms: Some(h.sys_uptime()),
        init_ms: None,
    };
    for set in Sets::new(&b[HEADER_LEN..]) {
        let set = match set {
            Ok(s) => s,
            Err(SetError::BadLength) => {
                c.bad_length += 1;
                break;
            }
            Err(SetError::Truncated) => {
                c.truncated += 1;
                break;
            }
        };
        match set.id {
            0 => template_set(&src, set.body, templates, c),
            1 => options_template_set(&src, set.body, templates, c),
            2..=255 => c.unknown_sets += 1,
            id => data_set(&src, id, set.body, templates, base, c, emit),
        }
    }
}

fn template_set(src: &Source, mut b: &[u8], templates: &mut TemplateCache, c: &mut Counters) {
    while b.len() >= 4 {
        let id = be16(b, 0);
        let n = be16(b, 2) as usize;
        let Some((fields, used)) = field_specs(&b[4..], n, false) else {
            c.bad_template += 1;
            return;
        };
        learn(templates, *src, id, Template::new(fields, false), c);
        b = &b[4 + used..];
    }
}

fn options_template_set(
    src: &Source,
    mut b: &[u8],
    templates: &mut TemplateCache,
    c: &mut Counters,
) {
    // Each: template id, scope length and option length in bytes, then the specifiers.
    while b.len() >= 6 {
        let id = be16(b, 0);
        let scope = be16(b, 2) as usize;
        let opts = be16(b, 4) as usize;
        if id == 0 && scope == 0 {
            return; // padding
        }
        if !(scope + opts).is_multiple_of(4) {
            c.bad_template += 1;
            return;
        }
        let Some((fields, used)) = field_specs(&b[6..], (scope + opts) / 4, false) else {
            c.bad_template += 1;
            return;
        };
        learn(templates, *src, id, Template::new(fields, true), c);
        b = &b[6 + used..];
    }
}
