//! What the engine needs from an event, and the implementation for JSON documents.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use rustc_hash::FxHashMap;
use serde_json::Value as Json;

use crate::json::JsonEvent;
use crate::pipeline::Renames;
use std::sync::Arc;

/// One field's value as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    /// A multi-valued field: a selection matches when any element matches.
    List(Vec<FieldValue<'a>>),
}

impl FieldValue<'_> {
    /// The text Sigma's string comparisons see: numbers and booleans as written in JSON,
    /// so `EventID: 4688` in a rule matches both `4688` and `"4688"` in an event.
    /// `None` for null and lists.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            FieldValue::Str(s) => Some(Cow::Borrowed(s)),
            FieldValue::Int(i) => Some(Cow::Owned(i.to_string())),
            FieldValue::Float(f) => Some(Cow::Owned(f.to_string())),
            FieldValue::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            FieldValue::Null | FieldValue::List(_) => None,
        }
    }

    /// The value as a number, for `lt`/`lte`/`gt`/`gte` (numeric strings count).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Float(f) => Some(*f),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// An event rules can be evaluated against.
pub trait Event {
    /// The value of a field, `None` when the event has no such field.
    fn field(&self, name: &str) -> Option<FieldValue<'_>>;

    /// Calls `f` with each string a keyword search (a search without field names) looks at,
    /// stopping and returning `true` as soon as `f` does.
    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool;

    /// The JSON document behind the event, when it is one: lets the engine flatten a Windows
    /// event's fields once per evaluation instead of searching them on every lookup.
    fn as_json(&self) -> Option<&Json> {
        None
    }

    /// The event's parsed JSON table, when it is a [`JsonEvent`]: the engine then reads its
    /// fields without a `serde_json::Value`.
    fn as_json_event(&self) -> Option<&JsonEvent<'_>> {
        None
    }
}

/// JSON events. Field names are looked up as a whole key first, then as a dotted path
/// (`process.parent.name`). Windows events shaped `{"Event":{"System":{..},"EventData":{..}}}`
/// (as converted from EVTX) are looked up in `EventData` (where `SourceName` also finds a
/// `"Source Name"` key, as Windows Defender writes them), then `UserData`'s single child, then
/// `System`; System values written as `{"#text": ..}` read as their text, and an attribute
/// is reached as `Element_Attribute` (`Provider_Name` is `Provider.#attributes.Name`).
impl Event for Json {
    fn as_json(&self) -> Option<&Json> {
        Some(self)
    }

    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        if let Some(v) = windows_event(self).and_then(|event| windows_field(event, name)) {
            return Some(v);
        }
        lookup(self, name).map(to_field_value)
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        json_keywords(self, &mut |s| f(&s))
    }
}

/// [`Event::any_keyword`] for JSON, with strings borrowed from the document.
fn json_keywords<'a>(root: &'a Json, f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
    fn walk<'a>(v: &'a Json, f: &mut dyn FnMut(Cow<'a, str>) -> bool) -> bool {
        match v {
            Json::String(s) => f(Cow::Borrowed(s)),
            Json::Number(n) => f(Cow::Owned(n.to_string())),
            Json::Array(items) => items.iter().any(|i| walk(i, f)),
            Json::Object(map) => map.values().any(|i| walk(i, f)),
            Json::Bool(_) | Json::Null => false,
        }
    }
    match windows_event(root) {
        Some(event) => ["EventData", "UserData"]
            .iter()
            .filter_map(|k| event.get(*k))
            .any(|v| walk(v, f)),
        None => match root.get("event").and_then(|e| e.get("original")) {
            // A normalized event parsed from a text line (docs/EVENTS.md): keyword searches
            // look at the line as written and its message, as they do at a Windows event's
            // data, not at what was added to it (log.file.path, host.name, agent.*, ...).
            Some(Json::String(original)) => {
                let message = root.get("message").and_then(Json::as_str);
                message.is_some_and(|m| f(Cow::Borrowed(m))) || f(Cow::Borrowed(original))
            }
            _ => walk(root, f),
        },
    }
}

/// Whether `b` has an ASCII capital or a non-ASCII byte: eight bytes per step.
fn has_upper_or_non_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        // With each byte's high bit set no subtraction borrows from the next byte: the high
        // bit stays set where the byte (as ASCII) is >= 'A', and where it is > 'Z'.
        let at_least_a = (w | HIGH) - ONES * 0x41;
        let above_z = (w | HIGH) - ONES * 0x5B;
        if (w & HIGH) | (at_least_a & !above_z & HIGH) != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|b| b.is_ascii_uppercase() || *b >= 0x80)
}

/// `text` lower-cased, still borrowed when lower-casing changes nothing.
fn lowered<'a>(text: &Cow<'a, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(s) if !has_upper_or_non_ascii(s.as_bytes()) => Cow::Borrowed(s),
        // The same as `to_lowercase` for ASCII, byte by byte.
        text if text.is_ascii() => Cow::Owned(text.to_ascii_lowercase()),
        text => Cow::Owned(text.to_lowercase()),
    }
}

fn windows_event(v: &Json) -> Option<&Json> {
    let event = v.get("Event")?;
    event.get("System").is_some().then_some(event)
}

