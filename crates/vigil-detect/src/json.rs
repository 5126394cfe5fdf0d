//! JSON events parsed for detection without building a `serde_json::Value`: one flat table of
//! nodes in document order, strings as ranges of the text (those with escapes unescaped into
//! one buffer per document). The table holds no references, so its buffers are kept per
//! thread for the next document: parsing an event on a thread that parsed one before
//! allocates nothing.
//!
//! The engine evaluates `serde_json::Value` events through the same table (built from the
//! `Value` by a walk that borrows its strings), so field resolution has one implementation and
//! does not depend on how `serde_json` orders its maps (`preserve_order`).

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};

use serde_json::{Number, Value as Json};

use crate::event::{Event, FieldValue};

/// A JSON event parsed from its text for detection; implements [`Event`] with the same field
/// resolution as `serde_json::Value` (Windows events included), borrowing from the text.
///
/// ```
/// use vigil_detect::{Event, FieldValue, JsonEvent};
///
/// let text = r#"{"Event":{"System":{"EventID":1},"EventData":{"Image":"C:\\x.exe"}}}"#;
/// let event = JsonEvent::parse(text)?;
/// assert_eq!(event.field("Image"), Some(FieldValue::Str("C:\\x.exe".into())));
/// assert_eq!(event.field("EventID"), Some(FieldValue::Int(1)));
/// # Ok::<(), serde_json::Error>(())
/// ```
///
/// A key written twice in one object: lookups see its last value, as in a `serde_json::Value`;
/// keyword searches (searches without field names) see both values.
#[derive(Debug, Clone, Default)]
pub struct JsonEvent<'a> {
    /// `nodes`, `numbers` and `arena`: taken from the thread's spares, given back on drop.
    table: Table,
    /// The strings of a table made from a `Value` ([`Text::Borrowed`]).
    borrowed: Vec<&'a str>,
    /// The text parsed (empty for a table made from a `Value`).
    source: &'a str,
    /// Whether `source` holds every string and number a keyword search sees as it sees them
    /// (escaped, and only as `\\` and `\"`, which [`json_escaped`] reproduces), so a literal
    /// not in the text is in none of them.
    faithful: bool,
    /// `source` and `arena` ASCII-lower-cased, made on first use: a string's lower-cased form
    /// is the same range of these when the string is ASCII.
    lower: OnceCell<Lowered>,
}

/// A document's node table, in buffers without references to the text (so they can be kept
/// for the thread's next document).
#[derive(Debug, Clone, Default)]
struct Table {
    nodes: Vec<Node>,
    /// Numbers other than plain non-negative integers ([`Val::Num`]).
    numbers: Vec<Number>,
    /// Strings that had escapes in the text, unescaped.
    arena: String,
}

#[derive(Debug, Clone)]
struct Lowered {
    source: String,
    arena: String,
    /// Whether `source` has the Kelvin sign or `İ` (looked for when a keyword search asks).
    folds_to_ascii: OnceCell<bool>,
}

thread_local! {
    /// The buffers of the thread's last dropped document, for its next one.
    static SPARE_TABLE: Cell<Option<Table>> = const { Cell::new(None) };
    /// The lower-cased copies of the thread's last dropped document that made them.
    static SPARE_LOWERED: Cell<Option<(String, String)>> = const { Cell::new(None) };
}

/// Buffers larger than this (in bytes, all of a table's together) are not kept for the next
/// document: one huge event should not hold its memory for the thread's life.
const MAX_SPARE_BYTES: usize = 1 << 20;

/// 32 bytes: offsets instead of references keep a node small and the table free of the text's
/// lifetime. A text parsed is at most `u32::MAX` bytes long, so offsets and node counts fit.
#[derive(Debug, Clone)]
struct Node {
    /// The member name in its object (empty for the root and array elements).
    key: Text,
    /// Index one past this node's last descendant (its next sibling's index).
    end: u32,
    value: Val,
}

#[derive(Debug, Clone, Copy)]
enum Text {
    /// `source[start..start + len]`.
    Source(u32, u32),
    /// `arena[start..start + len]`.
    Arena(u32, u32),
    /// `borrowed[i]`.
    Borrowed(u32),
}

const EMPTY: Text = Text::Source(0, 0);

#[derive(Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    /// A plain non-negative integer (what most numbers in events are).
    Uint(u64),
    /// Any other number: `numbers[i]`.
    Num(u32),
    Str(Text),
    Arr,
    Obj,
}

/// The range of `len` bytes from `start`.
fn span(start: u32, len: u32) -> std::ops::Range<usize> {
    start as usize..start as usize + len as usize
}

