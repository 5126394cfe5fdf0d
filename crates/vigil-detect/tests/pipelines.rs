//! Processing pipelines: logsource alternatives, field renames, the candidate index, errors.

use serde_json::{Value, json};
use vigil_detect::{CompileOptions, CompiledRule, Error, Pipeline, PipelineSet, Ruleset};

fn compile(title: &str, logsource: &str, detection: &str) -> CompiledRule {
    let text = format!("title: {title}\nlogsource: {logsource}\ndetection:\n{detection}");
    CompiledRule::from_yaml(&text, &CompileOptions::default())
        .unwrap_or_else(|e| panic!("rule does not compile: {e}"))
}

fn windows() -> PipelineSet {
    PipelineSet::new(vec![Pipeline::builtin("windows").unwrap()])
}

fn names<'a>(ruleset: &'a Ruleset, event: &'a Value) -> Vec<&'a str> {
    ruleset
        .matches(event)
        .map(|r| r.rule().title.as_str())
        .collect()
}

fn win(channel: &str, id: u32, data: Value) -> Value {
    json!({"Event": {"System": {"Channel": channel, "EventID": id}, "EventData": data}})
}

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";

fn whoami() -> CompiledRule {
    compile(
        "Whoami",
        "{product: windows, category: process_creation}",
        "    sel:\n        Image|endswith: '\\whoami.exe'\n        ParentImage|endswith: '\\cmd.exe'\n        User|contains: 'admin'\n    condition: sel\n",
    )
}

#[test]
fn security_4688_matches_a_process_creation_rule_through_renames() {
    let ruleset = Ruleset::with_pipelines(vec![whoami()], &windows());
    let security = win(
        "Security",
        4688,
        json!({"NewProcessName": "C:\\Windows\\System32\\whoami.exe",
               "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
               "SubjectUserName": "Administrator"}),
    );
    assert_eq!(names(&ruleset, &security), ["Whoami"]);
    let sysmon = win(
        SYSMON,
        1,
        json!({"Image": "C:\\Windows\\System32\\whoami.exe",
               "ParentImage": "C:\\Windows\\System32\\cmd.exe",
               "User": "CORP\\admin"}),
    );
    assert_eq!(names(&ruleset, &sysmon), ["Whoami"]);
    // Same data on an event the logsource does not stand for: never a match.
    let other = win(SYSMON, 11, sysmon["Event"]["EventData"].clone());
    assert!(names(&ruleset, &other).is_empty());
    assert_eq!(ruleset.candidate_count(&other), 0);
    // Without pipelines the Security event's field names are not the rule's.
    assert_eq!(Ruleset::new(vec![whoami()]).matches(&security).count(), 0);
}

#[test]
fn a_sysmon_rule_is_never_evaluated_on_a_security_event() {
    // The rule matches anything that has an EventID, so only the logsource can keep it away.
    let any = "    sel:\n        EventID|exists: true\n    condition: sel\n";
    let ruleset = Ruleset::with_pipelines(
        vec![
            compile("Sysmon any", "{product: windows, service: sysmon}", any),
            compile(
                "Image load",
                "{product: windows, category: image_load}",
                any,
            ),
            compile("Security any", "{product: windows, service: security}", any),
        ],
        &windows(),
    );
    let security = win("Security", 4624, json!({"TargetUserName": "bob"}));
    assert_eq!(names(&ruleset, &security), ["Security any"]);
    assert_eq!(ruleset.candidate_count(&security), 1);
    let image_load = win(SYSMON, 7, json!({"ImageLoaded": "x.dll"}));
    assert_eq!(names(&ruleset, &image_load), ["Sysmon any", "Image load"]);
    // Channel names compare without regard to case, EventIDs as text or numbers.
    let shouting =
        json!({"Event": {"System": {"Channel": "SECURITY", "EventID": {"#text": "4624"}}}});
    assert_eq!(names(&ruleset, &shouting), ["Security any"]);
    // Without pipelines every rule is evaluated and all three fire.
    let plain = Ruleset::new(ruleset.rules().to_vec());
    assert_eq!(plain.matches(&security).count(), 3);
    assert_eq!(plain.candidate_count(&security), 3);
}

#[test]
fn rules_no_pipeline_maps_are_reported_and_never_evaluated() {
    let any = "    sel:\n        EventID|exists: true\n    condition: sel\n";
    let ruleset = Ruleset::with_pipelines(
        vec![compile("Cisco", "{product: cisco, service: aaa}", any)],
        &windows(),
    );
    let unmapped: Vec<&str> = ruleset
        .unmapped()
        .map(|r| r.rule().title.as_str())
        .collect();
    assert_eq!(unmapped, ["Cisco"]);
    assert_eq!(
        ruleset.matches(&win("Security", 4624, json!({}))).count(),
        0
    );
}