fn windows_field<'a>(event: &'a Json, name: &str) -> Option<FieldValue<'a>> {
    if let Some(Json::Object(data)) = event.get("EventData") {
        if let Some(v) = data.get(name) {
            return Some(to_field_value(v));
        }
        // Some providers (Windows Defender) name their data with spaces ("Source Name");
        // Sigma rules write those names without them ("SourceName"). Of several, the first
        // in key order (whatever order the map keeps, as a parsed event's table does).
        let unspaced = data
            .iter()
            .filter(|(k, _)| k.contains(' ') && k.chars().filter(|c| *c != ' ').eq(name.chars()))
            .min_by_key(|(k, _)| *k);
        if let Some((_, v)) = unspaced {
            return Some(to_field_value(v));
        }
    }
    if let Some(Json::Object(user)) = event.get("UserData") {
        // UserData wraps its fields in one provider-specific element (of several, the first
        // in key order that has the field).
        let found = user
            .iter()
            .filter_map(|(k, inner)| Some((k, inner.get(name)?)))
            .min_by_key(|(k, _)| *k);
        if let Some((_, v)) = found {
            return Some(to_field_value(v));
        }
    }
    let system = event.get("System")?;
    if let Some(v) = system.get(name) {
        return Some(to_field_value(v));
    }
    let (element, attribute) = name.split_once('_')?;
    system
        .get(element)?
        .get("#attributes")?
        .get(attribute)
        .map(to_field_value)
}

fn lookup<'a>(v: &'a Json, name: &str) -> Option<&'a Json> {
    if let Some(found) = v.get(name) {
        return Some(found);
    }
    let mut cur = v;
    for part in name.split('.') {
        cur = match cur {
            Json::Object(map) => map.get(part)?,
            Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn to_field_value(v: &Json) -> FieldValue<'_> {
    match v {
        Json::String(s) => FieldValue::Str(Cow::Borrowed(s)),
        Json::Number(n) => number_value(n),
        Json::Bool(b) => FieldValue::Bool(*b),
        Json::Null => FieldValue::Null,
        Json::Array(items) => FieldValue::List(items.iter().map(to_field_value).collect()),
        Json::Object(map) => match map.get("#text") {
            Some(text) => to_field_value(text),
            None => FieldValue::Str(Cow::Owned(v.to_string())),
        },
    }
}

/// A JSON number as the engine compares it: an integer when it is one, else a float, else
/// (beyond f64) its text. Shared by `Value` events and [`JsonEvent`].
pub(crate) fn number_value(n: &serde_json::Number) -> FieldValue<'static> {
    match n.as_i64() {
        Some(i) => FieldValue::Int(i),
        None => n
            .as_f64()
            .map(FieldValue::Float)
            .unwrap_or_else(|| FieldValue::Str(Cow::Owned(n.to_string()))),
    }
}

/// Field names interned process-wide, so a prepared event caches lookups in a flat table.
static FIELD_IDS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);
static FIELD_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The id of a field name (the same name always gets the same id).
pub(crate) fn field_id(name: &str) -> usize {
    let mut ids = FIELD_IDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&id) = ids.get(name) {
        return id;
    }
    let id = ids.len();
    ids.insert(name.to_string(), id);
    FIELD_COUNT.store(id + 1, Ordering::Release);
    id
}

/// One scalar of a field's value (lists flattened, nulls left out), with its text and the
/// lower-cased text computed once.
pub(crate) struct Leaf<'a> {
    pub(crate) value: FieldValue<'a>,
    pub(crate) text: Option<Cow<'a, str>>,
    lower: OnceCell<Cow<'a, str>>,
}

impl Leaf<'_> {
    /// The text lower-cased (computed on first use). Only for leaves with text.
    pub(crate) fn lower(&self) -> &str {
        self.lower.get_or_init(|| match &self.text {
            Some(text) => lowered(text),
            None => Cow::Borrowed(""),
        })
    }
}

/// A field's value as looked up once for an event.
pub(crate) struct Slot<'a> {
    pub(crate) value: FieldValue<'a>,
    leaves: Leaves<'a>,
}

/// Most fields hold one scalar: its leaf is kept without a vector.
enum Leaves<'a> {
    One(Leaf<'a>),
    Many(Vec<Leaf<'a>>),
}

impl<'a> Slot<'a> {
    pub(crate) fn new(value: FieldValue<'a>) -> Self {
        fn leaf<'a>(v: &FieldValue<'a>) -> Option<Leaf<'a>> {
            let text = match v {
                FieldValue::List(_) | FieldValue::Null => return None,
                FieldValue::Str(Cow::Borrowed(s)) => Cow::Borrowed(*s),
                v => Cow::Owned(v.as_text()?.into_owned()),
            };
            Some(Leaf {
                value: v.clone(),
                text: Some(text),
                lower: OnceCell::new(),
            })
        }
        fn flatten<'a>(v: &FieldValue<'a>, out: &mut Vec<Leaf<'a>>) {
            match v {
                FieldValue::List(items) => items.iter().for_each(|i| flatten(i, out)),
                v => out.extend(leaf(v)),
            }
        }
        let leaves = match (&value, leaf(&value)) {
            (_, Some(one)) => Leaves::One(one),
            (FieldValue::List(_), None) => {
                let mut many = Vec::new();
                flatten(&value, &mut many);
                Leaves::Many(many)
            }
            (_, None) => Leaves::Many(Vec::new()),
        };
        Slot { value, leaves }
    }

    /// Gives the leaves that are strings of `doc` their lower-cased forms from its
    /// lower-cased copy, instead of lower-casing each on its own.
    fn lower_from(&mut self, doc: &'a JsonEvent<'a>) {
        let leaves = match &mut self.leaves {
            Leaves::One(leaf) => std::slice::from_mut(leaf),
            Leaves::Many(leaves) => leaves,
        };
        for leaf in leaves {
            if let Some(Cow::Borrowed(text)) = leaf.text
                && let Some(lower) = doc.lower_of(text)
            {
                leaf.lower = OnceCell::from(Cow::Borrowed(lower));
            }
        }
    }

    /// The scalars of the value (lists flattened, nulls left out).
    pub(crate) fn leaves(&self) -> &[Leaf<'a>] {
        match &self.leaves {
            Leaves::One(leaf) => std::slice::from_ref(leaf),
            Leaves::Many(leaves) => leaves,
        }
    }
}