/// `n` as a table index or offset: texts parsed are shorter than 4 GiB, and a `Value` with
/// 2^32 nodes would not fit in memory.
fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'a> JsonEvent<'a> {
    /// Parses one JSON document (any JSON value; trailing text other than whitespace is an
    /// error), accepting what `serde_json` accepts: nesting as deep as 127, strings without
    /// control characters or lone surrogates, numbers read as `serde_json` reads them.
    ///
    /// Texts of 4 GiB or more are refused (the table keeps 32-bit offsets).
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        if u32::try_from(text.len()).is_err() {
            return Err(<serde_json::Error as serde::de::Error>::custom(
                "a JSON text of 4 GiB or more",
            ));
        }
        let mut doc = JsonEvent::with_spare_table(text);
        // About one node per 20 bytes in Windows events: room without growing.
        doc.table.nodes.reserve(text.len() / 12 + 8);
        let arena = std::mem::take(&mut doc.table.arena).into_bytes();
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            arena,
            doc: &mut doc,
        };
        p.ws();
        p.value(EMPTY)?;
        p.ws();
        if p.pos != p.bytes.len() {
            return Err(p.error("trailing characters"));
        }
        // Runs of the text between ASCII bytes and whole characters: always UTF-8.
        doc.table.arena = String::from_utf8(p.arena).map_err(|_| {
            <serde_json::Error as serde::de::Error>::custom("unescaped strings not UTF-8")
        })?;
        Ok(doc)
    }

    /// The same table for a document already parsed into a `serde_json::Value` (strings
    /// borrowed from it).
    pub fn from_value(value: &'a Json) -> Self {
        let mut doc = JsonEvent::with_spare_table("");
        doc.push_value(EMPTY, value);
        doc
    }

    /// An empty document over `source`, in the thread's spare buffers when it has them.
    fn with_spare_table(source: &'a str) -> Self {
        let table = SPARE_TABLE.try_with(Cell::take).ok().flatten();
        JsonEvent {
            table: table.unwrap_or_default(),
            borrowed: Vec::new(),
            source,
            faithful: true,
            lower: OnceCell::new(),
        }
    }

    fn borrow(&mut self, s: &'a str) -> Text {
        self.borrowed.push(s);
        Text::Borrowed(index(self.borrowed.len() - 1))
    }

    fn push_value(&mut self, key: Text, v: &'a Json) {
        let value = match v {
            Json::Null => Val::Null,
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => self.number(n.clone()),
            Json::String(s) => Val::Str(self.borrow(s)),
            Json::Array(items) => {
                let i = self.open(key, Val::Arr);
                for item in items {
                    self.push_value(EMPTY, item);
                }
                return self.close(i);
            }
            Json::Object(map) => {
                let i = self.open(key, Val::Obj);
                for (k, item) in map {
                    let k = self.borrow(k);
                    self.push_value(k, item);
                }
                return self.close(i);
            }
        };
        self.open(key, value);
    }

    /// A number's value in the table: plain non-negative integers in the node.
    fn number(&mut self, n: Number) -> Val {
        match n.as_u64() {
            Some(u) if Number::from(u) == n => Val::Uint(u),
            _ => {
                self.table.numbers.push(n);
                Val::Num(index(self.table.numbers.len() - 1))
            }
        }
    }

    fn open(&mut self, key: Text, value: Val) -> usize {
        let i = self.table.nodes.len();
        self.table.nodes.push(Node {
            key,
            end: index(i + 1),
            value,
        });
        i
    }

    fn close(&mut self, i: usize) {
        let end = index(self.table.nodes.len());
        self.table.nodes[i].end = end;
    }

    #[inline]
    fn text(&self, t: Text) -> &str {
        match t {
            Text::Source(start, len) => self.source.get(span(start, len)),
            Text::Arena(start, len) => self.table.arena.get(span(start, len)),
            Text::Borrowed(i) => self.borrowed.get(i as usize).copied(),
        }
        .unwrap_or_default()
    }

    /// The bytes of `t`: all a comparison needs, without the character-boundary checks of
    /// slicing a `str` (which cost more than the comparisons themselves).
    #[inline]
    fn bytes(&self, t: Text) -> &[u8] {
        match t {
            Text::Source(start, len) => self.source.as_bytes().get(span(start, len)),
            Text::Arena(start, len) => self.table.arena.as_bytes().get(span(start, len)),
            Text::Borrowed(i) => self.borrowed.get(i as usize).map(|s| s.as_bytes()),
        }
        .unwrap_or_default()
    }

    /// A number node's value (`None` for other nodes).
    fn number_at_node(&self, i: usize) -> Option<Number> {
        match self.table.nodes[i].value {
            Val::Uint(u) => Some(Number::from(u)),
            Val::Num(n) => self.table.numbers.get(n as usize).cloned(),
            _ => None,
        }
    }

    /// The parsed text, when it shows every string and number a keyword search looks at as
    /// [`json_escaped`] writes it (no other escapes, numbers as the engine prints them):
    /// a literal absent from it is absent from all of them. The text is
    /// ASCII-lower-cased; `None` also when the text has one of the two characters whose
    /// lower-cased forms hold ASCII letters (the Kelvin sign and `İ`), which ASCII
    /// lower-casing leaves as they are.
    pub(crate) fn faithful_lower_text(&self) -> Option<&str> {
        if !self.faithful || self.source.is_empty() {
            return None;
        }
        let lower = self.lowered();
        let folds = *lower
            .folds_to_ascii
            .get_or_init(|| folds_to_ascii(self.source.as_bytes()));
        (!folds).then_some(lower.source.as_str())
    }

    fn lowered(&self) -> &Lowered {
        self.lower.get_or_init(|| {
            let spare = SPARE_LOWERED.try_with(Cell::take).ok().flatten();
            let (mut source, mut arena) = spare.unwrap_or_default();
            for (lower, from) in [(&mut source, self.source), (&mut arena, &self.table.arena)] {
                lower.clear();
                lower.push_str(from);
                lower.make_ascii_lowercase();
            }
            Lowered {
                source,
                arena,
                folds_to_ascii: OnceCell::new(),
            }
        })
    }

    /// `s` ASCII-lower-cased, borrowed from one lower-cased copy of the document, when `s` is
    /// one of its strings (borrowed from the text or the unescaped strings) and is ASCII.
    pub(crate) fn lower_of(&self, s: &str) -> Option<&str> {
        fn range(within: &str, s: &str) -> Option<std::ops::Range<usize>> {
            let at = (s.as_ptr() as usize).checked_sub(within.as_ptr() as usize)?;
            (at + s.len() <= within.len()).then_some(at..at + s.len())
        }
        if !s.is_ascii() {
            return None;
        }
        if let Some(r) = range(self.source, s) {
            return self.lowered().source.get(r);
        }
        let r = range(&self.table.arena, s)?;
        self.lowered().arena.get(r)
    }

    /// The node at `path` (member names from the root, each the last one written, as
    /// `serde_json::Value::pointer` finds them in objects).
    fn node_at(&self, path: &[&str]) -> Option<usize> {
        path.iter()
            .try_fold(self.root()?, |node, key| self.get(node, key))
    }

    /// The string at `path` (member names from the root), when there is one: reads a
    /// document's time or a field as written, without the engine's field resolution.
    ///
    /// ```
    /// let event = vigil_detect::JsonEvent::parse(r#"{"a":{"b":"x","n":2}}"#)?;
    /// assert_eq!(event.str_at(&["a", "b"]), Some("x"));
    /// assert_eq!(event.str_at(&["a", "n"]), None);
    /// assert_eq!(event.number_at(&["a", "n"]), Some(2.into()));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.as_str(self.node_at(path)?)
    }

    /// The number at `path` (member names from the root), as `serde_json` reads it.
    pub fn number_at(&self, path: &[&str]) -> Option<Number> {
        self.number_at_node(self.node_at(path)?)
    }

    /// The root node (none for an empty table).
    pub(crate) fn root(&self) -> Option<usize> {
        (!self.table.nodes.is_empty()).then_some(0)
    }

    #[inline]
    pub(crate) fn key(&self, i: usize) -> &str {
        self.text(self.table.nodes[i].key)
    }

    /// [`key`](Self::key) as bytes, for comparisons.
    #[inline]
    pub(crate) fn key_bytes(&self, i: usize) -> &[u8] {
        self.bytes(self.table.nodes[i].key)
    }

    pub(crate) fn is_object(&self, i: usize) -> bool {
        matches!(self.table.nodes[i].value, Val::Obj)
    }

    /// The node's string, when it is one.
    pub(crate) fn as_str(&self, i: usize) -> Option<&str> {
        match self.table.nodes[i].value {
            Val::Str(t) => Some(self.text(t)),
            _ => None,
        }
    }

    /// The children of an array or object node (none for scalars), in document order.
    pub(crate) fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.table.nodes[i].end as usize;
        let mut next = i + 1;
        std::iter::from_fn(move || {
            (next < end).then(|| {
                let c = next;
                next = self.table.nodes[c].end as usize;
                c
            })
        })
    }

    /// Member `key` of object node `i` (the last one when the key is written twice).
    pub(crate) fn get(&self, i: usize, key: &str) -> Option<usize> {
        if !self.is_object(i) {
            return None;
        }
        self.children(i)
            .filter(|&c| self.key_bytes(c) == key.as_bytes())
            .last()
    }

    /// `members` (children of one object, in document order) as a `serde_json::Value` holds
    /// them: in key order (its maps are sorted by key, whatever the text's order), and each
    /// key once, the last written. Windows field resolution takes the first of several
    /// candidates (UserData elements, names with spaces) in this order, so a parsed event and
    /// its `Value` agree.
    pub(crate) fn by_key(&self, members: &mut Vec<usize>) {
        // Later duplicates first, so `dedup_by` keeps the last one written.
        members.sort_unstable_by(|&a, &b| {
            self.key_bytes(a)
                .cmp(self.key_bytes(b))
                .then_with(|| b.cmp(&a))
        });
        members.dedup_by(|later, kept| self.key_bytes(*later) == self.key_bytes(*kept));
    }

    /// `{"Event": {"System": .., ..}}`: the `Event` node.
    pub(crate) fn windows_event(&self) -> Option<usize> {
        let event = self.get(self.root()?, "Event")?;
        self.get(event, "System").is_some().then_some(event)
    }

    /// A field of a Windows event, as [`Event::field`] resolves it for a `Value`.
    fn windows_field(&self, event: usize, name: &str) -> Option<usize> {
        if let Some(data) = self.get(event, "EventData").filter(|&d| self.is_object(d)) {
            if let Some(v) = self.get(data, name) {
                return Some(v);
            }
            // Of the names that lose their spaces to `name`, the first in key order, each key
            // once: as a `Value`'s (sorted) map holds them. (Only those are sorted: a key
            // written twice is either both or neither.)
            let mut unspaced: Vec<usize> = self
                .children(data)
                .filter(|&c| {
                    let k = self.key(c);
                    k.contains(' ') && k.chars().filter(|c| *c != ' ').eq(name.chars())
                })
                .collect();
            self.by_key(&mut unspaced);
            if let Some(&c) = unspaced.first() {
                return Some(c);
            }
        }
        if let Some(user) = self.get(event, "UserData").filter(|&u| self.is_object(u)) {
            let mut members: Vec<usize> = self.children(user).collect();
            self.by_key(&mut members);
            if let Some(v) = members.into_iter().find_map(|inner| self.get(inner, name)) {
                return Some(v);
            }
        }
        let system = self.get(event, "System")?;
        if let Some(v) = self.get(system, name) {
            return Some(v);
        }
        self.system_attribute(system, name)
    }

    /// `Element_Attribute` of a Windows event's System: `Element.#attributes.Attribute`.
    pub(crate) fn system_attribute(&self, system: usize, name: &str) -> Option<usize> {
        // A byte search: `split_once` runs a char searcher, slow on names this short.
        let at = name.bytes().position(|b| b == b'_')?;
        let (element, attribute) = (name.get(..at)?, name.get(at + 1..)?);
        let element = self.get(system, element)?;
        self.get(self.get(element, "#attributes")?, attribute)
    }

    /// `name` under node `i`: as a whole key, then as a dotted path (array elements by index).
    pub(crate) fn lookup(&self, i: usize, name: &str) -> Option<usize> {
        if let Some(found) = self.get(i, name) {
            return Some(found);
        }
        if self.is_object(i) && !name.bytes().any(|b| b == b'.') {
            return None; // a path of one part: the lookup just made
        }
        let mut cur = i;
        // The parts between dots, as `split('.')` gives them, found by bytes (a char searcher
        // is slow on names this short; a dot is ASCII, so the parts are whole characters).
        let mut rest = Some(name);
        while let Some(r) = rest {
            let part = match r.bytes().position(|b| b == b'.') {
                Some(at) => {
                    rest = r.get(at + 1..);
                    r.get(..at)?
                }
                None => {
                    rest = None;
                    r
                }
            };
            cur = match self.table.nodes[cur].value {
                Val::Obj => self.get(cur, part)?,
                Val::Arr => self.children(cur).nth(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The engine's view of node `i`'s value.
    pub(crate) fn field_value(&self, i: usize) -> FieldValue<'_> {
        match &self.table.nodes[i].value {
            Val::Str(t) => FieldValue::Str(Cow::Borrowed(self.text(*t))),
            Val::Uint(_) | Val::Num(_) => self
                .number_at_node(i)
                .map_or(FieldValue::Null, |n| crate::event::number_value(&n)),
            Val::Bool(b) => FieldValue::Bool(*b),
            Val::Null => FieldValue::Null,
            Val::Arr => FieldValue::List(self.children(i).map(|c| self.field_value(c)).collect()),
            Val::Obj => match self.get(i, "#text") {
                Some(text) => self.field_value(text),
                None => FieldValue::Str(Cow::Owned(self.to_value(i).to_string())),
            },
        }
    }

    /// Node `i` as a `serde_json::Value` (for objects compared as text: rare).
    fn to_value(&self, i: usize) -> Json {
        match &self.table.nodes[i].value {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(*b),
            Val::Uint(_) | Val::Num(_) => self.number_at_node(i).map_or(Json::Null, Json::Number),
            Val::Str(t) => Json::String(self.text(*t).to_string()),
            Val::Arr => Json::Array(self.children(i).map(|c| self.to_value(c)).collect()),
            Val::Obj => Json::Object(
                self.children(i)
                    .map(|c| (self.key(c).to_string(), self.to_value(c)))
                    .collect(),
            ),
        }
    }

    /// Calls `f` with each string a keyword search looks at (see [`Event::any_keyword`] for
    /// `Value`), until it returns `true`.
    pub(crate) fn keywords<'s>(&'s self, f: &mut dyn FnMut(Cow<'s, str>) -> bool) -> bool {
        let Some(root) = self.root() else {
            return false;
        };
        match self.windows_event() {
            Some(event) => self
                .children(event)
                .filter(|&c| matches!(self.key(c), "EventData" | "UserData"))
                .any(|c| self.walk(c, f)),
            None => match self
                .get(root, "event")
                .and_then(|e| self.get(e, "original"))
            {
                // A normalized event parsed from a text line (docs/EVENTS.md): the line as
                // written and its message, not what was added to it.
                Some(original) if self.as_str(original).is_some() => {
                    let message = self.get(root, "message").and_then(|m| self.as_str(m));
                    message.is_some_and(|m| f(Cow::Borrowed(m)))
                        || self.as_str(original).is_some_and(|o| f(Cow::Borrowed(o)))
                }
                _ => self.walk(root, f),
            },
        }
    }

    fn walk<'s>(&'s self, i: usize, f: &mut dyn FnMut(Cow<'s, str>) -> bool) -> bool {
        let scalar =
            |f: &mut dyn FnMut(Cow<'s, str>) -> bool, i: usize| match self.table.nodes[i].value {
                Val::Str(t) => f(Cow::Borrowed(self.text(t))),
                Val::Uint(_) | Val::Num(_) => self
                    .number_at_node(i)
                    .is_some_and(|n| f(Cow::Owned(n.to_string()))),
                _ => false,
            };
        match self.table.nodes[i].value {
            // Every descendant, in document order (containers themselves have no text).
            Val::Arr | Val::Obj => {
                (i + 1..self.table.nodes[i].end as usize).any(|d| scalar(&mut *f, d))
            }
            _ => scalar(f, i),
        }
    }
}

impl Drop for JsonEvent<'_> {
    /// Gives the table's buffers (and the lower-cased copies) to the thread's next document,
    /// emptied.
    fn drop(&mut self) {
        let mut table = std::mem::take(&mut self.table);
        let bytes = table.nodes.capacity() * size_of::<Node>()
            + table.numbers.capacity() * size_of::<Number>()
            + table.arena.capacity();
        if bytes <= MAX_SPARE_BYTES {
            table.nodes.clear();
            table.numbers.clear();
            table.arena.clear();
            let _ = SPARE_TABLE.try_with(|spare| spare.set(Some(table)));
        }
        if let Some(lower) = self.lower.take()
            && lower.source.capacity() + lower.arena.capacity() <= MAX_SPARE_BYTES
        {
            let _ = SPARE_LOWERED.try_with(|spare| spare.set(Some((lower.source, lower.arena))));
        }
    }
}

impl Event for JsonEvent<'_> {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        let found = match self.windows_event() {
            Some(event) => self.windows_field(event, name),
            None => None,
        };
        found
            .or_else(|| self.lookup(self.root()?, name))
            .map(|i| self.field_value(i))
    }

    fn any_keyword(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.keywords(&mut |s| f(&s))
    }

    fn as_json_event(&self) -> Option<&JsonEvent<'_>> {
        Some(self)
    }
}

