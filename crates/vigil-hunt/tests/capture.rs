//! Packet captures as hunt input: vigil-net's flow/DNS/HTTP events meet network rules
//! through the `network` pipeline.

use std::path::PathBuf;

use vigil_detect::{CompileOptions, CompiledRule, Pipeline, PipelineSet, Ruleset};
use vigil_hunt::{Error, Hunter};

fn shared_pcap(name: &str) -> Option<PathBuf> {
    vigil_testdata::path(&format!("pcap/{name}"))
}

fn network_rules() -> Ruleset {
    let rule = |yaml: &str| {
        CompiledRule::from_yaml(yaml, &CompileOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    };
    let rules = vec![
        rule(
            "title: Ad network lookup\nlevel: medium\nlogsource: {category: dns}\n\
             detection: {sel: {query|endswith: '.googlesyndication.com', record_type: A}, condition: sel}",
        ),
        rule(
            "title: Old Gecko\nlevel: low\nlogsource: {category: proxy}\n\
             detection: {sel: {c-useragent|contains: 'Gecko/20040113', cs-host: www.ethereal.com, sc-status: 200}, condition: sel}",
        ),
        rule(
            "title: DNS flow\nlevel: informational\nlogsource: {category: firewall}\n\
             detection: {sel: {dst_port: 53, proto: udp}, condition: sel}",
        ),
    ];
    let network = Pipeline::builtin("network").unwrap_or_else(|e| panic!("{e}"));
    Ruleset::with_pipelines(rules, &PipelineSet::new(vec![network]))
}

#[test]
fn hunting_a_pcap_finds_a_dns_query_an_http_request_and_a_flow() {
    let Some(pcap) = shared_pcap("http-protocol-inspect-v2.pcap") else {
        return;
    };
    let rules = network_rules();
    let hunt = Hunter::new(&rules).hunt(std::slice::from_ref(&pcap), |_| {});
    assert!(hunt.errors.is_empty(), "{:?}", hunt.errors);
    let titles: Vec<&str> = hunt
        .hits
        .iter()
        .map(|h| h.rule.rule().title.as_str())
        .collect();
    let count = |t: &str| titles.iter().filter(|x| **x == t).count();
    assert_eq!(count("Ad network lookup"), 1, "{titles:?}");
    assert_eq!(count("Old Gecko"), 1, "{titles:?}");
    assert_eq!(count("DNS flow"), 1, "{titles:?}");
    let dns = hunt
        .hits
        .iter()
        .find(|h| h.rule.rule().title == "Ad network lookup")
        .unwrap();
    assert_eq!(
        dns.event.to_value()["dns"]["question"]["name"],
        "pagead2.googlesyndication.com"
    );
    assert_eq!(dns.location.path, pcap);
    assert!(
        dns.time
            .as_deref()
            .is_some_and(|t| t.starts_with("2004-05-13T"))
    );
    assert!(hunt.events > 3);
}

#[test]
fn a_truncated_capture_is_hunted_up_to_the_damage_and_reported() {
    let Some(pcap) = shared_pcap("http-protocol-inspect-v2.pcap") else {
        return;
    };
    let data = std::fs::read(&pcap).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("vigil-hunt-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let cut = dir.join("cut.pcapng.pcap");
    std::fs::write(&cut, &data[..data.len() - 100]).unwrap_or_else(|e| panic!("{e}"));
    let junk = dir.join("junk.pcapng");
    std::fs::write(&junk, b"definitely not pcapng").unwrap_or_else(|e| panic!("{e}"));
    let rules = network_rules();
    let hunt = Hunter::new(&rules).hunt(&[cut.clone(), junk.clone()], |_| {});
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hunt.errors.len(), 2, "{:?}", hunt.errors);
    let text: Vec<String> = hunt.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        matches!(&hunt.errors[0], Error::Parse { path, .. } if *path == cut)
            && text[0].contains("read only in part")
            && text[0].contains("byte offset"),
        "{text:?}"
    );
    assert!(
        text[1].contains("junk.pcapng") && text[1].contains("magic"),
        "{text:?}"
    );
    // The DNS exchange comes early in the capture: still found.
    assert!(
        hunt.hits
            .iter()
            .any(|h| h.rule.rule().title == "Ad network lookup")
    );
}
