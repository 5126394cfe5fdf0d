//! Live capture from a network interface through libpcap (cargo feature `live`, off by
//! default so building needs no libpcap). Without the feature, [`LiveCapture::open`]
//! returns [`Error::LiveDisabled`], which says how to build it in.

use crate::capture::{LinkType, Packet};
use crate::error::{Error, Result};

/// What to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name (`eth0`, `any`).
    pub interface: String,
    /// Put the interface in promiscuous mode (needs CAP_NET_ADMIN as well as CAP_NET_RAW).
    pub promiscuous: bool,
    /// Bytes kept of each packet.
    pub snaplen: i32,
    /// A BPF filter expression (`tcp port 53 or udp port 53`).
    pub filter: Option<String>,
    /// How long one read waits for packets, in milliseconds.
    pub read_timeout_ms: i32,
}

impl LiveConfig {
    /// Capture whole packets (snap length 65535) on `interface`, not promiscuous, no filter.
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            promiscuous: false,
            snaplen: 65535,
            filter: None,
            read_timeout_ms: 500,
        }
    }
}

/// An open live capture.
pub struct LiveCapture {
    #[cfg(feature = "live")]
    inner: pcap::Capture<pcap::Active>,
    #[cfg(feature = "live")]
    link: LinkType,
    #[cfg(feature = "live")]
    interface: String,
    /// The read timeout, for our own `poll(2)`.
    #[cfg(feature = "live")]
    timeout_ms: i32,
    /// The last read found no packet: wait (up to the timeout) before the next one.
    #[cfg(feature = "live")]
    drained: bool,
    #[cfg(not(feature = "live"))]
    _never: std::convert::Infallible,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture").finish_non_exhaustive()
    }
}

/// Turns a libpcap error into ours, naming the missing capability when it is a
/// permission problem.
#[cfg_attr(not(feature = "live"), allow(dead_code))]
fn live_error(cfg: &LiveConfig, message: String) -> Error {
    let lower = message.to_ascii_lowercase();
    // libpcap 1.10 on Linux says "Attempt to create packet socket failed - CAP_NET_RAW may
    // be required"; older ones, and other steps, say "Operation not permitted" or
    // "You don't have permission to capture on that device".
    let denied = [
        "permission",
        "not permitted",
        "cap_net_raw",
        "eperm",
        "eacces",
    ];
    let reason = if denied.iter().any(|d| lower.contains(d)) {
        let caps = if cfg.promiscuous {
            "CAP_NET_RAW (to open a packet socket) and CAP_NET_ADMIN (for promiscuous mode)"
        } else {
            "CAP_NET_RAW (to open a packet socket)"
        };
        let binary = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "<binary>".into());
        format!(
            "{message}: the process lacks {caps}; run as root or grant it with \
             `setcap cap_net_raw,cap_net_admin=eip {binary}`"
        )
    } else {
        message
    };
    Error::Live {
        interface: cfg.interface.clone(),
        reason,
    }
}

#[cfg(feature = "live")]
impl LiveCapture {
    /// Opens `cfg.interface` and applies the filter.
    ///
    /// The handle is non-blocking and [`next_packet`](Self::next_packet) waits in its own
    /// `poll(2)`: libpcap 1.10 on Linux (the packet ring) keeps polling inside a blocking
    /// read until a packet comes, whatever the read timeout, so on an idle interface a
    /// blocking read never returned and a capture thread could never notice a stop request.
    pub fn open(cfg: &LiveConfig) -> Result<Self> {
        let err = |e: pcap::Error| live_error(cfg, e.to_string());
        let mut inner = pcap::Capture::from_device(cfg.interface.as_str())
            .map_err(err)?
            .promisc(cfg.promiscuous)
            .snaplen(cfg.snaplen)
            .timeout(cfg.read_timeout_ms)
            .immediate_mode(true)
            .open()
            .map_err(err)?
            .setnonblock()
            .map_err(err)?;
        if let Some(filter) = &cfg.filter {
            inner.filter(filter, true).map_err(|e| Error::Live {
                interface: cfg.interface.clone(),
                reason: format!("bad BPF filter {filter:?}: {e}"),
            })?;
        }
        let link = LinkType(inner.get_datalink().0 as u16);
        Ok(LiveCapture {
            inner,
            link,
            interface: cfg.interface.clone(),
            timeout_ms: cfg.read_timeout_ms.max(1),
            drained: false,
        })
    }

