//! Reading capture files: classic pcap (either byte order, micro- or nanosecond
//! timestamps) and pcapng (section header, interface description, enhanced and simple
//! packet blocks; per-interface link type and timestamp resolution), from bytes in memory.
//!
//! [`CaptureReader`] yields [`Packet`]s borrowing the capture's bytes (no copy). A truncated
//! or garbled file yields the packets before the damage, then one [`Error`] naming the byte
//! offset, then nothing.

use std::path::Path;

use crate::error::{Error, Result};

/// A link-layer header type (the `LINKTYPE_*` numbers of pcap and pcapng).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II (with optional VLAN tags).
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP, version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: a 4-byte big-endian address family.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The packet's length on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
    /// How `data` starts.
    pub link: LinkType,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// The container format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// Reads a whole capture file into memory (captures are read from bytes, see
/// [`CaptureReader::new`]).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

const PCAP_MICRO: u32 = 0xa1b2_c3d4;
const PCAP_NANO: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BOM: u32 = 0x1a2b_3c4d;

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units: `Pow10(6)` = microseconds, `Pow2(k)` = 1/2^k seconds.
    resolution: Resolution,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Pow10(u8),
    Pow2(u8),
}

impl Resolution {
    fn to_nanos(self, units: u64) -> i64 {
        let n: i128 = match self {
            Resolution::Pow10(k) if k <= 9 => units as i128 * 10i128.pow(9 - k as u32),
            Resolution::Pow10(k) => units as i128 / 10i128.pow((k as u32 - 9).min(38)),
            Resolution::Pow2(k) => ((units as u128 * 1_000_000_000u128) >> k.min(127)) as i128,
        };
        n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// An iterator over the packets of a pcap or pcapng capture in memory.
///
/// ```
/// use vigil_net::capture::CaptureReader;
/// let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
/// pcap.extend([0; 8]);
/// pcap.extend(65535u32.to_le_bytes());
/// pcap.extend(1u32.to_le_bytes()); // Ethernet
/// let mut reader = CaptureReader::new(&pcap)?;
/// assert!(reader.next().is_none());
/// # Ok::<(), vigil_net::Error>(())
/// ```
#[derive(Debug)]
pub struct CaptureReader<'a> {
    data: &'a [u8],
    pos: usize,
    format: CaptureFormat,
    big_endian: bool,
    /// pcap: the one interface; pcapng: the current section's interfaces.
    interfaces: Vec<Interface>,
    done: bool,
}

impl<'a> CaptureReader<'a> {
    /// Starts reading a capture, detecting pcap or pcapng from its magic number.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let magic_bytes = take(data, 0, 4, "file magic number")?;
        let le = u32::from_le_bytes(arr4(magic_bytes));
        let be = u32::from_be_bytes(arr4(magic_bytes));
        let mut reader = CaptureReader {
            data,
            pos: 0,
            format: CaptureFormat::Pcap,
            big_endian: false,
            interfaces: Vec::new(),
            done: false,
        };
        if le == PCAPNG_SHB {
            reader.format = CaptureFormat::PcapNg;
            // The section header block is read by the first call to `next`.
            return Ok(reader);
        }
        let (big_endian, nanos) = match (le, be) {
            (PCAP_MICRO, _) => (false, false),
            (PCAP_NANO, _) => (false, true),
            (_, PCAP_MICRO) => (true, false),
            (_, PCAP_NANO) => (true, true),
            _ => return Err(Error::UnknownFormat { magic: be }),
        };
        reader.big_endian = big_endian;
        let header = take(data, 0, 24, "pcap file header")?;
        let snaplen = reader.u32_at(header, 16);
        // The top bits of the link type field may carry an FCS length (RFC pcap draft).
        let link = LinkType((reader.u32_at(header, 20) & 0x0fff_ffff) as u16);
        reader.interfaces.push(Interface {
            link,
            snaplen,
            resolution: Resolution::Pow10(if nanos { 9 } else { 6 }),
            offset_secs: 0,
        });
        reader.pos = 24;
        Ok(reader)
    }

