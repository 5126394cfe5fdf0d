//! Matches kept within a memory budget, in event-time order: each worker keeps its matches
//! in memory until they take more than its share of [`Hunter::memory`](crate::Hunter::memory),
//! then sorts them and writes them out as one run to a temporary file (removed as soon as it
//! is opened, so nothing is left behind, whatever ends the process). Once every file is read,
//! [`HitStream`] merges the workers' runs and what they still hold (a k-way merge through a
//! heap), one match at a time: sorted output costs a write and a read of each match's
//! event when the matches do not fit the budget, and nothing more when they do.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use vigil_detect::CompiledRule;

use crate::{EventText, Hit, Location};

/// Where a match sorts: by event time (events without a time last), then by the time as
/// written, then by place (the file's place by path, its place among the inputs, the part of
/// the file, the record in the part).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub untimed: bool,
    /// The time as (seconds, nanoseconds) since 1970: a `DateTime<Utc>` orders the same.
    pub at: Option<(i64, u32)>,
    pub time: Option<Box<str>>,
    pub rank: u32,
    pub file: u32,
    pub unit: u32,
    /// The record, counted from the part's first line for a part of a JSON lines file.
    pub record: u64,
}

impl Key {
    pub fn new(
        at: Option<DateTime<Utc>>,
        time: Option<&str>,
        place: (u32, u32, u32),
        record: u64,
    ) -> Self {
        Key {
            untimed: at.is_none(),
            at: at.map(|t| (t.timestamp(), t.timestamp_subsec_nanos())),
            time: time.map(Box::from),
            rank: place.0,
            file: place.1,
            unit: place.2,
            record,
        }
    }
}

/// One event that matched, with the rules it matched (positions in the ruleset, ascending).
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub key: Key,
    pub rules: Vec<u32>,
    pub text: Arc<str>,
}

/// A match held by a [`Store`]: its text is `arena[start..end]`.
#[derive(Debug)]
struct Held {
    key: Key,
    rules: Vec<u32>,
    text: std::ops::Range<usize>,
}

/// The most a [`Store`] reserves for its texts up front (a budget may be unbounded).
const MAX_RESERVE: usize = 256 << 20;

/// A worker's matches: in memory up to `budget` bytes, then in sorted runs on disk. The
/// events' texts go to one buffer, kept (emptied) from one run to the next: no allocation
/// per match, and no fresh pages for the system to clear after each run.
pub(crate) struct Store {
    held: Vec<Held>,
    arena: Vec<u8>,
    bytes: usize,
    budget: usize,
    runs: Vec<File>,
    /// Why a run could not be written (the matches then stay in memory).
    pub error: Option<io::Error>,
}

impl Store {
    pub fn new(budget: usize) -> Self {
        Store {
            held: Vec::new(),
            arena: Vec::new(),
            bytes: 0,
            budget,
            runs: Vec::new(),
            error: None,
        }
    }

    /// Keeps a match; `text` appends the event's text to the buffer it is given.
    pub fn push(&mut self, key: Key, rules: Vec<u32>, text: impl FnOnce(&mut Vec<u8>)) {
        if self.arena.capacity() == 0 {
            // Room for a run's texts at once: a buffer that doubles as it fills would be
            // copied and its fresh pages cleared by the system at every doubling, and end
            // up to twice the budget.
            self.arena
                .reserve_exact(self.budget.min(MAX_RESERVE) + (64 << 10));
        }
        let start = self.arena.len();
        text(&mut self.arena);
        let end = self.arena.len();
        self.bytes += (end - start)
            + size_of::<Held>()
            + key.time.as_ref().map_or(0, |t| t.len())
            + rules.len() * 4;
        self.held.push(Held {
            key,
            rules,
            text: start..end,
        });
        // Disk full or no temporary directory: keep going in memory, and say so.
        if self.bytes > self.budget
            && let Err(e) = self.spill()
        {
            self.budget = usize::MAX;
            self.error = Some(e);
        }
    }