    /// Waits until the capture is readable or the read timeout passed.
    fn wait_readable(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.inner.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame, for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Live {
                    interface: self.interface.clone(),
                    reason: format!("poll: {e}"),
                });
            }
        }
        Ok(())
    }

    /// The next packet, or `None` when there is none: one call waits at most the read
    /// timeout (it returns `None` at once when the previous call took the last packet
    /// waiting, and waits on the next call), so a caller looping on it sees a stop flag
    /// at least that often, with or without traffic.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>> {
        if self.drained {
            self.wait_readable()?;
        }
        match self.inner.next_packet() {
            Ok(p) => {
                self.drained = false;
                let ts = p.header.ts;
                // time_t and suseconds_t are not i64 on every platform.
                #[allow(clippy::unnecessary_cast)]
                let (secs, micros) = (ts.tv_sec as i64, ts.tv_usec as i64);
                Ok(Some(Packet {
                    timestamp_ns: secs
                        .saturating_mul(1_000_000_000)
                        .saturating_add(micros * 1000),
                    orig_len: p.header.len,
                    link: self.link,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                self.drained = true;
                Ok(None)
            }
            Err(e) => Err(Error::Live {
                interface: self.interface.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The interface's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }
}

#[cfg(not(feature = "live"))]
impl LiveCapture {
    /// Always fails: live capture was built out (the `live` cargo feature is off).
    pub fn open(_cfg: &LiveConfig) -> Result<Self> {
        Err(Error::LiveDisabled)
    }

    /// Never called: no `LiveCapture` exists without the feature.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>> {
        match self._never {}
    }

    /// Never called: no `LiveCapture` exists without the feature.
    pub fn link(&self) -> LinkType {
        match self._never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_capability() {
        let mut cfg = LiveConfig::new("eth0");
        let e = live_error(
            &cfg,
            "eth0: You don't have permission to perform this capture on that device".into(),
        );
        let text = e.to_string();
        assert!(
            text.contains("CAP_NET_RAW") && !text.contains("CAP_NET_ADMIN"),
            "{text}"
        );
        cfg.promiscuous = true;
        let e = live_error(&cfg, "socket: Operation not permitted".into());
        assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}");
        // What libpcap 1.10 says on Linux without CAP_NET_RAW: the fix is named too.
        cfg.promiscuous = false;
        let e = live_error(
            &cfg,
            "Attempt to create packet socket failed - CAP_NET_RAW may be required".into(),
        );
        let text = e.to_string();
        assert!(
            text.contains("setcap cap_net_raw,cap_net_admin=eip ") && text.contains("eth0"),
            "{text}"
        );
        // Other errors are passed on as they are.
        let e = live_error(&cfg, "eth0: No such device exists".into());
        assert!(!e.to_string().contains("setcap"), "{e}");
    }

    #[cfg(not(feature = "live"))]
    #[test]
    fn without_the_feature_opening_says_how_to_build_it_in() {
        let e = LiveCapture::open(&LiveConfig::new("lo")).unwrap_err();
        assert!(matches!(e, Error::LiveDisabled));
        assert!(e.to_string().contains("--features vigil-net/live"), "{e}");
    }

    #[cfg(feature = "live")]
    #[test]
    fn loopback_udp_is_captured_into_a_flow() {
        use crate::flow::{FlowConfig, FlowTable};
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let mut cfg = LiveConfig::new("lo");
        cfg.filter = Some(format!("udp dst port {port}"));
        cfg.read_timeout_ms = 100;
        let mut cap = match LiveCapture::open(&cfg) {
            Ok(c) => c,
            Err(e) if e.to_string().contains("CAP_NET_RAW") => {
                eprintln!("skipped: no capture privilege: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut table = FlowTable::new(FlowConfig::no_timeouts());
        let mut seen = 0;
        for _ in 0..50 {
            sender.send_to(b"ping", ("127.0.0.1", port)).unwrap();
            if let Some(p) = cap.next_packet().unwrap() {
                table.add_packet(&p);
                seen += 1;
                if seen == 3 {
                    break;
                }
            }
        }
        assert_eq!(seen, 3, "captured {seen} of the datagrams sent");
        table.flush();
        let flows: Vec<_> = table.drain_finished().collect();
        assert_eq!(flows.len(), 1, "{flows:?}");
        assert_eq!(flows[0].responder.port, port);
        assert_eq!(flows[0].forward.packets, 3);
    }

    #[cfg(feature = "live")]
    #[test]
    fn bad_filters_are_named() {
        let mut cfg = LiveConfig::new("lo");
        cfg.filter = Some("udp port banana".into());
        match LiveCapture::open(&cfg) {
            Err(e) if e.to_string().contains("CAP_NET_RAW") => {}
            Err(e) => assert!(e.to_string().contains("banana"), "{e}"),
            Ok(_) => panic!("a bad filter was accepted"),
        }
    }

    #[cfg(feature = "live")]
    #[test]
    fn opening_a_missing_interface_fails_clearly() {
        let e = LiveCapture::open(&LiveConfig::new("no-such-if0")).unwrap_err();
        assert!(e.to_string().contains("no-such-if0"), "{e}");
    }
}