    /// pcap or pcapng.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The byte offset of the next record.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = arr4(&b[at..at + 4]);
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    fn u16_at(&self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Packet<'a>>> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let start = self.pos;
        let header = take(self.data, start, 16, "pcap record header")?;
        let secs = self.u32_at(header, 0) as u64;
        let frac = self.u32_at(header, 4) as u64;
        let incl = self.u32_at(header, 8);
        let orig = self.u32_at(header, 12);
        let iface = self.interfaces[0];
        // Real writers never exceed 256 KiB; a larger record length means garbage.
        if incl > iface.snaplen.max(262_144) {
            return Err(Error::Malformed {
                offset: start as u64 + 8,
                reason: format!(
                    "record length {incl} exceeds the snap length {}",
                    iface.snaplen
                ),
            });
        }
        let data = take(self.data, start + 16, incl as usize, "pcap record data")?;
        self.pos = start + 16 + incl as usize;
        let per_sec: i64 = if iface.resolution == Resolution::Pow10(9) {
            1_000_000_000
        } else {
            1_000_000
        };
        let timestamp_ns = (secs as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac as i64 * (1_000_000_000 / per_sec));
        Ok(Some(Packet {
            timestamp_ns,
            orig_len: orig.max(incl),
            link: iface.link,
            data,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'a>>> {
        loop {
            if self.pos >= self.data.len() {
                return Ok(None);
            }
            let start = self.pos;
            let head = take(self.data, start, 8, "pcapng block header")?;
            let block_type_le = u32::from_le_bytes(arr4(&head[0..4]));
            if block_type_le == PCAPNG_SHB {
                self.read_section_header(start)?;
                continue;
            }
            if self.interfaces.is_empty() && self.pos == 0 {
                return Err(Error::Malformed {
                    offset: 0,
                    reason: "pcapng capture does not start with a section header block".into(),
                });
            }
            let block_type = self.u32_at(head, 0);
            let len = self.u32_at(head, 4) as usize;
            if len < 12 || !len.is_multiple_of(4) {
                return Err(Error::Malformed {
                    offset: start as u64 + 4,
                    reason: format!(
                        "pcapng block length {len} is not a multiple of 4 of at least 12"
                    ),
                });
            }
            let block = take(self.data, start, len, "pcapng block")?;
            let trailer = self.u32_at(block, len - 4) as usize;
            if trailer != len {
                return Err(Error::Malformed {
                    offset: (start + len - 4) as u64,
                    reason: format!(
                        "pcapng block trailing length {trailer} differs from its leading length {len}"
                    ),
                });
            }
            self.pos = start + len;
            let body = &block[8..len - 4];
            match block_type {
                1 => self.read_interface(start, body)?,
                6 | 2 => return self.read_enhanced(start, block_type, body).map(Some),
                3 => return self.read_simple(start, body).map(Some),
                _ => {} // name resolution, statistics, custom ...: not needed
            }
        }
    }

    fn read_section_header(&mut self, start: usize) -> Result<()> {
        let head = take(self.data, start, 12, "pcapng section header block")?;
        let bom = arr4(&head[8..12]);
        self.big_endian = if u32::from_le_bytes(bom) == PCAPNG_BOM {
            false
        } else if u32::from_be_bytes(bom) == PCAPNG_BOM {
            true
        } else {
            return Err(Error::Malformed {
                offset: start as u64 + 8,
                reason: format!(
                    "pcapng byte-order magic is {:#010x}, expected 0x1a2b3c4d",
                    u32::from_be_bytes(bom)
                ),
            });
        };
        let len = self.u32_at(head, 4) as usize;
        if len < 28 || !len.is_multiple_of(4) {
            return Err(Error::Malformed {
                offset: start as u64 + 4,
                reason: format!("pcapng section header block length {len} is invalid"),
            });
        }
        take(self.data, start, len, "pcapng section header block")?;
        self.interfaces.clear();
        self.pos = start + len;
        Ok(())
    }

    fn read_interface(&mut self, start: usize, body: &[u8]) -> Result<()> {
        if body.len() < 8 {
            return Err(Error::Malformed {
                offset: start as u64,
                reason: "pcapng interface description block shorter than 20 bytes".into(),
            });
        }
        let mut iface = Interface {
            link: LinkType(self.u16_at(body, 0)),
            snaplen: self.u32_at(body, 4),
            resolution: Resolution::Pow10(6),
            offset_secs: 0,
        };
        let mut at = 8;
        while at + 4 <= body.len() {
            let code = self.u16_at(body, at);
            let olen = self.u16_at(body, at + 2) as usize;
            let value_at = at + 4;
            if value_at + olen > body.len() {
                return Err(Error::Malformed {
                    offset: (start + 8 + at) as u64,
                    reason: format!("pcapng option {code} of length {olen} overruns its block"),
                });
            }
            let value = &body[value_at..value_at + olen];
            match (code, olen) {
                (0, _) => break,
                (9, 1) => {
                    let r = value[0];
                    iface.resolution = if r & 0x80 != 0 {
                        Resolution::Pow2(r & 0x7f)
                    } else {
                        Resolution::Pow10(r)
                    };
                }
                (14, 8) => {
                    let v: [u8; 8] = value.try_into().unwrap_or([0; 8]);
                    iface.offset_secs = if self.big_endian {
                        i64::from_be_bytes(v)
                    } else {
                        i64::from_le_bytes(v)
                    };
                }
                _ => {}
            }
            at = value_at + olen.div_ceil(4) * 4;
        }
        self.interfaces.push(iface);
        Ok(())
    }

    fn interface(&self, start: usize, id: u32) -> Result<Interface> {
        self.interfaces
            .get(id as usize)
            .copied()
            .ok_or_else(|| Error::Malformed {
                offset: start as u64 + 8,
                reason: format!(
                    "packet names interface {id} but the section describes {}",
                    self.interfaces.len()
                ),
            })
    }

    fn read_enhanced(&self, start: usize, block_type: u32, body: &[u8]) -> Result<Packet<'a>> {
        if body.len() < 20 {
            return Err(Error::Malformed {
                offset: start as u64,
                reason: "pcapng packet block shorter than 32 bytes".into(),
            });
        }
        // The obsolete packet block (type 2) has a 16-bit interface id and drop count.
        let id = if block_type == 2 {
            self.u16_at(body, 0) as u32
        } else {
            self.u32_at(body, 0)
        };
        let iface = self.interface(start, id)?;
        let units = ((self.u32_at(body, 4) as u64) << 32) | self.u32_at(body, 8) as u64;
        let captured = self.u32_at(body, 12) as usize;
        let orig = self.u32_at(body, 16);
        if 20 + captured > body.len() {
            return Err(Error::Malformed {
                offset: start as u64 + 20,
                reason: format!(
                    "captured length {captured} overruns its {}-byte block",
                    body.len() + 12
                ),
            });
        }
        // Body is a sub-slice of `self.data`: re-slice from there to keep lifetime 'a.
        let data_at = start + 8 + 20;
        let data = &self.data[data_at..data_at + captured];
        let timestamp_ns = iface
            .resolution
            .to_nanos(units)
            .saturating_add(iface.offset_secs.saturating_mul(1_000_000_000));
        Ok(Packet {
            timestamp_ns,
            orig_len: orig.max(captured as u32),
            link: iface.link,
            data,
        })
    }

    fn read_simple(&self, start: usize, body: &[u8]) -> Result<Packet<'a>> {
        let iface = self.interface(start, 0)?;
        if body.len() < 4 {
            return Err(Error::Malformed {
                offset: start as u64,
                reason: "pcapng simple packet block shorter than 16 bytes".into(),
            });
        }
        let orig = self.u32_at(body, 0);
        let mut captured = (body.len() - 4).min(orig as usize);
        if iface.snaplen != 0 {
            captured = captured.min(iface.snaplen as usize);
        }
        let data_at = start + 8 + 4;
        Ok(Packet {
            timestamp_ns: 0,
            orig_len: orig,
            link: iface.link,
            data: &self.data[data_at..data_at + captured],
        })
    }
}

impl<'a> Iterator for CaptureReader<'a> {
    type Item = Result<Packet<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.format {
            CaptureFormat::Pcap => self.next_pcap(),
            CaptureFormat::PcapNg => self.next_pcapng(),
        };
        match r {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn take<'a>(data: &'a [u8], at: usize, len: usize, what: &'static str) -> Result<&'a [u8]> {
    match at.checked_add(len) {
        Some(end) if end <= data.len() => Ok(&data[at..end]),
        _ => Err(Error::Truncated {
            offset: at as u64,
            what,
            needed: len as u64,
            available: data.len().saturating_sub(at) as u64,
        }),
    }
}

fn arr4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(magic: u32, big: bool, link: u32) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut h = Vec::new();
        h.extend(w(magic));
        h.extend(if big { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        h.extend([0; 8]);
        h.extend(w(65535));
        h.extend(w(link));
        h
    }

    fn record(big: bool, secs: u32, frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut r = Vec::new();
        r.extend(w(secs));
        r.extend(w(frac));
        r.extend(w(data.len() as u32));
        r.extend(w(orig));
        r.extend(data);
        r
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        for big in [false, true] {
            for (magic, frac, want) in [(PCAP_MICRO, 5u32, 5_000i64), (PCAP_NANO, 5u32, 5i64)] {
                let mut f = pcap_header(magic, big, 101);
                f.extend(record(big, 10, frac, &[1, 2, 3], 60));
                let packets: Vec<_> = CaptureReader::new(&f).unwrap().collect();
                assert_eq!(packets.len(), 1);
                let p = packets[0].as_ref().unwrap();
                assert_eq!(p.timestamp_ns, 10_000_000_000 + want);
                assert_eq!(p.orig_len, 60);
                assert_eq!(p.link, LinkType::RAW);
                assert_eq!(p.data, &[1, 2, 3]);
            }
        }
    }

    #[test]
    fn truncated_pcap_keeps_earlier_records_and_names_the_offset() {
        let mut f = pcap_header(PCAP_MICRO, false, 1);
        f.extend(record(false, 1, 0, &[0; 20], 20));
        f.extend(record(false, 2, 0, &[0; 20], 20));
        f.truncate(f.len() - 5);
        let out: Vec<_> = CaptureReader::new(&f).unwrap().collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let err = out[1].as_ref().unwrap_err();
        assert_eq!(err.offset(), Some(24 + 36 + 16));
        assert!(err.to_string().contains("byte offset 76"), "{err}");
    }

    #[test]
    fn garbage_is_an_unknown_format() {
        let err = CaptureReader::new(b"hello world, not a capture").unwrap_err();
        assert!(matches!(err, Error::UnknownFormat { .. }), "{err}");
        let err = CaptureReader::new(b"ab").unwrap_err();
        assert!(matches!(err, Error::Truncated { offset: 0, .. }), "{err}");
    }

    #[test]
    fn pow2_resolution_converts_to_nanos() {
        assert_eq!(Resolution::Pow2(10).to_nanos(1024), 1_000_000_000);
        assert_eq!(Resolution::Pow10(3).to_nanos(7), 7_000_000);
        assert_eq!(Resolution::Pow10(12).to_nanos(7_000), 7);
    }
}