    /// Writes what is in memory, sorted, as one run.
    fn spill(&mut self) -> io::Result<()> {
        self.held.sort_by(|a, b| a.key.cmp(&b.key));
        let mut file = spill_file()?;
        {
            let mut out = BufWriter::with_capacity(256 << 10, &mut file);
            for held in &self.held {
                let text = self.arena.get(held.text.clone()).unwrap_or_default();
                write_kept(&mut out, &held.key, &held.rules, text)?;
            }
            out.flush()?;
        }
        file.rewind()?;
        self.runs.push(file);
        self.held.clear();
        self.arena.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// A new temporary file, already removed from its directory where the system allows it.
fn spill_file() -> io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("vigil-hunt-{}-{n}.run", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Ok(file) => {
                // Unix keeps an open file after it is removed; elsewhere the removal fails
                // and the file stays until the system cleans its temporary directory.
                let _ = std::fs::remove_file(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn write_kept(out: &mut impl Write, k: &Key, rules: &[u32], text: &[u8]) -> io::Result<()> {
    let flags =
        u8::from(k.untimed) | u8::from(k.at.is_some()) << 1 | u8::from(k.time.is_some()) << 2;
    out.write_all(&[flags])?;
    if let Some((secs, nanos)) = k.at {
        out.write_all(&secs.to_le_bytes())?;
        out.write_all(&nanos.to_le_bytes())?;
    }
    if let Some(time) = &k.time {
        write_bytes(out, time.as_bytes())?;
    }
    for n in [k.rank, k.file, k.unit] {
        out.write_all(&n.to_le_bytes())?;
    }
    out.write_all(&k.record.to_le_bytes())?;
    out.write_all(&len32(rules.len())?.to_le_bytes())?;
    for r in rules {
        out.write_all(&r.to_le_bytes())?;
    }
    write_bytes(out, text)
}

fn len32(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other("a match too large to keep"))
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&len32(bytes.len())?.to_le_bytes())?;
    out.write_all(bytes)
}

/// The next match of a run; `None` at its end.
fn read_kept(input: &mut impl Read) -> io::Result<Option<Kept>> {
    let mut flags = [0u8];
    match input.read_exact(&mut flags) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let flags = flags[0];
    let at = match flags & 2 != 0 {
        true => Some((
            i64::from_le_bytes(array(input)?),
            u32::from_le_bytes(array(input)?),
        )),
        false => None,
    };
    let time = match flags & 4 != 0 {
        true => Some(read_string(input)?.into_boxed_str()),
        false => None,
    };
    let rank = u32::from_le_bytes(array(input)?);
    let file = u32::from_le_bytes(array(input)?);
    let unit = u32::from_le_bytes(array(input)?);
    let record = u64::from_le_bytes(array(input)?);
    let n = u32::from_le_bytes(array(input)?) as usize;
    let rules = (0..n)
        .map(|_| array(input).map(u32::from_le_bytes))
        .collect::<io::Result<Vec<u32>>>()?;
    let text = Arc::from(read_string(input)?);
    Ok(Some(Kept {
        key: Key {
            untimed: flags & 1 != 0,
            at,
            time,
            rank,
            file,
            unit,
            record,
        },
        rules,
        text,
    }))
}

fn array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    input.read_exact(&mut b)?;
    Ok(b)
}

fn read_string(input: &mut impl Read) -> io::Result<String> {
    let n = u32::from_le_bytes(array(input)?) as usize;
    let mut bytes = vec![0u8; n];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

enum Source {
    Memory(std::vec::IntoIter<Held>, Vec<u8>),
    Run(BufReader<File>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Kept>> {
        match self {
            Source::Memory(items, arena) => Ok(items.next().map(|held| {
                let text = arena.get(held.text).unwrap_or_default();
                Kept {
                    key: held.key,
                    rules: held.rules,
                    // Written from `str`s and by serde_json: UTF-8.
                    text: Arc::from(String::from_utf8_lossy(text)),
                }
            })),
            Source::Run(reader) => read_kept(reader),
        }
    }
}

/// A source's next match, in the heap: the smallest key on top.
struct Head(Kept, usize);

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&other.0.key, other.1).cmp(&(&self.0.key, self.1))
    }
}

/// The matches of a hunt in order ([`Hunt::hits`](crate::Hunt::hits)'s order), read one at
/// a time from the workers' runs and memory: see [`Hunter::hunt_stream`](crate::Hunter::hunt_stream).
pub struct HitStream<'r> {
    sources: Vec<Source>,
    heap: BinaryHeap<Head>,
    started: bool,
    rules: &'r [CompiledRule],
    files: Vec<Arc<PathBuf>>,
    /// Per part of a file: the line its records are counted from.
    bases: Vec<u64>,
    /// Hits of the event taken last, not yet given out (in rule order).
    pending: std::collections::VecDeque<Hit<'r>>,
    /// Runs written to disk.
    runs: usize,
}

