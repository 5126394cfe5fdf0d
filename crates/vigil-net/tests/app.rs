//! DNS, HTTP and TLS extracted from real shared captures, as events.

use serde_json::Value as Json;
use vigil_core::event::get_str;
use vigil_net::{FlowConfig, summarize_bytes};

use crate::helpers;

fn events(name: &str, dataset: &str) -> Option<Vec<Json>> {
    let data = helpers::capture(name)?;
    let summary = summarize_bytes(&data, &FlowConfig::default());
    assert!(summary.error.is_none(), "{name}: {:?}", summary.error);
    Some(
        summary
            .events
            .into_iter()
            .filter(|e| get_str(e, "event.dataset") == Some(dataset))
            .collect(),
    )
}

#[test]
fn dns_answer_with_cnames_from_a_real_capture() {
    let Some(dns) = events("http-protocol-inspect-v2.pcap", "network.dns") else {
        return;
    };
    assert_eq!(dns.len(), 1, "{dns:#?}");
    let e = &dns[0];
    assert_eq!(
        e["dns"]["question"]["name"],
        "pagead2.googlesyndication.com"
    );
    assert_eq!(e["dns"]["question"]["type"], "A");
    assert_eq!(e["dns"]["response_code"], "NOERROR");
    assert_eq!(
        e["dns"]["answers"]["data"],
        serde_json::json!([
            "pagead2.google.com",
            "pagead.google.akadns.net",
            "216.239.59.104",
            "216.239.59.99"
        ])
    );
    assert_eq!(e["source"]["ip"], "145.254.160.237");
    assert_eq!(e["destination"]["ip"], "145.253.2.203");
    assert_eq!(e["destination"]["port"], 53);
    assert_eq!(e["network"]["transport"], "udp");
    assert_eq!(e["network"]["protocol"], "dns");
    assert_eq!(e["network"]["packets"], 2);
}

#[test]
fn dns_nxdomain_ptr_and_unanswered_srv_queries() {
    let Some(dns) = events("ssh-hassh.pcap", "network.dns") else {
        return;
    };
    assert_eq!(dns.len(), 1);
    assert_eq!(
        dns[0]["dns"]["question"]["name"],
        "27.0.168.192.in-addr.arpa"
    );
    assert_eq!(dns[0]["dns"]["question"]["type"], "PTR");
    assert_eq!(dns[0]["dns"]["response_code"], "NXDOMAIN");
    let Some(dns) = events("sip-method.pcap", "network.dns") else {
        return;
    };
    let srv = dns
        .iter()
        .filter(|e| e["dns"]["question"]["type"] == "SRV")
        .count();
    assert!(srv > 200, "{srv} SRV queries");
    let answered = dns
        .iter()
        .find(|e| e["dns"]["answers"]["data"] == serde_json::json!(["212.242.33.35"]))
        .expect("the sip.cybercity.dk answer");
    assert_eq!(answered["dns"]["question"]["name"], "sip.cybercity.dk");
    assert_eq!(answered["dns"]["resolved_ip"][0], "212.242.33.35");
}

#[test]
fn http_request_with_headers_and_status() {
    let Some(http) = events("http-protocol-inspect-v2.pcap", "network.http") else {
        return;
    };
    let e = http
        .iter()
        .find(|e| e["url"]["domain"] == "www.ethereal.com")
        .expect("the ethereal.com request");
    assert_eq!(e["http"]["request"]["method"], "GET");
    assert_eq!(e["url"]["original"], "/download.html");
    assert_eq!(e["url"]["extension"], "html");
    assert_eq!(e["http"]["version"], "1.1");
    assert_eq!(e["http"]["response"]["status_code"], 200);
    assert_eq!(
        e["http"]["request"]["referrer"],
        "http://www.ethereal.com/development.html"
    );
    assert_eq!(
        e["user_agent"]["original"],
        "Mozilla/5.0 (Windows; U; Windows NT 5.1; en-US; rv:1.6) Gecko/20040113"
    );
    assert_eq!(e["source"]["ip"], "145.254.160.237");
    assert_eq!(e["source"]["port"], 3372);
    assert_eq!(e["destination"]["port"], 80);
}

#[test]
fn http_over_ipv6_keep_alive_requests() {
    let Some(http) = events("http-post-file.pcap", "network.http") else {
        return;
    };
    let seen: Vec<(String, String, Json)> = http
        .iter()
        .map(|e| {
            (
                e["http"]["request"]["method"].as_str().unwrap().to_owned(),
                e["url"]["path"].as_str().unwrap().to_owned(),
                e["http"]["response"]["status_code"].clone(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("POST".into(), "/api/v4/users/login".into(), 200.into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("POST".into(), "/api/v4/uploads".into(), 201.into())),
        "{seen:?}"
    );
    assert_eq!(http[0]["source"]["ip"], "::1");
    assert_eq!(http[0]["url"]["domain"], "localhost");
    assert_eq!(http[0]["network"]["type"], "ipv6");
}

#[test]
fn tls_client_hello_sni_and_alpn() {
    let Some(tls) = events("tls-alpn-log-detect-02.pcap", "network.tls") else {
        return;
    };
    assert_eq!(tls.len(), 1);
    assert_eq!(tls[0]["tls"]["server_name"], "p130-contacts.icloud.com");
    assert_eq!(
        tls[0]["tls"]["client"]["supported_alpn"],
        serde_json::json!(["h2", "http/1.1"])
    );
    assert_eq!(tls[0]["source"]["ip"], "10.84.1.49");
    assert_eq!(tls[0]["destination"]["port"], 443);
    // TCP fast open: the hello rides on the SYN.
    let Some(tls) = events("tcp-fastopen-10-syn-data-ignore.pcap", "network.tls") else {
        return;
    };
    assert_eq!(tls[0]["tls"]["server_name"], "icloud.com");
}

#[test]
fn flow_events_have_the_pipeline_fields() {
    let Some(flows) = events("http-protocol-inspect-v2.pcap", "network.flow") else {
        return;
    };
    for e in &flows {
        for field in [
            "@timestamp",
            "source.ip",
            "destination.ip",
            "network.transport",
        ] {
            assert!(vigil_core::event::get(e, field).is_some(), "{field} in {e}");
        }
        let total = e["network"]["bytes"].as_u64().unwrap();
        let parts =
            e["source"]["bytes"].as_u64().unwrap() + e["destination"]["bytes"].as_u64().unwrap();
        assert_eq!(total, parts);
        assert!(e["@timestamp"].as_str().unwrap().starts_with("2004-05-13T"));
    }
    let http = flows
        .iter()
        .find(|e| e["network"]["protocol"] == "http")
        .expect("an http flow");
    assert_eq!(http["event"]["reason"], "tcp_close");
    assert!(
        http["source"]["tcp_flags"]
            .as_array()
            .unwrap()
            .contains(&"SYN".into())
    );
}