#[test]
fn alternatives_with_several_values_and_multi_valued_event_fields() {
    let pipeline = Pipeline::from_yaml(
        "test.yml",
        r#"
name: test
fieldmappings: {Image: process.executable}
logsources:
    procs:
        logsource: {category: process_creation}
        conditions:
            event.category: process
            event.type: [start, exec]
        fieldmappings: {Image: [process.path, process.executable]}
"#,
    )
    .unwrap();
    let rule = compile(
        "Curl",
        "{category: process_creation}",
        "    sel:\n        Image|endswith: '/curl'\n    condition: sel\n",
    );
    let ruleset = Ruleset::with_pipelines(vec![rule], &PipelineSet::new(vec![pipeline]));
    let event = json!({"event": {"category": ["host", "process"], "type": "EXEC"},
                       "process": {"executable": "/usr/bin/curl"}});
    assert_eq!(names(&ruleset, &event), ["Curl"]);
    let end = json!({"event": {"category": "process", "type": "end"},
                     "process": {"executable": "/usr/bin/curl"}});
    assert!(names(&ruleset, &end).is_empty());
}

#[test]
fn vigil_schema_maps_sigma_names_to_normalized_fields() {
    let set = PipelineSet::builtin().unwrap();
    let rules = vec![
        whoami(),
        compile(
            "Odd port",
            "{product: windows, category: network_connection}",
            "    sel:\n        DestinationPort: 4444\n        Image|endswith: '\\powershell.exe'\n    condition: sel\n",
        ),
        compile(
            "Bad domain",
            "{product: windows, category: dns_query}",
            "    sel:\n        QueryName|endswith: '.evil.example'\n    condition: sel\n",
        ),
        compile(
            "Proxy",
            "{category: proxy}",
            "    sel:\n        c-uri|contains: '/wp-admin'\n    condition: sel\n",
        ),
    ];
    let ruleset = Ruleset::with_pipelines(rules, &set);
    let proc_start = json!({
        "@timestamp": "2026-11-23T12:00:00Z",
        "host": {"name": "ws1", "os": {"type": "windows"}},
        "event": {"category": "process", "type": "start", "action": "exec"},
        "user": {"name": "admin"},
        "process": {"executable": "C:\\Windows\\System32\\whoami.exe",
                    "parent": {"executable": "C:\\Windows\\System32\\cmd.exe"}}
    });
    assert_eq!(names(&ruleset, &proc_start), ["Whoami"]);
    let conn = json!({
        "host": {"os": {"type": "windows"}},
        "event": {"category": "network", "type": "connection"},
        "process": {"executable": "C:\\x\\powershell.exe"},
        "destination": {"ip": "10.0.0.1", "port": 4444}
    });
    assert_eq!(names(&ruleset, &conn), ["Odd port"]);
    let dns = json!({
        "host": {"os": {"type": "windows"}},
        "event": {"category": "network", "dataset": "dns"},
        "dns": {"question": {"name": "c2.evil.example"}}
    });
    assert_eq!(names(&ruleset, &dns), ["Bad domain"]);
    let http = json!({"event": {"dataset": "network.http"}, "url": {"original": "/wp-admin/x"}});
    assert_eq!(names(&ruleset, &http), ["Proxy"]);
    // A Linux process start is not a Windows process_creation.
    let mut linux = proc_start.clone();
    linux["host"]["os"]["type"] = json!("linux");
    assert!(names(&ruleset, &linux).is_empty());
}

#[test]
fn every_builtin_pipeline_loads() {
    for (file, _) in Pipeline::BUILTIN {
        let p = Pipeline::builtin(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.name().is_empty());
    }
    let err = Pipeline::builtin("solaris").unwrap_err().to_string();
    assert!(
        err.contains("solaris") && err.contains("windows.yml"),
        "{err}"
    );
}