/// The strings keyword searches look at, with their lower-cased forms: one buffer holds
/// those that lower-casing changes.
#[derive(Default)]
pub(crate) struct Keywords<'a> {
    /// Each string, and where `lower` holds its lower-cased form when that differs.
    texts: Vec<(Cow<'a, str>, Option<Range<usize>>)>,
    lower: String,
}

impl<'a> Keywords<'a> {
    fn push(&mut self, raw: Cow<'a, str>) {
        let lower = has_upper_or_non_ascii(raw.as_bytes()).then(|| {
            let from = self.lower.len();
            if raw.is_ascii() {
                self.lower.push_str(&raw);
                if let Some(added) = self.lower.get_mut(from..) {
                    added.make_ascii_lowercase();
                }
            } else {
                self.lower.push_str(&raw.to_lowercase());
            }
            from..self.lower.len()
        });
        self.texts.push((raw, lower));
    }

    /// Each string and its lower-cased form.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts.iter().map(|(raw, lower)| {
            let lower = match lower {
                Some(range) => self.lower.get(range.clone()).unwrap_or_default(),
                None => raw,
            };
            (&**raw, lower)
        })
    }
}

/// An event prepared for evaluating many rules: JSON documents are read through their node
/// table ([`JsonEvent`], made from a `Value` when given one), Windows events flattened once
/// into a map (with the same precedence as [`Event::field`]), and every field a rule asks for
/// is looked up once and kept, with its lower-cased text, for the other rules.
pub(crate) struct Cache<'a> {
    inner: &'a dyn Event,
    doc: Option<&'a JsonEvent<'a>>,
    /// A Windows event's fields (empty for other events).
    flat: Flat,
    /// Per field id: `generation << 32` and then 1 absent, `n + 2` in `slots[n]`; any other
    /// generation means not looked up yet. An event touches a few dozen of the thousands of
    /// field names rules use: the table is kept for the thread's next event, which starts a
    /// new generation instead of clearing it.
    index: Box<[Cell<u64>]>,
    generation: u64,
    /// The fields looked up, in blocks made as they fill (references to them stay valid):
    /// see [`block_of`].
    slots: [OnceCell<Box<[OnceCell<Slot<'a>>]>>; BLOCKS],
    /// How many of `slots` are taken.
    taken: Cell<usize>,
    /// Field ids below this are cached.
    fields: usize,
    keywords: OnceCell<Keywords<'a>>,
}

/// What a [`Cache`] leaves for the thread's next event: its field table with its generation,
/// its Windows field map's buffers and its first block of slots (emptied).
struct Spare {
    index: Box<[Cell<u64>]>,
    generation: u64,
    flat: Flat,
    block: Vec<OnceCell<Slot<'static>>>,
}

/// `v` emptied, as a vector of another type of the same size and alignment (here: of
/// another lifetime) in the same allocation: the standard library collects a vector's
/// `into_iter()` adapters in place. Were it to stop doing so, a new vector would be made,
/// nothing worse; `recycled_vectors_keep_their_allocation` checks that it does.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

thread_local! {
    /// What the thread's last event left.
    static SPARE: Cell<Option<Spare>> = const { Cell::new(None) };
}

/// Windows field maps with more entries than this are not kept for the next event: one huge
/// event should not hold its memory for the thread's life.
const MAX_SPARE_ENTRIES: usize = 4096;

impl Drop for Cache<'_> {
    fn drop(&mut self) {
        let mut flat = std::mem::take(&mut self.flat);
        if flat.entries.capacity() > MAX_SPARE_ENTRIES || flat.order.capacity() > MAX_SPARE_ENTRIES
        {
            flat = Flat::default();
        }
        let block = self.slots[0].take().map(|b| recycle(b.into_vec()));
        let spare = Spare {
            index: std::mem::take(&mut self.index),
            generation: self.generation,
            flat,
            block: block.unwrap_or_default(),
        };
        let _ = SPARE.try_with(|pool| pool.set(Some(spare)));
    }
}

/// Slots in the first block of [`Cache`]'s slots; each next block holds twice as many.
const FIRST_BLOCK: usize = 16;
/// Blocks of [`Cache`]'s slots: room for a billion fields, in a table small enough to be
/// part of the cache (instead of one allocated for each event with a block per 16 fields).
const BLOCKS: usize = 26;

/// The block of slot `n` and its place in it: block `k` holds `FIRST_BLOCK << k` slots,
/// from slot `FIRST_BLOCK * (2^k - 1)` on.
fn block_of(n: usize) -> (usize, usize) {
    let k = (n / FIRST_BLOCK + 1).ilog2() as usize;
    (k, n - FIRST_BLOCK * ((1 << k) - 1))
}

/// A pipeline alternative's field renames, for views of an event.
#[derive(Debug, Clone, Default)]
pub(crate) struct ViewRenames {
    /// Rule field id -> the event fields (id, name) it may be called, tried in order.
    by_id: FxHashMap<usize, Vec<(usize, String)>>,
    /// The same by name (for fields looked up without the cache).
    by_name: Arc<Renames>,
}