/// Bytes that end a run of plain string characters: the quote, the backslash and the
/// control characters (which JSON does not allow in strings).
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Bytes [`first_stop`] looks at per step.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const STEP: usize = 16;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
const STEP: usize = 8;

/// The first string-ending byte ([`STRING_STOP`]) of `chunk`, sixteen bytes compared at once
/// with SSE2 (part of the x86_64 baseline).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn first_stop(chunk: &[u8; STEP]) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: this is compiled only where SSE2 is enabled (`cfg` above), which is all these
    // intrinsics need; the load reads the 16 bytes of `chunk` (a `&[u8; 16]`), and
    // `_mm_loadu_si128` takes any alignment.
    let stops = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: its minimum with 0x1f is `v` itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
    };
    (stops != 0).then(|| stops.trailing_zeros() as usize)
}

/// The first string-ending byte ([`STRING_STOP`]) of `chunk`, eight bytes at once in a `u64`.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn first_stop_swar(chunk: &[u8; 8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let w = u64::from_le_bytes(*chunk);
    // A byte's high bit is set in `stops` where it is a quote, a backslash or below 0x20
    // (exactly for the lowest such byte, which is all we need).
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let stops = (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash)
        | (w.wrapping_sub(ONES * 0x20) & !w);
    let stops = stops & HIGH;
    (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use first_stop_swar as first_stop;

/// Nesting at which `serde_json` stops (its recursion limit).
const MAX_DEPTH: usize = 128;

/// A recursive-descent JSON parser writing straight into the node table.
struct Parser<'a, 'd> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// The document's arena as bytes while it is written (a `String` once parsed).
    arena: Vec<u8>,
    doc: &'d mut JsonEvent<'a>,
}

