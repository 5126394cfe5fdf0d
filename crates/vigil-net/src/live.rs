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
    let reason = if lower.contains("permission") || lower.contains("not permitted") {
        let caps = if cfg.promiscuous {
            "CAP_NET_RAW (to open a packet socket) and CAP_NET_ADMIN (for promiscuous mode)"
        } else {
            "CAP_NET_RAW (to open a packet socket)"
        };
        format!(
            "{message}: the process lacks {caps}; run as root or grant it with \
             `setcap cap_net_raw,cap_net_admin=eip <binary>`"
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
    pub fn open(cfg: &LiveConfig) -> Result<Self> {
        let err = |e: pcap::Error| live_error(cfg, e.to_string());
        let mut inner = pcap::Capture::from_device(cfg.interface.as_str())
            .map_err(err)?
            .promisc(cfg.promiscuous)
            .snaplen(cfg.snaplen)
            .timeout(cfg.read_timeout_ms)
            .immediate_mode(true)
            .open()
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
        })
    }

    /// The next packet, or `None` when the read timeout passed without one.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>> {
        match self.inner.next_packet() {
            Ok(p) => {
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
            Err(pcap::Error::TimeoutExpired) => Ok(None),
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