impl ViewRenames {
    pub(crate) fn new(renames: Arc<Renames>) -> Self {
        let by_id = renames
            .iter()
            .map(|(from, to)| {
                let to = to.iter().map(|t| (field_id(t), t.clone())).collect();
                (field_id(from), to)
            })
            .collect();
        ViewRenames {
            by_id,
            by_name: renames,
        }
    }
}

/// An event as rules see it: its [`Cache`], through a pipeline alternative's field renames
/// or as it is. Views of one event share its cache, so a field is looked up and lower-cased
/// once per event whatever the views that read it.
#[derive(Clone, Copy)]
pub(crate) struct Prepared<'v, 'a> {
    cache: &'v Cache<'a>,
    renames: Option<&'v ViewRenames>,
}

impl<'v, 'a> Prepared<'v, 'a> {
    /// Calls `f` with `event` prepared: a JSON event's node table is made here when the event
    /// is a `serde_json::Value`.
    pub(crate) fn with<R>(event: &dyn Event, f: impl FnOnce(&Prepared<'_, '_>) -> R) -> R {
        let walked;
        let doc = match event.as_json_event() {
            Some(doc) => Some(doc),
            None => match event.as_json() {
                Some(value) => {
                    walked = JsonEvent::from_value(value);
                    Some(&walked)
                }
                None => None,
            },
        };
        let cache = Cache::new(event, doc);
        f(&Prepared {
            cache: &cache,
            renames: None,
        })
    }

    /// The same event seen through `renames`.
    pub(crate) fn view(&self, renames: &'v ViewRenames) -> Self {
        Prepared {
            cache: self.cache,
            renames: Some(renames),
        }
    }

    /// The field with id `id` (named `name`), looked up once per event.
    pub(crate) fn slot(&self, id: usize, name: &str) -> Option<&'v Slot<'a>> {
        match self.renames.and_then(|r| r.by_id.get(&id)) {
            Some(targets) => targets.iter().find_map(|(t, n)| self.cache.slot(*t, n)),
            None => self.cache.slot(id, name),
        }
    }

    /// Whether `id` is beyond the cache (the caller then looks the field up itself).
    pub(crate) fn cached(&self, id: usize) -> bool {
        id < self.cache.fields
    }

    /// The strings a keyword search looks at, collected once per event.
    pub(crate) fn keywords(&self) -> &'v Keywords<'a> {
        self.cache.keywords()
    }

    /// Whether one of the strings a keyword search looks at may, lower-cased, contain one of
    /// `filter`'s (lower-cased, ASCII case-insensitive) literals: false only when none can.
    /// Reads the strings as they are, without collecting them: the literals are ASCII, and
    /// lower-casing turns no non-ASCII character into ASCII but the Kelvin sign (`k`) and
    /// `İ` (`i` and a combining dot), so a string with either counts as a possible match.
    ///
    /// With `in_text` (the literals as [`json_escaped`](crate::json::json_escaped) writes
    /// them) a JSON event parsed from text is searched as written, ASCII-lower-cased, when
    /// the text shows every string as a keyword search sees it (and has neither of those two
    /// characters).
    pub(crate) fn keywords_may_contain(
        &self,
        filter: &aho_corasick::AhoCorasick,
        in_text: Option<&[memchr::memmem::Finder<'static>]>,
    ) -> bool {
        if self.cache.keywords.get().is_some() {
            return true;
        }
        if let (Some(in_text), Some(text)) = (
            in_text,
            self.cache.doc.and_then(|d| d.faithful_lower_text()),
        ) {
            return in_text.iter().any(|f| f.find(text.as_bytes()).is_some());
        }
        match self.cache.doc {
            Some(doc) => doc.keywords(&mut |s| {
                (!s.is_ascii() && s.contains(['\u{212A}', '\u{130}']))
                    || filter.is_match(s.as_bytes())
            }),
            None => true,
        }
    }
}

impl Event for Prepared<'_, '_> {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        match self.renames.and_then(|r| r.by_name.get(name)) {
            Some(targets) => targets.iter().find_map(|t| self.cache.lookup(t)),
            None => self.cache.lookup(name),
        }
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.cache.inner.any_keyword(f)
    }
}

impl<'a> Cache<'a> {
    fn new(inner: &'a dyn Event, doc: Option<&'a JsonEvent<'a>>) -> Self {
        // Fields beyond the slots' room (never reached) are left uncached.
        let room = FIRST_BLOCK * ((1 << BLOCKS) - 1);
        let fields = FIELD_COUNT.load(Ordering::Acquire).min(room);
        let spare = SPARE.try_with(Cell::take).ok().flatten();
        let (index, generation, mut flat, block) = match spare {
            Some(spare)
                if spare.index.len() >= fields && spare.generation < u64::from(u32::MAX) =>
            {
                (spare.index, spare.generation + 1, spare.flat, spare.block)
            }
            spare => {
                let (flat, block) = spare.map(|s| (s.flat, s.block)).unwrap_or_default();
                ((0..fields).map(|_| Cell::new(0)).collect(), 1, flat, block)
            }
        };
        let mut first = (block.capacity() == FIRST_BLOCK).then(|| {
            let mut block: Vec<OnceCell<Slot<'a>>> = recycle(block);
            block.resize_with(FIRST_BLOCK, OnceCell::new);
            block.into_boxed_slice()
        });
        flat.clear();
        if let Some(doc) = doc
            && let Some(event) = doc.windows_event()
        {
            flat.fill(doc, event);
        }
        Cache {
            inner,
            doc,
            flat,
            index,
            generation,
            slots: std::array::from_fn(|k| match k {
                0 => first.take().map_or_else(OnceCell::new, OnceCell::from),
                _ => OnceCell::new(),
            }),
            taken: Cell::new(0),
            fields,
            keywords: OnceCell::new(),
        }
    }