impl<'a> Parser<'a, '_> {
    fn error(&self, what: &str) -> serde_json::Error {
        <serde_json::Error as serde::de::Error>::custom(format_args!("{what} at byte {}", self.pos))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// A value: strings (most values) here, inlined into the loops of objects and arrays;
    /// the rest by [`Self::other_value`].
    #[inline(always)]
    fn value(&mut self, key: Text) -> Result<(), serde_json::Error> {
        if self.bytes.get(self.pos) == Some(&b'"') {
            self.pos += 1;
            let t = self.string()?;
            self.doc.open(key, Val::Str(t));
            return Ok(());
        }
        self.other_value(key)
    }

    /// A value other than a string.
    #[inline(never)]
    fn other_value(&mut self, key: Text) -> Result<(), serde_json::Error> {
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(key),
            Some(b'[') => self.array(key),
            Some(b't') => self.literal(key, "true", Val::Bool(true)),
            Some(b'f') => self.literal(key, "false", Val::Bool(false)),
            Some(b'n') => self.literal(key, "null", Val::Null),
            Some(b'-' | b'0'..=b'9') => self.number(key),
            Some(_) => Err(self.error("expected value")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    fn literal(&mut self, key: Text, word: &str, value: Val) -> Result<(), serde_json::Error> {
        if !self.bytes[self.pos..].starts_with(word.as_bytes()) {
            return Err(self.error("expected value"));
        }
        self.pos += word.len();
        self.doc.open(key, value);
        Ok(())
    }

    fn enter(&mut self) -> Result<(), serde_json::Error> {
        self.depth += 1;
        if self.depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    /// After a member or element: `,` (true: another follows) or the closing byte.
    #[inline]
    fn next(&mut self, close: u8) -> Result<bool, serde_json::Error> {
        self.ws();
        match self.bytes.get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                Ok(true)
            }
            Some(&b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Err(self.error("expected `,` or the end of the list or object")),
            None => Err(self.error("EOF while parsing a list or object")),
        }
    }

    fn object(&mut self, key: Text) -> Result<(), serde_json::Error> {
        self.enter()?;
        let i = self.doc.open(key, Val::Obj);
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.bytes.get(self.pos) != Some(&b'"') {
                    return Err(self.error("expected a member name"));
                }
                self.pos += 1;
                let name = self.string()?;
                self.ws();
                if self.bytes.get(self.pos) != Some(&b':') {
                    return Err(self.error("expected `:`"));
                }
                self.pos += 1;
                self.ws();
                self.value(name)?;
                if !self.next(b'}')? {
                    break;
                }
            }
        }
        self.doc.close(i);
        self.depth -= 1;
        Ok(())
    }

    fn array(&mut self, key: Text) -> Result<(), serde_json::Error> {
        self.enter()?;
        let i = self.doc.open(key, Val::Arr);
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
        } else {
            loop {
                self.value(EMPTY)?;
                if !self.next(b']')? {
                    break;
                }
            }
        }
        self.doc.close(i);
        self.depth -= 1;
        Ok(())
    }

    /// The end of the run of plain string characters starting at `self.pos`.
    fn plain_run(&self) -> usize {
        let mut end = self.pos;
        while let Some(chunk) = self.bytes.get(end..).and_then(<[u8]>::first_chunk::<STEP>) {
            if let Some(at) = first_stop(chunk) {
                return end + at;
            }
            end += STEP;
        }
        while end < self.bytes.len() && !STRING_STOP[usize::from(self.bytes[end])] {
            end += 1;
        }
        end
    }

    /// A string whose opening quote was just read: a range of the text unless it has escapes.
    #[inline]
    fn string(&mut self) -> Result<Text, serde_json::Error> {
        let start = self.pos;
        let end = self.plain_run();
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            // The text is shorter than 4 GiB (`JsonEvent::parse`).
            return Ok(Text::Source(start as u32, (end - start) as u32));
        }
        self.pos = end;
        self.unescaped(start)
    }

    /// The rest of a string from `start` that did not end at the first stop byte (at
    /// `self.pos`): unescaped into the arena. Kept out of line, so the common case stays small.
    #[inline(never)]
    fn unescaped(&mut self, start: usize) -> Result<Text, serde_json::Error> {
        let from = self.arena.len();
        if from == 0 {
            // Unescaping never lengthens text: the rest of the document is room enough.
            self.arena.reserve(self.bytes.len() - start);
        }
        self.arena
            .extend_from_slice(self.bytes.get(start..self.pos).unwrap_or_default());
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    let len = self.arena.len() - from;
                    // The arena is shorter than the text (`JsonEvent::parse`).
                    return Ok(Text::Arena(from as u32, len as u32));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    match u8::try_from(c) {
                        Ok(ascii) if ascii.is_ascii() => self.arena.push(ascii),
                        _ => self
                            .arena
                            .extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("EOF while parsing a string")),
            }
            self.copy_run();
        }
    }

    /// Copies the run of plain string characters at `self.pos` to the arena and moves past
    /// it. Whole chunks are copied (a copy of a fixed size costs less than one sized to the
    /// run), and the bytes past the run taken back.
    fn copy_run(&mut self) {
        while let Some(chunk) = self
            .bytes
            .get(self.pos..)
            .and_then(<[u8]>::first_chunk::<STEP>)
        {
            self.arena.extend_from_slice(chunk);
            if let Some(at) = first_stop(chunk) {
                self.arena.truncate(self.arena.len() - (STEP - at));
                self.pos += at;
                return;
            }
            self.pos += STEP;
        }
        while let Some(&b) = self.bytes.get(self.pos)
            && !STRING_STOP[usize::from(b)]
        {
            self.arena.push(b);
            self.pos += 1;
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char, serde_json::Error> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.error("EOF while parsing a string"))?;
        self.pos += 1;
        if !matches!(b, b'"' | b'\\') {
            self.doc.faithful = false;
        }
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone leading surrogate in hex escape"));
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(self.error("lone trailing surrogate in hex escape"));
                    }
                    unit => unit,
                };
                char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))?
            }
            _ => return Err(self.error("invalid escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, serde_json::Error> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("EOF while parsing a string"))?;
        let mut n = 0;
        for &d in digits {
            let v = char::from(d)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid escape"))?;
            n = n * 16 + v;
        }
        self.pos += 4;
        Ok(n)
    }

    /// A number: plain non-negative integers here, everything else by `serde_json` (the same
    /// `Number` a `Value` would hold, and the same errors).
    fn number(&mut self, key: Text) -> Result<(), serde_json::Error> {
        let start = self.pos;
        // A number cannot be followed by any of these in valid JSON: take them all and let
        // the number's parser reject what is not a number.
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        let simple = digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit)
            && (digits.len() == 1 || digits[0] != b'0');
        let value = if simple {
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            Val::Uint(n)
        } else {
            let text = self.text.get(start..self.pos).unwrap_or_default();
            let number =
                serde_json::from_str::<Number>(text).map_err(|e| self.error(&e.to_string()))?;
            if self.doc.faithful && number.to_string() != text {
                self.doc.faithful = false; // `1e3` is searched as `1000.0`
            }
            self.doc.number(number)
        };
        self.doc.open(key, value);
        Ok(())
    }
}

