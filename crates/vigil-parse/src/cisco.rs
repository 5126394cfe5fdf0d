//! Cisco IOS / IOS-XE system messages, bare (as a syslog server writes them) or inside syslog:
//!
//! ```text
//! 172.16.5.10 6705: Feb 17 13:40:03.673: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:no access-session port-control
//! ```
//!
//! into `event.dataset: cisco.ios` with the message's facility, severity and mnemonic under
//! `cisco.ios.*`, `event.code` (`PARSER-5-CFGLOG_LOGGEDCMD`), the description as `message`,
//! and, for the commands the configuration logger records (`CFGLOG_LOGGEDCMD`, the on-device
//! form of AAA command accounting), `user.name` and `cisco.ios.command`. What comes before the
//! message — the device address or name a relay wrote, the sequence number, the device's
//! time stamp (`*` and `.` marks of an unsynchronised clock allowed) — is read when present.

use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

/// `%FACILITY-SEVERITY-MNEMONIC:` found in a message.
pub(crate) struct Tag<'a> {
    /// Byte offset of the `%`.
    at: usize,
    facility: &'a str,
    severity: u8,
    mnemonic: &'a str,
    /// The description after the tag's colon, trimmed.
    description: &'a str,
}

/// The Cisco system message tag in `text`, if it holds one.
pub(crate) fn find_tag(text: &str) -> Option<Tag<'_>> {
    let mut from = 0;
    while let Some(i) = text[from..].find('%') {
        let at = from + i;
        if let Some(tag) = tag_at(text, at) {
            return Some(tag);
        }
        from = at + 1;
    }
    None
}

fn tag_at(text: &str, at: usize) -> Option<Tag<'_>> {
    // A tag starts the text or follows a space or a colon.
    if at > 0 && !matches!(text.as_bytes()[at - 1], b' ' | b':') {
        return None;
    }
    let rest = &text[at + 1..];
    let end = rest.find(':')?;
    let name = &rest[..end];
    let mut parts = name.rsplitn(3, '-');
    let mnemonic = parts.next()?;
    let severity = parts.next()?;
    let facility = parts.next()?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if !word(facility) || !word(mnemonic) || severity.len() != 1 {
        return None;
    }
    let severity = severity.parse::<u8>().ok().filter(|s| *s <= 7)?;
    Some(Tag {
        at,
        facility,
        severity,
        mnemonic,
        description: rest[end + 1..].trim(),
    })
}

/// Adds the fields of a Cisco system message in `text` to `ev`; false when there is none.
/// What precedes the message (address, sequence number, time) is read too.
pub(crate) fn parse_into(text: &str, ev: &mut Json, received: DateTime<Utc>) -> bool {
    match find_tag(text) {
        Some(tag) => {
            add_fields(text, &tag, ev, received);
            true
        }
        None => false,
    }
}

/// Adds the fields of `tag`, found in `text`, to `ev`.
pub(crate) fn add_fields(text: &str, tag: &Tag<'_>, ev: &mut Json, received: DateTime<Utc>) {
    let mut ios = json!({
        "facility": tag.facility,
        "severity": tag.severity,
        "mnemonic": tag.mnemonic,
    });
    event::set(
        ev,
        "event.code",
        format!("{}-{}-{}", tag.facility, tag.severity, tag.mnemonic).into(),
    );
    event::set(ev, "event.severity", tag.severity.into());
    event::set(ev, fields::MESSAGE, tag.description.into());
    if tag.mnemonic == "CFGLOG_LOGGEDCMD" {
        // `User:admin  logged command:no shutdown`
        let user = tag
            .description
            .strip_prefix("User:")
            .and_then(|r| r.split_whitespace().next());
        if let Some(user) = user {
            event::set(ev, fields::USER_NAME, user.into());
        }
        if let Some((_, command)) = tag.description.split_once("logged command:") {
            ios["command"] = command.trim().into();
        }
        event::set(ev, fields::CATEGORY, json!(["configuration"]));
        event::set(ev, fields::ACTION, "logged-command".into());
    }
    event::set(ev, "cisco.ios", ios);
    read_header(&text[..tag.at], ev, received);
}

/// `[device] [seq:] [*|.]Mmm dd hh:mm:ss[.fff] [zone]:` before the message; a device name
/// or address the event already has (from a syslog header) is kept.
fn read_header(header: &str, ev: &mut Json, received: DateTime<Utc>) {
    for segment in header.split(": ").map(|s| s.trim().trim_end_matches(':')) {
        let stamp = segment.trim_start_matches(['*', '.']);
        if let Some((Some(time), _)) = crate::syslog::parse_time(stamp, received) {
            event::set(ev, fields::TIMESTAMP, event::format_timestamp(time).into());
            continue;
        }
        for word in segment.split_whitespace() {
            if word.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(n) = word.parse::<u64>() {
                    event::set(ev, "event.sequence", n.into());
                }
            } else if crate::is_ip(word) {
                event::set_default(ev, "host.ip", word.into());
            } else if word
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                event::set_default(ev, fields::HOST_NAME, word.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<Json> {
        let received = "2026-03-01T00:00:00Z".parse().unwrap();
        let mut ev = json!({});
        parse_into(text, &mut ev, received).then_some(ev)
    }

    #[test]
    fn a_logged_command_gives_user_command_device_sequence_and_time() {
        let ev = parsed(
            "172.16.5.10 6705: Feb 17 13:40:03.673: %PARSER-5-CFGLOG_LOGGEDCMD: User:admin  logged command:no access-session port-control",
        )
        .unwrap();
        assert_eq!(ev["cisco"]["ios"]["facility"], "PARSER");
        assert_eq!(ev["cisco"]["ios"]["severity"], 5);
        assert_eq!(ev["cisco"]["ios"]["mnemonic"], "CFGLOG_LOGGEDCMD");
        assert_eq!(
            ev["cisco"]["ios"]["command"],
            "no access-session port-control"
        );
        assert_eq!(ev["user"]["name"], "admin");
        assert_eq!(ev["event"]["code"], "PARSER-5-CFGLOG_LOGGEDCMD");
        assert_eq!(ev["event"]["sequence"], 6705);
        assert_eq!(ev["host"]["ip"], "172.16.5.10");
        assert_eq!(ev["@timestamp"], "2026-02-17T13:40:03.673000Z");
        assert_eq!(
            ev["message"],
            "User:admin  logged command:no access-session port-control"
        );
    }

    #[test]
    fn other_messages_and_unsynchronised_clocks() {
        let ev = parsed("000123: *Mar  1 00:01:02.003 UTC: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.5)").unwrap();
        assert_eq!(ev["cisco"]["ios"]["mnemonic"], "CONFIG_I");
        assert_eq!(ev["event"]["sequence"], 123);
        assert_eq!(ev["@timestamp"], "2026-03-01T00:01:02.003000Z");
        assert!(ev["user"].is_null());
        let ev =
            parsed("%LINEPROTO-5-UPDOWN: Line protocol on Interface Gi0/1, changed state to down")
                .unwrap();
        assert_eq!(ev["cisco"]["ios"]["facility"], "LINEPROTO");
        assert_eq!(ev["cisco"]["ios"]["severity"], 5);
    }

    #[test]
    fn text_without_a_tag_is_not_a_cisco_message() {
        for text in [
            "100% done: all good",
            "usage at 50%-5-X: no",
            "%lower-5-case: no",
            "%SYS-9-BAD: severity above 7",
            "%SYS-5-: no mnemonic",
            "%",
            "",
        ] {
            assert!(parsed(text).is_none(), "{text}");
        }
    }
}
