//! The bounded on-disk buffer: batches the server has not acknowledged yet.
//!
//! Layout of `state_dir/buffer/`:
//! - `seg-<seq>.vbuf`: append-only segment files of framed records
//!   (`"VGB1"`, payload length u32 LE, CRC-32 of the payload u32 LE, payload); the payload is
//!   the batch id (16 bytes), the event count (u32 LE) and the gzip body as it is sent.
//! - `head`: `"<seq> <offset>"`, the first record not yet acknowledged, written atomically.
//!
//! Every append is fsynced before the caller treats the batch as stored. Records leave only
//! through [`DiskBuffer::pop`] (after a 2xx) or, when the buffer would exceed its maximum, by
//! dropping the oldest (counted in [`DiskBuffer::dropped_batches`], with a warning). A torn
//! or corrupt record (crash mid-write, bad CRC) ends its segment: it and what follows in that
//! segment are cut off on open. A corrupt `head` replays the whole buffer (the server
//! deduplicates by batch id).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::state::{atomic_write, sync_dir};
use crate::transport::EncodedBatch;

const MAGIC: &[u8; 4] = b"VGB1";
const FRAME_HEADER: u64 = 12;
const PAYLOAD_HEADER: usize = 20;

#[derive(Debug, Clone, Copy)]
struct Loc {
    seq: u64,
    offset: u64,
    /// Frame length on disk (header + payload).
    len: u64,
}

/// A bounded, crash-safe FIFO of encoded batches on disk.
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    /// Segment sequence numbers present on disk, oldest first.
    segments: VecDeque<u64>,
    queue: VecDeque<Loc>,
    active: Option<(u64, File, u64)>,
    live_bytes: u64,
    dropped_batches: u64,
}