    fn slot(&self, id: usize, name: &str) -> Option<&Slot<'a>> {
        if id >= self.fields {
            // A field compiled after the event was prepared: not cached.
            return None;
        }
        let at = |n: usize| {
            let (k, i) = block_of(n);
            self.slots.get(k)?.get()?.get(i)?.get()
        };
        let entry = self.index[id].get();
        if entry >> 32 == self.generation {
            return match entry as u32 {
                1 => None,
                n => at(n as usize - 2),
            };
        }
        let stamp = self.generation << 32;
        let Some(value) = self.lookup(name) else {
            self.index[id].set(stamp | 1);
            return None;
        };
        // Each field id takes at most one slot, so there is room (`n < fields`).
        let n = self.taken.get();
        let (k, i) = block_of(n);
        let block = self.slots.get(k)?;
        let block = block.get_or_init(|| (0..FIRST_BLOCK << k).map(|_| OnceCell::new()).collect());
        let slot = block.get(i)?.get_or_init(|| {
            let mut slot = Slot::new(value);
            if let Some(doc) = self.doc {
                slot.lower_from(doc);
            }
            slot
        });
        self.taken.set(n + 1);
        // Ids are interned field names: far fewer than u32::MAX.
        self.index[id].set(stamp | u64::from(u32::try_from(n + 2).unwrap_or(1)));
        Some(slot)
    }

    fn lookup(&self, name: &str) -> Option<FieldValue<'a>> {
        let Some(doc) = self.doc else {
            return self.inner.field(name);
        };
        let found = self.flat.get(doc, name);
        found
            .or_else(|| doc.lookup(doc.root()?, name))
            .map(|i| doc.field_value(i))
    }

    fn keywords(&self) -> &Keywords<'a> {
        self.keywords.get_or_init(|| {
            let mut out = Keywords::default();
            let mut push = |raw: Cow<'a, str>| {
                out.push(raw);
                false
            };
            match self.doc {
                Some(doc) => doc.keywords(&mut push),
                None => self
                    .inner
                    .any_keyword(&mut |s| push(Cow::Owned(s.to_string()))),
            };
            out
        })
    }
}

/// A Windows event's fields by name (node indices), as [`windows_field`] resolves them: a
/// small chained hash table made for each event in buffers kept for the thread's next one
/// (cheaper to fill than a general map, as most of its names are never asked for). Names are
/// the keys of the event's nodes, read from the event when compared.
#[derive(Default)]
struct Flat {
    /// Per bucket ([`bucket`] of the name): its newest entry, [`NONE`] when empty. Empty
    /// when the map is (for events that are not Windows events).
    heads: Vec<usize>,
    /// Every name but `Element_Attribute`, in the order added (sources by precedence).
    entries: Vec<FlatEntry>,
    /// The names with their spaces dropped ([`UNSPACED`] entries), one after another.
    unspaced: Vec<u8>,
    system: Option<usize>,
    /// Scratch for members put in key order ([`JsonEvent::by_key`]).
    order: Vec<usize>,
}

struct FlatEntry {
    /// The node named: its key is the name, but for [`UNSPACED`] entries.
    node: usize,
    /// The object the name is a key of ([`UNSPACED`] for names with their spaces dropped).
    from: usize,
    /// The bucket's next older entry.
    next: usize,
    /// The name's length (names are keys of a text shorter than 4 GiB, or of a `Value` in
    /// memory).
    len: u32,
    /// Where an [`UNSPACED`] entry's name starts in [`Flat::unspaced`].
    start: u32,
}

const BUCKETS: usize = 64;
const NONE: usize = usize::MAX;
/// [`FlatEntry::from`] of names with their spaces dropped: they rank after every real one.
const UNSPACED: usize = usize::MAX;

/// A name's bucket, from its length and three of its bytes.
fn bucket(name: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (name.first(), name.last()) else {
        return 0;
    };
    let mid = name[name.len() / 2];
    let h = (name.len() as u32).wrapping_mul(0x9E37_79B9)
        ^ u32::from(first).wrapping_mul(0x85EB_CA6B)
        ^ u32::from(last).wrapping_mul(0xC2B2_AE35)
        ^ u32::from(mid).wrapping_mul(0x27D4_EB2F);
    (h >> 26) as usize
}

impl Flat {
    fn clear(&mut self) {
        self.heads.clear();
        self.entries.clear();
        self.unspaced.clear();
        self.system = None;
        self.order.clear();
    }

