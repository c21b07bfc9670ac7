//! The v9/IPFIX templates each exporter announced, kept per (exporter address, observation
//! domain or source id, template id) in a cache of fixed capacity. A refreshed template moves
//! to the back of the line; when the cache is full the oldest goes. One exporter and domain
//! may hold only so many templates, so a flood of new template ids from one source cannot
//! push out everyone else's: further new ids from it are refused (and counted).

use crate::addr::Addr;
use std::collections::{HashMap, VecDeque};

/// IPFIX: a field whose length is carried in the record (RFC 7011 §7).
pub const VARIABLE: u16 = 0xffff;

/// Largest number of fields we accept in one template (real ones have a few dozen).
pub const MAX_FIELDS: usize = 128;

/// One field specifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub id: u16,
    /// Bytes, or [`VARIABLE`].
    pub len: u16,
    /// The enterprise number of an enterprise-specific field (IPFIX), 0 for IANA's. Only
    /// RFC 5103's reverse elements (29305) are read; others are stepped over.
    pub pen: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub fields: Vec<Field>,
    /// An options template: its records describe the exporter, not flows.
    pub options: bool,
    /// Fewest bytes a record can take (variable fields count their one length byte).
    pub min_len: usize,
    pub variable: bool,
}

impl Template {
    /// Checks a list of fields; `None` when no record could be read with it.
    pub fn new(fields: Vec<Field>, options: bool) -> Option<Template> {
        if fields.is_empty() || fields.len() > MAX_FIELDS {
            return None;
        }
        let mut min_len = 0usize;
        let mut variable = false;
        for f in &fields {
            if f.len == VARIABLE {
                variable = true;
                min_len += 1;
            } else {
                min_len += f.len as usize;
            }
        }
        (min_len > 0).then_some(Template {
            fields,
            options,
            min_len,
            variable,
        })
    }
}

/// Where a template comes from: exporter and observation domain (IPFIX) or source id (v9).
/// v9 and IPFIX ids live apart (`ipfix`), as the same router may speak both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub exporter: Addr,
    pub domain: u32,
    pub ipfix: bool,
}

struct Entry {
    template: Template,
    /// Matches the queue entry that stands for it; older queue entries are stale.
    generation: u64,
}

/// What is kept per source besides its templates.
#[derive(Default)]
struct SourceState {
    templates: usize,
    /// IPFIX systemInitTimeMilliseconds from the source's options records, for times
    /// relative to its uptime.
    init_ms: Option<i64>,
}

/// The outcome of offering a template to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    New,
    Refreshed,
    /// The cache was full: the oldest template was dropped for it.
    Evicted,
    /// Its source already holds its share of new ids.
    Refused,
}

pub struct TemplateCache {
    map: HashMap<(Source, u16), Entry>,
    order: VecDeque<((Source, u16), u64)>,
    sources: HashMap<Source, SourceState>,
    capacity: usize,
    per_source: usize,
    generation: u64,
}

impl TemplateCache {
    pub fn new(capacity: usize, per_source: usize) -> TemplateCache {
        TemplateCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            sources: HashMap::new(),
            capacity: capacity.max(1),
            per_source: per_source.max(1),
            generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, src: &Source, id: u16) -> Option<&Template> {
        self.map.get(&(*src, id)).map(|e| &e.template)
    }

    pub fn insert(&mut self, src: Source, id: u16, template: Template) -> Learned {
        self.generation += 1;
        let g = self.generation;
        if let Some(e) = self.map.get_mut(&(src, id)) {
            e.template = template;
            e.generation = g;
            self.order.push_back(((src, id), g));
            self.compact_order();
            return Learned::Refreshed;
        }
        let held = self.sources.get(&src).map_or(0, |s| s.templates);
        if held >= self.per_source {
            return Learned::Refused;
        }
        let mut outcome = Learned::New;
        while self.map.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
            outcome = Learned::Evicted;
        }
        self.map.insert(
            (src, id),
            Entry {
                template,
                generation: g,
            },
        );
        self.sources.entry(src).or_default().templates += 1;
        self.order.push_back(((src, id), g));
        outcome
    }

    /// IPFIX template withdrawal.
    pub fn remove(&mut self, src: &Source, id: u16) {
        if self.map.remove(&(*src, id)).is_some() {
            self.forget_one(src);
        }
    }

    fn forget_one(&mut self, src: &Source) {
        if let Some(s) = self.sources.get_mut(src) {
            s.templates = s.templates.saturating_sub(1);
            if s.templates == 0 {
                self.sources.remove(src);
            }
        }
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, g)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.generation == g) {
                self.map.remove(&key);
                self.forget_one(&key.0);
                return true;
            }
        }
        false
    }

    /// Refreshes leave stale entries in the queue; drop them before it outgrows the map.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.capacity + 64 {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Remembers a source's system init time (only for sources holding a template, so
    /// this map stays as bounded as the templates).
    pub fn set_init_ms(&mut self, src: &Source, ms: i64) {
        if let Some(s) = self.sources.get_mut(src) {
            s.init_ms = Some(ms);
        }
    }

    pub fn init_ms(&self, src: &Source) -> Option<i64> {
        self.sources.get(src).and_then(|s| s.init_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u16) -> Template {
        Template::new(
            vec![Field {
                id: 8,
                len: n,
                pen: 0,
            }],
            false,
        )
        .unwrap()
    }

    fn src(n: u8) -> Source {
        Source {
            exporter: Addr::v4([192, 0, 2, n]),
            domain: 0,
            ipfix: false,
        }
    }

    #[test]
    fn bounded_oldest_out_and_per_source_share() {
        let mut c = TemplateCache::new(4, 3);
        assert_eq!(c.insert(src(1), 256, t(4)), Learned::New);
        assert_eq!(c.insert(src(1), 257, t(4)), Learned::New);
        assert_eq!(c.insert(src(1), 258, t(4)), Learned::New);
        assert_eq!(c.insert(src(1), 259, t(4)), Learned::Refused);
        assert_eq!(c.insert(src(1), 256, t(8)), Learned::Refreshed);
        assert_eq!(c.insert(src(2), 256, t(4)), Learned::New);
        // Full: the oldest (257, as 256 was refreshed) goes.
        assert_eq!(c.insert(src(3), 256, t(4)), Learned::Evicted);
        assert!(c.get(&src(1), 257).is_none());
        assert_eq!(c.get(&src(1), 256).unwrap().min_len, 8);
        assert_eq!(c.len(), 4);
        for i in 0..10_000u32 {
            c.insert(src(2), 256, t(4));
            c.insert(src((i % 200) as u8 + 10), 300, t(4));
        }
        assert!(c.len() <= 4 && c.order.len() <= 2 * 4 + 64 + 1);
        assert!(c.sources.len() <= 4);
        c.remove(&src(2), 256);
        assert!(c.get(&src(2), 256).is_none());
    }

    #[test]
    fn empty_or_zero_length_templates_are_refused() {
        assert!(Template::new(vec![], false).is_none());
        assert!(Template::new(
            vec![Field {
                id: 1,
                len: 0,
                pen: 0
            }],
            false
        )
        .is_none());
        let many = vec![
            Field {
                id: 1,
                len: 4,
                pen: 0
            };
            MAX_FIELDS + 1
        ];
        assert!(Template::new(many, false).is_none());
    }
}