/// Whether `text` has the Kelvin sign (E2 84 AA) or `İ` (C4 B0): the characters whose
/// lower-cased forms hold ASCII letters.
fn folds_to_ascii(text: &[u8]) -> bool {
    memchr::memchr2_iter(0xE2, 0xC4, text).any(|at| {
        let rest = &text[at..];
        rest.starts_with(&[0xE2, 0x84, 0xAA]) || rest.starts_with(&[0xC4, 0xB0])
    })
}

/// `s` as a JSON string's text writes it with only `\\` and `\"` escaped (see
/// [`JsonEvent::faithful_lower_text`]); `None` when it has a control character (always escaped
/// otherwise).
pub(crate) fn json_escaped(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c < ' ' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Field names and keyword texts agree with the `Value` implementation.
    fn same_as_value(v: &Json, names: &[&str]) {
        let text = v.to_string();
        let parsed = JsonEvent::parse(&text).unwrap();
        let walked = JsonEvent::from_value(v);
        for name in names {
            let want = v.field(name);
            assert_eq!(parsed.field(name), want, "{name} parsed");
            assert_eq!(walked.field(name), want, "{name} from value");
        }
        let collect = |e: &dyn Event| {
            let mut out = Vec::new();
            e.any_keyword(&mut |s| {
                out.push(s.to_string());
                false
            });
            out.sort();
            out
        };
        assert_eq!(collect(&parsed), collect(v));
        assert_eq!(collect(&walked), collect(v));
    }

    #[test]
    fn fields_and_keywords_agree_with_value() {
        let windows = json!({"Event": {
            "System": {
                "EventID": {"#text": "4688", "#attributes": {"Qualifiers": 0}},
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
                "Channel": "Security",
                "Computer": "host",
                "Level": 4
            },
            "EventData": {"NewProcessName": "C:\\x.exe \"quoted\" \u{e9}", "Computer": "data wins",
                "Source Name": "RTP", "List": [1, "two", null, 2.5, {"a": true}], "Obj": {"k": "v"},
                "Big": 18446744073709551615u64, "Neg": -3}
        }});
        same_as_value(
            &windows,
            &[
                "EventID",
                "Channel",
                "Computer",
                "Provider_Name",
                "SourceName",
                "Source Name",
                "List",
                "Obj",
                "Big",
                "Neg",
                "Level",
                "Missing",
                "Provider_Missing",
                "Event.System.Channel",
            ],
        );
        let user = json!({"Event": {"System": {"EventID": 1}, "UserData": {"X": {"Param": "p"}}}});
        same_as_value(&user, &["Param", "EventID"]);
        let plain =
            json!({"process": {"name": "cmd.exe", "pid": 4, "args": ["a", "b"]}, "a.b": true});
        same_as_value(
            &plain,
            &[
                "process.name",
                "process.pid",
                "process.args.1",
                "a.b",
                "process.nope",
                "process",
            ],
        );
        let line =
            json!({"event": {"original": "raw line"}, "message": "msg", "host": {"name": "h"}});
        same_as_value(&line, &["host.name", "message"]);
        same_as_value(&json!("just a string"), &["x"]);
        same_as_value(&json!([1, {"a": "b"}]), &["0", "1.a"]);
        // Empty parts, as `split('.')` gives them, and names only System attributes match.
        let odd = json!({"a": {"": {"b": 1}, "c": {"": 2}}, "": {"d": 3}, "x_y": 4});
        same_as_value(
            &odd,
            &[
                "a..b", "a.c.", ".d", "a.", ".", "..", "x_y", "x_", "_y", "a.c..", "é.a",
            ],
        );
    }

    /// Documents parsed one after another on one thread (each in the buffers the last one
    /// left) read as they read when parsed on a thread of their own.
    #[test]
    fn spare_buffers_are_reused_emptied() {
        let texts = [
            r#"{"Event":{"System":{"EventID":1},"EventData":{"Im\u0061ge":"C:\\X.exe","N":-1.5}}}"#,
            r#"{"a":{"b":[1,2.5,"\u00e9t\u00c9"]},"c":"PLAIN","d":18446744073709551615}"#,
            r#"{"Event":{"System":{"EventID":4688},"EventData":{"Image":"D:\\y.EXE"}}}"#,
            "[]",
        ];
        let names = ["Image", "N", "EventID", "a.b", "a.b.2", "c", "d", "0"];
        let read = |text: &str| {
            let doc = JsonEvent::parse(text).unwrap();
            let fields: Vec<_> = names
                .iter()
                .map(|n| format!("{:?}", doc.field(n)))
                .collect();
            let mut keywords = Vec::new();
            doc.keywords(&mut |k| {
                keywords.push((k.to_string(), doc.lower_of(&k).map(str::to_string)));
                false
            });
            let lower = doc.faithful_lower_text().map(str::to_string);
            (fields, keywords, lower, doc.root().map(|r| doc.to_value(r)))
        };
        let fresh: Vec<_> = texts
            .iter()
            .map(|t| std::thread::scope(|s| s.spawn(|| read(t)).join().unwrap()))
            .collect();
        for _ in 0..2 {
            for (text, want) in texts.iter().zip(&fresh) {
                assert_eq!(&read(text), want, "{text}");
            }
        }
        // The buffers are the last document's.
        let first = JsonEvent::parse(texts[0]).unwrap();
        let nodes = first.table.nodes.as_ptr();
        drop(first);
        let second = JsonEvent::parse(texts[1]).unwrap();
        assert_eq!(second.table.nodes.as_ptr(), nodes);
        assert_eq!(second.table.nodes.len(), 8);
    }

    #[test]
    fn escaped_strings_and_keys_are_unescaped() {
        let text = r#"{"Event":{"System":{"EventID":1},"EventData":{"Im\u0061ge":"C:\\Windows\\x.exe","Tab":"a\tb"}}}"#;
        let e = JsonEvent::parse(text).unwrap();
        assert_eq!(
            e.field("Image"),
            Some(FieldValue::Str("C:\\Windows\\x.exe".into()))
        );
        assert_eq!(e.field("Tab"), Some(FieldValue::Str("a\tb".into())));
    }

    #[test]
    fn duplicate_keys_read_as_their_last_value() {
        let e = JsonEvent::parse(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(e.field("a"), Some(FieldValue::Int(3)));
    }

    /// Accepted exactly when `serde_json` accepts, with the same values.
    #[test]
    fn parses_what_serde_json_parses() {
        let cases = [
            r#"{"a":[1,-2,3.5,-0,0,1e3,1E-2,-1.5e+2,18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809,123456789012345678901234567890]}"#,
            r#" { "a" : "x\"y\\z\/\b\f\n\r\t\u00e9\ud83d\ude00" , "b" : [ true , false , null ] } "#,
            r#"{"":{"":[[],{}]}}"#,
            r#""top""#,
            "42",
            "-7",
            "0",
            "null",
            r#"{"k\u0041":"v"}"#,
            "{\"a\":1}\n",
            // Not JSON.
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{a:1}",
            "[01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[+1]",
            "[1-2]",
            "[--1]",
            "[1e999]",
            "[tru]",
            "[nulll]",
            "[True]",
            "\"a\u{1}\"",
            "\"a\\u000\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\ud800\\u0041\"",
            "\"\\udc00\"",
            "\"\\ud800\\ud800\"",
            "\"abc",
            "\"ab\\",
            "[1] [2]",
            "\u{feff}{}",
            "[1\u{a0}]",
        ];
        for case in cases {
            let want = serde_json::from_str::<Json>(case);
            let got = JsonEvent::parse(case);
            assert_eq!(got.is_ok(), want.is_ok(), "{case:?}: {got:?} / {want:?}");
            if let (Ok(got), Ok(want)) = (got, want) {
                assert_eq!(got.to_value(0), want, "{case:?}");
            }
        }
        // Escapes between runs of every length around the sixteen-byte steps.
        for len in 0..40 {
            let run: String = "ab\u{e9}cd\u{1f600}".chars().cycle().take(len).collect();
            let case = format!(r#"["{run}\\{run}\"\u00e9{run}\n","{run}"]"#);
            let want = serde_json::from_str::<Json>(&case).unwrap();
            assert_eq!(
                JsonEvent::parse(&case).unwrap().to_value(0),
                want,
                "{case:?}"
            );
        }
        let strings = ["\u{0}", "\u{1f}", "\t"];
        for s in strings {
            let case = format!("\"{s}\"");
            assert_eq!(
                JsonEvent::parse(&case).is_ok(),
                serde_json::from_str::<Json>(&case).is_ok(),
                "{case:?}"
            );
        }
        for depth in [1, 126, 127, 128, 129, 300] {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let case = open.repeat(depth) + "1" + &close.repeat(depth);
                assert_eq!(
                    JsonEvent::parse(&case).is_ok(),
                    serde_json::from_str::<Json>(&case).is_ok(),
                    "depth {depth} {open}"
                );
            }
        }
    }

    #[test]
    fn string_runs_stop_at_the_first_quote_backslash_or_control_byte() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| b"az09 !~\x7f"[i % 8]).collect();
                    if at < len {
                        bytes[at] = stop;
                    }
                    let text = String::from_utf8(bytes.clone()).unwrap();
                    let mut doc = JsonEvent::default();
                    let p = Parser {
                        text: &text,
                        bytes: text.as_bytes(),
                        pos: 0,
                        depth: 0,
                        arena: Vec::new(),
                        doc: &mut doc,
                    };
                    assert_eq!(p.plain_run(), at, "{bytes:?}");
                }
            }
        }
        // Multi-byte characters (bytes >= 0x80, some with 0x22 or 0x5c in no position) pass.
        let text = "\u{e9}\u{5c22}\u{2222}\u{1f600}abc\u{e9}\u{e9}\u{e9}\"";
        let mut doc = JsonEvent::default();
        let p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            arena: Vec::new(),
            doc: &mut doc,
        };
        assert_eq!(p.plain_run(), text.len() - 1);
    }

    /// The portable eight-byte search (used where SSE2 is not) agrees with the table.
    #[test]
    fn swar_stops_agree_with_the_table() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut chunk = [b'a'; 8];
                chunk[at] = b;
                let want = STRING_STOP[usize::from(b)].then_some(at);
                assert_eq!(first_stop_swar(&chunk), want, "{b} at {at}");
                // A stop later in the chunk does not hide this one.
                chunk[7] = b'"';
                let want = if STRING_STOP[usize::from(b)] { at } else { 7 };
                assert_eq!(
                    first_stop_swar(&chunk),
                    Some(want),
                    "{b} at {at}, quote last"
                );
            }
        }
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "{} x", "\"\\ud800\"", "nul"] {
            assert!(JsonEvent::parse(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(JsonEvent::parse(&deep).is_err());
    }
}