    /// Maps the fields of Windows event `event` of `doc`.
    fn fill(&mut self, doc: &JsonEvent<'_>, event: usize) {
        self.heads.resize(BUCKETS, NONE);
        let object = |key: &str| doc.get(event, key).filter(|&i| doc.is_object(i));
        if let Some(data) = object("EventData") {
            let mut spaced = false;
            for c in doc.children(data) {
                let key = doc.key_bytes(c);
                // Not `contains`: its `memchr` is slow on names this short; without an early
                // exit the loop is vectorised.
                spaced |= key.iter().fold(false, |space, &b| space | (b == b' '));
                self.add(key, c, data);
            }
            if spaced {
                // Names that lose their spaces to the same name: the first in key order wins
                // (as for a `Value`), and within one source the entry added last does, so
                // they are added in reverse key order (each key once, its last value).
                let mut order = std::mem::take(&mut self.order);
                order.clear();
                order.extend(
                    doc.children(data)
                        .filter(|&c| doc.key_bytes(c).contains(&b' ')),
                );
                doc.by_key(&mut order);
                for &c in order.iter().rev() {
                    // Windows Defender's "Source Name": a space is one byte of UTF-8, never
                    // part of another character, so dropping its bytes drops the spaces.
                    let key = doc.key_bytes(c);
                    let start = self.unspaced.len();
                    self.unspaced.extend(key.iter().filter(|&&b| b != b' '));
                    let name = &self.unspaced[start..];
                    let (b, len) = (bucket(name), name.len());
                    self.push(b, len, c, UNSPACED, start);
                }
                self.order = order;
            }
        }
        if let Some(user) = object("UserData") {
            // Its elements in key order, each key once (as a `Value` holds them): the
            // earliest source added wins.
            let mut order = std::mem::take(&mut self.order);
            order.clear();
            order.extend(doc.children(user));
            doc.by_key(&mut order);
            for &inner in order.iter().filter(|&&inner| doc.is_object(inner)) {
                for c in doc.children(inner) {
                    self.add(doc.key_bytes(c), c, inner);
                }
            }
            self.order = order;
        }
        let system = doc.get(event, "System");
        if let Some(system) = system.filter(|&s| doc.is_object(s)) {
            for c in doc.children(system) {
                self.add(doc.key_bytes(c), c, system);
            }
        }
        self.system = system;
    }

    /// Adds a node named by its key.
    fn add(&mut self, name: &[u8], node: usize, from: usize) {
        self.push(bucket(name), name.len(), node, from, 0);
    }

    /// Adds an entry to bucket `b`.
    fn push(&mut self, b: usize, len: usize, node: usize, from: usize, start: usize) {
        let next = self.heads[b];
        self.heads[b] = self.entries.len();
        self.entries.push(FlatEntry {
            node,
            from,
            next,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            start: u32::try_from(start).unwrap_or(u32::MAX),
        });
    }