#[test]
fn bad_pipelines_name_the_file_and_the_problem() {
    let cases = [
        ("name: 'unterminated", "line 1"),
        ("logsources: {}", "missing field `name`"),
        ("name: x\nlogsources: {}", "`logsources` must not be empty"),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows}, conditons: {EventID: 1}}",
            "unknown field `conditons`",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {}}",
            "logsource entry `a`: `logsource` must give at least one of",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows}, conditions: {EventID: []}}",
            "logsource entry `a`: condition `EventID`: an empty list never holds",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows}, conditions: {EventID: {x: 1}}}",
            "condition `EventID`: values must be strings",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows}, fieldmappings: {Image: 3}}",
            "fieldmappings: `Image` must map to a field name",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows, categry: x}}",
            "unknown field `categry`",
        ),
        (
            "name: x\nlogsources:\n  a: {logsource: {product: windows}}\n  a: {logsource: {product: linux}}",
            "duplicate entry",
        ),
    ];
    for (text, want) in cases {
        let err = Pipeline::from_yaml("mine.yml", text).unwrap_err();
        assert!(matches!(err, Error::Pipeline { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("pipeline mine.yml: "), "{msg}");
        assert!(msg.contains(want), "{msg} should say {want}");
    }
    let dir = std::env::temp_dir().join(format!("vigil-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.yml");
    std::fs::write(&path, "name: x\nlogsources: {}").unwrap();
    let msg = Pipeline::from_file(&path).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        msg.contains("broken.yml") && msg.contains("must not be empty"),
        "{msg}"
    );
    let missing = Pipeline::from_file(&dir.join("missing.yml")).unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
}

#[test]
fn linux_and_network_pipelines_map_agent_events() {
    let set = PipelineSet::builtin().unwrap();
    let rules = vec![
        compile(
            "Curl to pastebin",
            "{product: linux, category: process_creation}",
            "    sel:\n        Image|endswith: '/curl'\n        CommandLine|contains: 'pastebin'\n    condition: sel\n",
        ),
        compile(
            "Auditd ptrace",
            "{product: linux, service: auditd}",
            "    sel:\n        type: SYSCALL\n        syscall: ptrace\n    condition: sel\n",
        ),
        compile(
            "Telnet flow",
            "{category: firewall}",
            "    sel:\n        dst_port: 23\n    condition: sel\n",
        ),
        compile(
            "DNS TXT",
            "{category: dns}",
            "    sel:\n        record_type: TXT\n        query|endswith: '.evil.example'\n    condition: sel\n",
        ),
    ];
    let ruleset = Ruleset::with_pipelines(rules, &set);
    let exec = json!({"event": {"dataset": "process"},
                      "process": {"executable": "/usr/bin/curl",
                                  "command_line": "curl https://pastebin.com/raw/x"}});
    assert_eq!(names(&ruleset, &exec), ["Curl to pastebin"]);
    let audit = json!({"event": {"dataset": "auditd"}, "type": "SYSCALL", "syscall": "ptrace"});
    assert_eq!(names(&ruleset, &audit), ["Auditd ptrace"]);
    let flow = json!({"event": {"dataset": "network.flow"},
                      "source": {"ip": "10.0.0.2", "port": 50000},
                      "destination": {"ip": "10.0.0.1", "port": 23}});
    assert_eq!(names(&ruleset, &flow), ["Telnet flow"]);
    assert_eq!(ruleset.candidate_count(&flow), 1);
    let dns = json!({"event": {"dataset": "network.dns"},
                     "dns": {"question": {"name": "x.evil.example", "type": "TXT"}}});
    assert_eq!(names(&ruleset, &dns), ["DNS TXT"]);
    // An event no pipeline entry recognises is given to no rule at all.
    assert_eq!(ruleset.candidate_count(&json!({"message": "hello"})), 0);
}

#[test]
fn a_logsource_field_with_several_values_is_keyed_by_each() {
    let ruleset = Ruleset::with_pipelines(vec![whoami()], &windows());
    let data = json!({"Image": "C:\\Windows\\System32\\whoami.exe",
                      "ParentImage": "C:\\Windows\\System32\\cmd.exe",
                      "User": "CORP\\admin"});
    let event = |channel: Value, id: Value| json!({"Event": {"System": {"Channel": channel, "EventID": id}, "EventData": data}});
    // One of the values of either field is the process_creation key.
    assert_eq!(
        names(&ruleset, &event(json!(SYSMON), json!([11, 1]))),
        ["Whoami"]
    );
    assert_eq!(
        names(&ruleset, &event(json!(["Security", SYSMON]), json!(1))),
        ["Whoami"]
    );
    // Neither combination is.
    assert!(
        names(
            &ruleset,
            &event(json!(["Security", SYSMON]), json!([11, 12]))
        )
        .is_empty()
    );
    assert!(names(&ruleset, &event(json!(SYSMON), json!([]))).is_empty());
}
