//! Arbitrary bytes as a capture: the pcap/pcapng reader, the decoder, the flow table (with
//! small timeouts and TCP close), the DNS/HTTP/TLS parsers and the event builders must
//! never panic, and every flow's counters must add up to the packets counted.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_net::{CaptureReader, FlowConfig, FlowTable, events};

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::new(data) else { return };
    let cfg = FlowConfig {
        idle_timeout: Some(Duration::from_secs(5)),
        active_timeout: Some(Duration::from_secs(30)),
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(cfg);
    let mut flow_packets = 0;
    for packet in reader {
        let Ok(packet) = packet else { break };
        table.add_packet(&packet);
        for flow in table.drain_finished() {
            flow_packets += flow.packets();
            let _ = events::flow_events(&flow);
        }
    }
    table.flush();
    for flow in table.drain_finished() {
        flow_packets += flow.packets();
        let _ = events::flow_events(&flow);
    }
    assert_eq!(flow_packets, table.stats().flow_packets);
});