    /// An entry's name.
    fn name<'s>(&'s self, doc: &'s JsonEvent<'_>, entry: &FlatEntry) -> &'s [u8] {
        if entry.from == UNSPACED {
            let start = entry.start as usize;
            let name = self.unspaced.get(start..start + entry.len as usize);
            name.unwrap_or_default()
        } else {
            doc.key_bytes(entry.node)
        }
    }

    /// The node a name stands for: the earliest source that has it wins; within that source
    /// (an object with the key written twice) the last value.
    fn find(&self, doc: &JsonEvent<'_>, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        let mut at = *self.heads.get(bucket(name))?;
        // The chain runs newest first, and each source's entries were added together: the
        // first entry of each source met is its last value, and the last source met is the
        // earliest added.
        let mut found: Option<&FlatEntry> = None;
        while let Some(entry) = self.entries.get(at) {
            if entry.len as usize == name.len()
                && found.is_none_or(|f| f.from != entry.from)
                && self.name(doc, entry) == name
            {
                found = Some(entry);
            }
            at = entry.next;
        }
        found.map(|e| e.node)
    }

    fn get(&self, doc: &JsonEvent<'_>, name: &str) -> Option<usize> {
        if let Some(v) = self.find(doc, name) {
            return Some(v);
        }
        // System attributes come last in precedence: looked up on a miss instead of being
        // named for every event.
        doc.system_attribute(self.system?, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(detection: &str) -> crate::CompiledRule {
        let yaml = format!(
            "title: t\nlogsource: {{product: windows}}\ndetection:\n{detection}\nlevel: low\n"
        );
        crate::CompiledRule::from_yaml(&yaml, &Default::default()).expect("rule compiles")
    }

    #[test]
    fn keyword_searches_read_the_text_as_written_only_when_it_shows_every_string() {
        let keyword = rule(
            "    keywords: ['\\perfc.dat', 'kelvin', '1000', 'tab\\there']\n    condition: keywords",
        );
        let hit = |text: &str| keyword.is_match(&JsonEvent::parse(text).expect("json"));
        // Escaped backslashes and quotes, capitals: found in the text as written.
        assert!(hit(r#"{"a":"C:\\Windows\\PERFC.dat","b":"\"q\""}"#));
        assert!(!hit(r#"{"a":"C:\\Windows\\perfc.txt","b":1001}"#));
        // Escapes the text does not show as the string is: `\u005c` is a backslash, `\t` a tab.
        assert!(hit(r#"{"a":"C:\u005cperfc.dat"}"#));
        assert!(hit(r#"{"a":"a tab\\there"}"#), "a backslash in the literal");
        assert!(
            !hit(r#"{"a":"a tab\there"}"#),
            "a tab is not a backslash and a t"
        );
        let tab = rule("    keywords: ['tab\there']\n    condition: keywords");
        assert!(tab.is_match(&JsonEvent::parse(r#"{"a":"a tab\there"}"#).expect("json")));
        // A number is searched as the engine prints it: 1e3 is 1000.0.
        assert!(hit(r#"{"a":1e3}"#));
        assert!(hit(r#"{"a":1000}"#));
        // The Kelvin sign lower-cases to an ASCII k.
        assert!(hit("{\"a\":\"\u{212A}elvin\"}"));
        assert!(!hit("{\"a\":\"\u{212B}elvin\"}"));
        // In a key only: not a keyword string, however the text is searched.
        assert!(!hit(
            r#"{"Event":{"System":{"EventID":1},"EventData":{"perfc.dat":"x"}}}"#
        ));
    }

    #[test]
    fn windows_fields_resolve_by_source_precedence_then_last_duplicate() {
        let text = r##"{"Event":{"System":{"EventID":4688,"Computer":"sys","Provider":{"#attributes":{"Name":"P"}}},
            "EventData":{"Image":"first","Image":"second","Computer":"data","Source Name":"spaced"},
            "UserData":{"Inner":{"Computer":"user","Only":"u1","Only":"u2"},"Other":{"Only":"other"}}}}"##;
        let doc = JsonEvent::parse(text).expect("json");
        let is = |field: &str, value: &str| {
            rule(&format!(
                "    sel:\n        {field}: '{value}'\n    condition: sel"
            ))
            .is_match(&doc)
        };
        assert!(
            is("Image", "second") && !is("Image", "first"),
            "last duplicate wins"
        );
        assert!(
            is("Computer", "data"),
            "EventData before UserData and System"
        );
        assert!(
            is("Only", "u2") && !is("Only", "other"),
            "first UserData element, last value"
        );
        assert!(is("SourceName", "spaced"));
        assert!(is("EventID", "4688"));
        assert!(is("Provider_Name", "P"));
    }

    /// Several UserData elements with the field, or several EventData names that lose their
    /// spaces to the same name: a parsed event resolves them as its `serde_json::Value` does
    /// (the first in key order, each key's last value), whatever the text's order. Found by
    /// fuzzing against serde_json: the table took them in the text's order, a `Value`'s
    /// sorted map in key order, so the same event matched differently as text and as a value.
    #[test]
    fn windows_fields_resolve_in_key_order_as_a_value_does() {
        let cases = [
            (
                r#"{"Event":{"System":{"EventID":1},"UserData":{"b":{"X":"b"},"a":{"X":"a"}}}}"#,
                "X",
                "a",
            ),
            (
                r#"{"Event":{"System":{"EventID":1},"UserData":{"a":{"X":"first"},"b":{"X":"b"},"a":{"Y":"last"}}}}"#,
                "X",
                "b",
            ),
            (
                r#"{"Event":{"System":{"EventID":1},"UserData":{"b":{"X":"b"},"a":"scalar"}}}"#,
                "X",
                "b",
            ),
            (
                r#"{"Event":{"System":{"EventID":1},"EventData":{"Source Name":"a","Source  Name":"b"}}}"#,
                "SourceName",
                "b",
            ),
            (
                r#"{"Event":{"System":{"EventID":1},"EventData":{"Source Name":"a","Source Name":"b"}}}"#,
                "SourceName",
                "b",
            ),
        ];
        for (text, field, want) in cases {
            let doc = JsonEvent::parse(text).expect("json");
            let value: Json = serde_json::from_str(text).expect("json");
            let want = Some(FieldValue::Str(want.into()));
            assert_eq!(value.field(field), want, "{text}");
            assert_eq!(doc.field(field), want, "{text}");
            for value_ in ["a", "b", "first", "last", "scalar"] {
                let r = rule(&format!(
                    "    sel:\n        {field}: '{value_}'\n    condition: sel"
                ));
                assert_eq!(
                    r.is_match(&doc),
                    r.is_match(&value),
                    "{text} {field}={value_}"
                );
            }
            let expected = want.as_ref().and_then(FieldValue::as_text);
            let r = rule(&format!(
                "    sel:\n        {field}: '{}'\n    condition: sel",
                expected.unwrap_or_default()
            ));
            assert!(r.is_match(&doc) && r.is_match(&value), "{text}");
        }
    }

    /// Windows events prepared one after another on one thread (each in the field map the
    /// last one left) match as they match when prepared on a thread of their own.
    #[test]
    fn spare_field_maps_are_reused_emptied() {
        let texts = [
            r#"{"Event":{"System":{"EventID":1,"Computer":"sys"},"EventData":{"Source Name":"RTP","Image":"a"}}}"#,
            r#"{"Event":{"System":{"EventID":2},"UserData":{"X":{"Image":"u","Computer":"user"}}}}"#,
            r#"{"Image":"plain","Computer":"flat"}"#,
            r##"{"Event":{"System":{"EventID":3,"Provider":{"#attributes":{"Name":"P"}}},"EventData":{"Computer":"data"}}}"##,
        ];
        let rules: Vec<_> = [
            ("SourceName", "RTP"),
            ("Image", "a"),
            ("Image", "u"),
            ("Image", "plain"),
            ("Computer", "sys"),
            ("Computer", "user"),
            ("Computer", "flat"),
            ("Computer", "data"),
            ("EventID", "2"),
            ("Provider_Name", "P"),
        ]
        .iter()
        .map(|(field, value)| {
            rule(&format!(
                "    sel:\n        {field}: '{value}'\n    condition: sel"
            ))
        })
        .collect();
        let matches = |text: &str| {
            let doc = JsonEvent::parse(text).expect("json");
            rules.iter().map(|r| r.is_match(&doc)).collect::<Vec<_>>()
        };
        let fresh: Vec<_> = texts
            .iter()
            .map(|t| std::thread::scope(|s| s.spawn(|| matches(t)).join().unwrap()))
            .collect();
        assert!(fresh.iter().all(|m| m.iter().any(|&hit| hit)), "{fresh:?}");
        for _ in 0..2 {
            for (text, want) in texts.iter().zip(&fresh) {
                assert_eq!(&matches(text), want, "{text}");
            }
        }
    }

    /// Emptied vectors given another element type keep their allocation (so a pooled slot
    /// block is reused).
    #[test]
    fn recycled_vectors_keep_their_allocation() {
        let text = String::from("x");
        let v: Vec<OnceCell<Slot<'_>>> = (0..FIRST_BLOCK).map(|_| OnceCell::new()).collect();
        let _ = v[3].set(Slot::new(FieldValue::Str(Cow::Borrowed(&text))));
        let at = v.as_ptr() as usize;
        let spare: Vec<OnceCell<Slot<'static>>> = recycle(v);
        assert_eq!((spare.as_ptr() as usize, spare.len()), (at, 0));
        assert_eq!(spare.capacity(), FIRST_BLOCK);
        let back: Vec<OnceCell<Slot<'_>>> = recycle(spare);
        assert_eq!(back.as_ptr() as usize, at);
    }

    /// Slots fill each block in turn, every place once.
    #[test]
    fn slots_fill_blocks_of_doubling_size_in_order() {
        assert_eq!(block_of(0), (0, 0));
        let mut last = (0, 0);
        for n in 1..100_000 {
            let (k, i) = block_of(n);
            assert!(i < FIRST_BLOCK << k, "{n}");
            let next = if last.1 + 1 == FIRST_BLOCK << last.0 {
                (last.0 + 1, 0)
            } else {
                (last.0, last.1 + 1)
            };
            assert_eq!((k, i), next, "{n}");
            last = (k, i);
        }
        let room = FIRST_BLOCK * ((1 << BLOCKS) - 1);
        assert_eq!(
            block_of(room - 1),
            (BLOCKS - 1, (FIRST_BLOCK << (BLOCKS - 1)) - 1)
        );
    }

    #[test]
    fn capitals_and_non_ascii_are_found_in_every_position() {
        for len in 0..20 {
            let base = "a".repeat(len);
            assert!(!has_upper_or_non_ascii(base.as_bytes()));
            assert!(!has_upper_or_non_ascii(b"@[`{ 09az~\x7f"));
            for at in 0..len {
                for c in ['A', 'M', 'Z', '\u{e9}', '\u{80}'] {
                    let mut s = base.clone();
                    s.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                    assert!(has_upper_or_non_ascii(s.as_bytes()), "{s:?}");
                }
            }
        }
        for b in 0..=255u8 {
            let want = b.is_ascii_uppercase() || b >= 0x80;
            assert_eq!(
                has_upper_or_non_ascii(&[b'a', b, b'a', b'a', b'a', b'a', b'a', b'a']),
                want,
                "{b}"
            );
        }
    }

    #[test]
    fn windows_events_look_in_event_data_then_system() {
        let e = json!({"Event": {
            "System": {
                "EventID": {"#text": "4688", "#attributes": {"Qualifiers": 0}},
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "Channel": "Security",
                "Computer": "host"
            },
            "EventData": {"NewProcessName": "C:\\x.exe", "Computer": "data wins", "Source Name": "RTP"}
        }});
        assert_eq!(e.field("EventID"), Some(FieldValue::Str("4688".into())));
        assert_eq!(e.field("Channel"), Some(FieldValue::Str("Security".into())));
        assert_eq!(
            e.field("Computer"),
            Some(FieldValue::Str("data wins".into()))
        );
        assert_eq!(
            e.field("Provider_Name"),
            Some(FieldValue::Str(
                "Microsoft-Windows-Security-Auditing".into()
            ))
        );
        assert_eq!(e.field("SourceName"), Some(FieldValue::Str("RTP".into())));
        assert_eq!(e.field("Missing"), None);
        assert!(e.any_keyword(&mut |s| s == "C:\\x.exe"));
        assert!(!e.any_keyword(&mut |s| s == "Security"));
    }

    #[test]
    fn keyword_searches_of_a_parsed_line_look_at_the_line_not_at_what_was_added() {
        let e = json!({
            "event": {"dataset": "cisco.ios", "original": "%PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:no shutdown"},
            "message": "User:admin  logged command:no shutdown",
            "log": {"file": {"path": "/var/log/network/aaa/switches.log"}},
            "host": {"name": "dir-sw1"}
        });
        let has = |needle: &str| e.any_keyword(&mut |s| s.contains(needle));
        assert!(has("no shutdown"));
        assert!(has("CFGLOG_LOGGEDCMD"), "the original line");
        assert!(!has("aaa"), "the file path is not the log line");
        assert!(!has("dir-sw1"), "nor the host name");
        // Without an original line (JSON events as they came), every value is searched.
        let plain = json!({"log": {"file": {"path": "/var/log/aaa.log"}}, "msg": "x"});
        assert!(plain.any_keyword(&mut |s| s.contains("aaa")));
    }

    #[test]
    fn plain_json_supports_dotted_paths_and_literal_dotted_keys() {
        let e = json!({"process": {"name": "cmd.exe", "pid": 4, "args": ["a", "b"]}, "a.b": true});
        assert_eq!(
            e.field("process.name"),
            Some(FieldValue::Str("cmd.exe".into()))
        );
        assert_eq!(e.field("process.pid"), Some(FieldValue::Int(4)));
        assert_eq!(e.field("process.args.1"), Some(FieldValue::Str("b".into())));
        assert_eq!(e.field("a.b"), Some(FieldValue::Bool(true)));
        assert_eq!(e.field("process.nope"), None);
        assert_eq!(FieldValue::Int(4688).as_text().as_deref(), Some("4688"));
        assert_eq!(FieldValue::Str(" 12 ".into()).as_f64(), Some(12.0));
    }
}
