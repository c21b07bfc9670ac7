//! IPFIX (RFC 7011): a 16-byte message header with the export time and observation domain,
//! then sets: templates (id 2), options templates (id 3) and data (id ≥ 256). Fields may be
//! of variable length or enterprise-specific (stepped over). Times are absolute
//! (flowStart/End Seconds, Milliseconds, Micro- and Nanoseconds), relative to the export time
//! (flowStart/EndDeltaMicroseconds), or relative to the exporter's uptime
//! (flowStart/EndSysUpTime) with its systemInitTimeMilliseconds from an options record.

use super::fields::TimeBase;
use super::templates::{Source, Template, TemplateCache};
use super::v9::{data_set, field_specs, learn, SetError, Sets};
use super::{be16, be32, Counters, Flow};
use crate::addr::Addr;

pub const HEADER_LEN: usize = 16;

#[derive(Clone, Copy, Debug)]
pub struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    pub fn new_checked(b: &'a [u8]) -> Option<Header<'a>> {
        (b.len() >= HEADER_LEN).then_some(Header(b))
    }
    pub fn version(&self) -> u16 {
        be16(self.0, 0)
    }
    /// The message's length, header included.
    pub fn length(&self) -> usize {
        be16(self.0, 2) as usize
    }
    pub fn export_time(&self) -> u32 {
        be32(self.0, 4)
    }
    pub fn sequence(&self) -> u32 {
        be32(self.0, 8)
    }
    pub fn domain(&self) -> u32 {
        be32(self.0, 12)
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
    let len = h.length();
    if len < HEADER_LEN {
        c.bad_length += 1;
        return;
    }
    if len > b.len() {
        c.truncated += 1;
        return;
    }
    let src = Source {
        exporter,
        domain: h.domain(),
        ipfix: true,
    };
    let base = TimeBase {
        export_ms: h.export_time() as i64 * 1000,
        uptime_ms: None,
        init_ms: None,
    };
    // Bytes after the message's length belong to no set (RFC 7011 has one message per
    // datagram over UDP): ignored.
    for set in Sets::new(&b[HEADER_LEN..len]) {
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
            2 => template_set(&src, set.body, templates, c, false),
            3 => template_set(&src, set.body, templates, c, true),
            0..=255 => c.unknown_sets += 1,
            id => data_set(&src, id, set.body, templates, base, c, emit),
        }
    }
}

fn template_set(
    src: &Source,
    mut b: &[u8],
    templates: &mut TemplateCache,
    c: &mut Counters,
    options: bool,
) {
    let head = if options { 6 } else { 4 };
    while b.len() >= head {
        let id = be16(b, 0);
        let n = be16(b, 2) as usize;
        if n == 0 {
            // A withdrawal (or padding when the id is 0 too).
            if id >= 256 {
                templates.remove(src, id);
            }
            b = &b[4..];
            if id == 0 {
                return;
            }
            continue;
        }
        if options {
            let scope = be16(b, 4) as usize;
            if scope == 0 || scope > n {
                c.bad_template += 1;
                return;
            }
        }
        let Some((fields, used)) = field_specs(&b[head..], n, true) else {
            c.bad_template += 1;
            return;
        };
        learn(templates, *src, id, Template::new(fields, options), c);
        b = &b[head + used..];
    }
}