impl<'r> HitStream<'r> {
    pub(crate) fn new(
        stores: Vec<Store>,
        rules: &'r [CompiledRule],
        files: Vec<Arc<PathBuf>>,
        bases: Vec<u64>,
    ) -> Self {
        let mut sources = Vec::new();
        let mut runs = 0;
        for mut store in stores {
            runs += store.runs.len();
            sources.extend(
                store
                    .runs
                    .drain(..)
                    .map(|f| Source::Run(BufReader::with_capacity(64 << 10, f))),
            );
            store.held.sort_by(|a, b| a.key.cmp(&b.key));
            sources.push(Source::Memory(store.held.into_iter(), store.arena));
        }
        HitStream {
            sources,
            heap: BinaryHeap::new(),
            started: false,
            rules,
            files,
            bases,
            pending: Default::default(),
            runs,
        }
    }

    /// Sorted runs the workers wrote to disk because their matches outgrew the budget.
    pub fn spilled_runs(&self) -> usize {
        self.runs
    }

    fn take(&mut self, source: usize) -> io::Result<()> {
        if let Some(kept) = self.sources[source].next()? {
            self.heap.push(Head(kept, source));
        }
        Ok(())
    }

    fn next_kept(&mut self) -> io::Result<Option<Kept>> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.take(i)?;
            }
        }
        let Some(Head(kept, source)) = self.heap.pop() else {
            return Ok(None);
        };
        self.take(source)?;
        Ok(Some(kept))
    }

    fn expand(&mut self, kept: Kept) {
        let key = kept.key;
        let at = key
            .at
            .and_then(|(secs, nanos)| DateTime::from_timestamp(secs, nanos));
        let base = self.bases.get(key.unit as usize).copied().unwrap_or(0);
        let path = self
            .files
            .get(key.file as usize)
            .map(|p| p.as_ref().clone())
            .unwrap_or_default();
        let time = key.time.map(String::from);
        let event = EventText(kept.text);
        for rule in kept.rules {
            let Some(rule) = self.rules.get(rule as usize) else {
                continue;
            };
            self.pending.push_back(Hit {
                rule,
                location: Location {
                    path: path.clone(),
                    record: base + key.record,
                },
                time: time.clone(),
                at,
                event: event.clone(),
            });
        }
    }
}

impl<'r> Iterator for HitStream<'r> {
    type Item = io::Result<Hit<'r>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(hit) = self.pending.pop_front() {
                return Some(Ok(hit));
            }
            match self.next_kept() {
                Ok(Some(kept)) => self.expand(kept),
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_reads_back_from_a_run_as_written() {
        let at: DateTime<Utc> = "2024-05-01T09:00:00.123456789Z".parse().unwrap();
        let kept = Kept {
            key: Key::new(
                Some(at),
                Some("2024-05-01T09:00:00.123456789Z"),
                (3, 1, 7),
                42,
            ),
            rules: vec![1, 5],
            text: Arc::from(r#"{"a":"é"}"#),
        };
        let untimed = Kept {
            key: Key::new(None, None, (0, 0, 0), 1),
            rules: vec![],
            text: Arc::from(""),
        };
        let mut bytes = Vec::new();
        for k in [&kept, &untimed] {
            write_kept(&mut bytes, &k.key, &k.rules, k.text.as_bytes()).unwrap();
        }
        let mut input = bytes.as_slice();
        let back = read_kept(&mut input).unwrap().unwrap();
        assert_eq!(back.key, kept.key);
        assert_eq!((back.rules, &*back.text), (kept.rules, &*kept.text));
        assert_eq!(read_kept(&mut input).unwrap().unwrap().key, untimed.key);
        assert!(read_kept(&mut input).unwrap().is_none());
        assert!(kept.key < untimed.key, "untimed matches sort last");
    }
}