fn seg_name(seq: u64) -> String {
    format!("seg-{seq:020}.vbuf")
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`, holding at most `max_bytes` of records.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_prefix("seg-")
                .and_then(|s| s.strip_suffix(".vbuf"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let head_path = dir.join("head");
        let head = match std::fs::read_to_string(&head_path) {
            Ok(text) => {
                let mut it = text.split_whitespace().map(str::parse::<u64>);
                match (it.next(), it.next()) {
                    (Some(Ok(s)), Some(Ok(o))) => (s, o),
                    _ => {
                        // Replaying from the start only re-sends batches the server already
                        // has (it deduplicates by batch id): better than refusing to start.
                        tracing::warn!(path = %head_path.display(), content = ?text,
                            "corrupt disk buffer head; replaying the whole buffer");
                        (0, 0)
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => return Err(Error::io("reading", head_path, e)),
        };
        let mut buf = DiskBuffer {
            dir: dir.to_owned(),
            max_bytes,
            segment_max: (max_bytes / 8).clamp(64 * 1024, 8 * 1024 * 1024),
            segments: VecDeque::new(),
            queue: VecDeque::new(),
            active: None,
            live_bytes: 0,
            dropped_batches: 0,
        };
        for seq in seqs {
            let path = dir.join(seg_name(seq));
            if seq < head.0 {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let valid_len = buf.scan_segment(seq, &path, if seq == head.0 { head.1 } else { 0 })?;
            buf.segments.push_back(seq);
            let file_len = std::fs::metadata(&path)
                .map_err(|e| Error::io("reading", &path, e))?
                .len();
            if file_len != valid_len {
                tracing::warn!(path = %path.display(), valid_len, file_len,
                    "disk buffer segment has a torn or corrupt tail; cutting it off");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io("opening", &path, e))?;
                f.set_len(valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io("truncating", &path, e))?;
            }
        }
        sync_dir(dir);
        Ok(buf)
    }

    /// Reads the valid records of a segment from `from`; returns the valid length.
    fn scan_segment(&mut self, seq: u64, path: &Path, from: u64) -> Result<u64> {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| Error::io("reading", path, e))?;
        let mut off = 0usize;
        while off + FRAME_HEADER as usize <= data.len() {
            if &data[off..off + 4] != MAGIC {
                break;
            }
            let len = u32::from_le_bytes(data[off + 4..off + 8].try_into().unwrap_or([0; 4]));
            let crc = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap_or([0; 4]));
            let start = off + FRAME_HEADER as usize;
            let end = start + len as usize;
            if end > data.len()
                || (len as usize) < PAYLOAD_HEADER
                || crc32fast::hash(&data[start..end]) != crc
            {
                break;
            }
            if off as u64 >= from {
                let frame = FRAME_HEADER + len as u64;
                self.queue.push_back(Loc {
                    seq,
                    offset: off as u64,
                    len: frame,
                });
                self.live_bytes += frame;
            }
            off = end;
        }
        Ok(off as u64)
    }

    /// Number of batches waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes of records waiting.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Batches dropped (oldest first) because the buffer was full, since open.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches
    }

    /// Appends a batch and fsyncs it. Drops the oldest batches first when it would not fit.
    pub fn push(&mut self, batch: &EncodedBatch) -> Result<()> {
        let mut payload = Vec::with_capacity(PAYLOAD_HEADER + batch.gzip_body.len());
        payload.extend_from_slice(batch.batch_id.as_bytes());
        payload.extend_from_slice(&batch.event_count.to_le_bytes());
        payload.extend_from_slice(&batch.gzip_body);
        let frame_len = FRAME_HEADER + payload.len() as u64;
        if frame_len > self.max_bytes {
            self.dropped_batches += 1;
            tracing::warn!(batch_id = %batch.batch_id, bytes = frame_len, max = self.max_bytes,
                "batch larger than the whole disk buffer; dropped");
            return Ok(());
        }
        while self.live_bytes + frame_len > self.max_bytes && !self.queue.is_empty() {
            self.dropped_batches += 1;
            tracing::warn!(
                dropped_total = self.dropped_batches,
                max_bytes = self.max_bytes,
                "disk buffer full; dropping its oldest batch"
            );
            self.pop()?;
        }
        let needs_new = match &self.active {
            None => true,
            Some((_, _, len)) => *len > 0 && *len + frame_len > self.segment_max,
        };
        if needs_new {
            let seq = self.segments.back().map_or(0, |s| s + 1);
            let path = self.dir.join(seg_name(seq));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io("creating", &path, e))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if self.segments.back() != Some(&seq) {
                self.segments.push_back(seq);
            }
            sync_dir(&self.dir);
            self.active = Some((seq, f, len));
        }
        let dir = self.dir.clone();
        let Some((seq, file, len)) = self.active.as_mut() else {
            return Err(Error::Transport("disk buffer has no active segment".into()));
        };
        let mut frame = Vec::with_capacity(frame_len as usize);
        frame.extend_from_slice(MAGIC);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let path = dir.join(seg_name(*seq));
        file.write_all(&frame)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io("appending to", &path, e))?;
        self.queue.push_back(Loc {
            seq: *seq,
            offset: *len,
            len: frame_len,
        });
        *len += frame_len;
        self.live_bytes += frame_len;
        Ok(())
    }

    /// The oldest waiting batch, read back from disk.
    pub fn peek(&self) -> Result<Option<EncodedBatch>> {
        let Some(loc) = self.queue.front().copied() else {
            return Ok(None);
        };
        let path = self.dir.join(seg_name(loc.seq));
        let mut f = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let mut frame = vec![0u8; loc.len as usize];
        f.seek(SeekFrom::Start(loc.offset))
            .and_then(|_| f.read_exact(&mut frame))
            .map_err(|e| Error::io("reading", &path, e))?;
        let payload = &frame[FRAME_HEADER as usize..];
        let corrupt = |reason: &str| Error::Corrupt {
            what: "buffer record",
            path: path.clone(),
            reason: reason.into(),
        };
        let id: [u8; 16] = payload[..16].try_into().map_err(|_| corrupt("short id"))?;
        let count: [u8; 4] = payload[16..20]
            .try_into()
            .map_err(|_| corrupt("short count"))?;
        Ok(Some(EncodedBatch {
            batch_id: Uuid::from_bytes(id),
            event_count: u32::from_le_bytes(count),
            gzip_body: payload[PAYLOAD_HEADER..].to_vec(),
        }))
    }

    /// Removes the oldest batch (acknowledged or dropped) and persists the new head.
    pub fn pop(&mut self) -> Result<()> {
        let Some(loc) = self.queue.pop_front() else {
            return Ok(());
        };
        self.live_bytes -= loc.len;
        let head = match (self.queue.front(), &self.active) {
            (Some(next), _) => (next.seq, next.offset),
            (None, Some((seq, _, len))) => (*seq, *len),
            (None, None) => (loc.seq, loc.offset + loc.len),
        };
        atomic_write(
            &self.dir.join("head"),
            format!("{} {}", head.0, head.1).as_bytes(),
            0o600,
        )?;
        while let Some(&oldest) = self.segments.front() {
            if oldest >= head.0 {
                break;
            }
            self.segments.pop_front();
            let path = self.dir.join(seg_name(oldest));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove buffer segment");
            }
        }
        // An emptied, full active segment is retired so the next push starts a fresh one.
        if self.queue.is_empty()
            && let Some((_, _, len)) = &self.active
            && *len >= self.segment_max
        {
            self.active = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-buf-{name}-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn batch(n: u8, size: usize) -> EncodedBatch {
        EncodedBatch {
            batch_id: Uuid::new_v4(),
            event_count: n as u32,
            gzip_body: vec![n; size],
        }
    }

    #[test]
    fn fifo_survives_reopen_and_torn_tail() {
        let dir = tmp("fifo");
        let (a, b, c) = (batch(1, 100), batch(2, 100), batch(3, 100));
        {
            let mut buf = DiskBuffer::open(&dir, 1 << 20).unwrap();
            buf.push(&a).unwrap();
            buf.push(&b).unwrap();
            buf.push(&c).unwrap();
            assert_eq!(buf.peek().unwrap().unwrap(), a);
            buf.pop().unwrap();
        }
        // A crash mid-append leaves half a frame behind.
        let seg = dir.join(seg_name(0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"VGB1\xff\xff").unwrap();
        drop(f);
        let mut buf = DiskBuffer::open(&dir, 1 << 20).unwrap();
        assert_eq!(buf.len(), 2);
        assert_eq!(buf.peek().unwrap().unwrap(), b);
        buf.pop().unwrap();
        buf.push(&a).unwrap();
        assert_eq!(buf.peek().unwrap().unwrap(), c);
        buf.pop().unwrap();
        assert_eq!(buf.peek().unwrap().unwrap(), a);
        buf.pop().unwrap();
        assert!(buf.peek().unwrap().is_none());
        drop(buf);
        assert!(DiskBuffer::open(&dir, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn corrupt_segments_never_panic_and_keep_the_valid_prefix() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..60 {
            let dir = tmp("corrupt");
            let batches: Vec<_> = (0..4).map(|i| batch(i, 50 + i as usize * 7)).collect();
            {
                let mut buf = DiskBuffer::open(&dir, 1 << 20).unwrap();
                for b in &batches {
                    buf.push(b).unwrap();
                }
            }
            let seg = dir.join(seg_name(0));
            let mut bytes = std::fs::read(&seg).unwrap();
            let flips = 1 + rnd() % 4;
            for _ in 0..flips {
                let i = (rnd() % bytes.len() as u64) as usize;
                bytes[i] = rnd() as u8;
            }
            if round % 3 == 0 {
                bytes.truncate((rnd() % bytes.len() as u64) as usize);
            }
            std::fs::write(&seg, &bytes).unwrap();
            if round % 5 == 0 {
                std::fs::write(dir.join("head"), b"garbage").unwrap();
            }
            let mut buf = DiskBuffer::open(&dir, 1 << 20).unwrap();
            // Whatever survives is an unmodified prefix of what was written.
            let mut i = 0;
            while let Some(b) = buf.peek().unwrap() {
                assert_eq!(b, batches[i], "round {round}");
                buf.pop().unwrap();
                i += 1;
            }
            buf.push(&batches[0]).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn bound_drops_oldest_and_counts() {
        let dir = tmp("bound");
        let max = 64 * 1024 * 2;
        let mut buf = DiskBuffer::open(&dir, max).unwrap();
        let batches: Vec<_> = (0..40).map(|i| batch(i, 10_000)).collect();
        for b in &batches {
            buf.push(b).unwrap();
            assert!(buf.live_bytes() <= max);
        }
        assert!(buf.dropped_batches() > 0);
        let kept = buf.len();
        assert_eq!(kept as u64 + buf.dropped_batches(), 40);
        // The newest survive, in order.
        assert_eq!(buf.peek().unwrap().unwrap(), batches[40 - kept]);
        let on_disk: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= max + 64 * 1024 + 100, "{on_disk}");
    }
}
