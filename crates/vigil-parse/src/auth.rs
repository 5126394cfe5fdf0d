//! The text of sshd, PAM, sudo and su syslog messages (`auth.log`, `secure`) into
//! authentication fields: `event.category`, `event.action`, `event.outcome`, `user.name`,
//! `user.effective.name`, `source.ip`, `source.port`, `process.command_line`.
//!
//! `message` stays the syslog message as it was: the built-in sshd and sudo rules match on
//! it, and the correlations group on `host.name` and `source.ip` set here.

use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

use crate::is_ip;

/// Programs whose every line belongs in `event.dataset: auth`.
pub(crate) fn is_auth_program(app: &str) -> bool {
    matches!(
        app,
        "sshd"
            | "sudo"
            | "su"
            | "login"
            | "passwd"
            | "chpasswd"
            | "chage"
            | "useradd"
            | "userdel"
            | "usermod"
            | "groupadd"
            | "groupdel"
            | "groupmod"
            | "gpasswd"
            | "systemd-logind"
            | "polkitd"
            | "pkexec"
    )
}

/// Adds the fields of a recognised sshd/PAM/sudo/su message (`app` is the syslog program
/// name) to `ev`; false when the message is none of them.
pub(crate) fn parse_into(app: &str, msg: &str, ev: &mut Json) -> bool {
    if msg.starts_with("pam_") && pam(msg, ev) {
        return true;
    }
    match app {
        "sshd" => sshd(msg, ev),
        "sudo" => sudo(msg, ev),
        "su" => su(msg, ev),
        _ => false,
    }
}

struct Auth<'a> {
    category: &'static str,
    kind: &'static str,
    action: &'static str,
    outcome: &'static str,
    user: Option<&'a str>,
    ip: Option<&'a str>,
    port: Option<&'a str>,
}

impl<'a> Auth<'a> {
    fn new(action: &'static str, outcome: &'static str) -> Self {
        Auth {
            category: "authentication",
            kind: match outcome {
                "success" => "start",
                _ => "info",
            },
            action,
            outcome,
            user: None,
            ip: None,
            port: None,
        }
    }

    fn apply(self, ev: &mut Json) -> bool {
        event::set(ev, fields::CATEGORY, json!([self.category]));
        event::set(ev, fields::TYPE, json!([self.kind]));
        event::set(ev, fields::ACTION, self.action.into());
        event::set(ev, fields::OUTCOME, self.outcome.into());
        if let Some(user) = self.user.filter(|u| !u.is_empty()) {
            event::set(ev, fields::USER_NAME, user.into());
        }
        if let Some(ip) = self.ip {
            if is_ip(ip) {
                event::set(ev, fields::SOURCE_IP, ip.into());
            } else if !ip.is_empty() {
                event::set(ev, "source.domain", ip.into());
            }
        }
        if let Some(port) = self.port.and_then(|p| p.parse::<u16>().ok()) {
            event::set(ev, fields::SOURCE_PORT, port.into());
        }
        true
    }
}

/// `USER from IP port PORT ssh2...`: (user, ip, port); the user is everything before the
/// last ` from `, so a user name an attacker chose cannot shift the address.
fn user_from(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let i = s.rfind(" from ")?;
    let user = &s[..i];
    let mut rest = s[i + 6..].split(' ');
    let ip = rest.next()?;
    let port = match rest.next() {
        Some("port") => rest.next(),
        _ => None,
    };
    Some((user, ip, port))
}

/// `[authenticating |invalid ]user USER IP port PORT` or `IP port PORT`, `[preauth]` removed.
fn user_ip_port(s: &str) -> Option<(Option<&str>, &str, Option<&str>)> {
    let s = s.trim_end().trim_end_matches("[preauth]").trim_end();
    let mut words = s.rsplitn(4, ' ');
    let (port, port_kw, ip) = (words.next()?, words.next()?, words.next()?);
    if port_kw != "port" {
        return None;
    }
    let head = words.next();
    let user = match head {
        None => None,
        Some(h) => Some(
            h.strip_prefix("authenticating user ")
                .or_else(|| h.strip_prefix("invalid user "))
                .or_else(|| h.strip_prefix("user "))?,
        ),
    };
    Some((user, ip, Some(port)))
}

fn sshd(msg: &str, ev: &mut Json) -> bool {
    let msg = msg.strip_prefix("error: ").unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        let Some((method, rest)) = rest.split_once(" for ") else {
            return false;
        };
        let Some((user, ip, port)) = user_from(rest) else {
            return false;
        };
        event::set(ev, "ssh.method", method.into());
        return Auth {
            user: Some(user),
            ip: Some(ip),
            port,
            ..Auth::new("ssh_login", "success")
        }
        .apply(ev);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        let Some((method, rest)) = rest.split_once(" for ") else {
            return false;
        };
        let Some((user, ip, port)) = user_from(rest) else {
            return false;
        };
        event::set(ev, "ssh.method", method.into());
        let user = match user.strip_prefix("invalid user ") {
            Some(u) => {
                event::set(ev, "event.reason", "invalid user".into());
                u
            }
            None => user,
        };
        return Auth {
            user: Some(user),
            ip: Some(ip),
            port,
            ..Auth::new("ssh_login", "failure")
        }
        .apply(ev);
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        let Some((user, ip, port)) = user_from(&format!(" {rest}")).map(|(u, i, p)| {
            (
                u.trim_start().to_owned(),
                i.to_owned(),
                p.map(str::to_owned),
            )
        }) else {
            return false;
        };
        event::set(ev, "event.reason", "invalid user".into());
        return Auth {
            user: Some(&user),
            ip: Some(&ip),
            port: port.as_deref(),
            ..Auth::new("ssh_invalid_user", "failure")
        }
        .apply(ev);
    }
    if let Some(rest) = msg.strip_prefix("maximum authentication attempts exceeded for ") {
        let Some((user, ip, port)) = user_from(rest) else {
            return false;
        };
        let user = user.strip_prefix("invalid user ").unwrap_or(user);
        return Auth {
            user: Some(user),
            ip: Some(ip),
            port,
            ..Auth::new("ssh_max_auth_attempts", "failure")
        }
        .apply(ev);
    }
    for (prefix, action) in [
        ("Connection closed by ", "ssh_connection_closed"),
        ("Disconnected from ", "ssh_disconnect"),
        ("Connection reset by ", "ssh_connection_closed"),
    ] {
        let Some(rest) = msg.strip_prefix(prefix) else {
            continue;
        };
        let Some((user, ip, port)) = user_ip_port(rest) else {
            return false;
        };
        let preauth = rest.ends_with("[preauth]");
        let mut auth = Auth {
            user,
            ip: Some(ip),
            port,
            ..Auth::new(action, if preauth { "failure" } else { "success" })
        };
        auth.kind = if preauth { "info" } else { "end" };
        if !preauth && action == "ssh_disconnect" {
            auth.category = "session";
        }
        return auth.apply(ev);
    }
    if let Some(rest) = msg.strip_prefix("Received disconnect from ") {
        let Some((ip, rest)) = rest.split_once(" port ") else {
            return false;
        };
        let port = rest.split(':').next();
        let mut auth = Auth {
            ip: Some(ip),
            port,
            ..Auth::new("ssh_disconnect", "unknown")
        };
        auth.kind = "end";
        return auth.apply(ev);
    }
    if let Some(rest) = msg.strip_prefix("PAM ")
        && let Some((_, kv)) = rest.split_once(" more authentication failures; ")
    {
        let kv = pam_kv(kv);
        return Auth {
            user: kv.user,
            ip: kv.rhost,
            ..Auth::new("ssh_login", "failure")
        }
        .apply(ev);
    }
    false
}

#[derive(Default)]
struct PamKv<'a> {
    user: Option<&'a str>,
    rhost: Option<&'a str>,
    logname: Option<&'a str>,
}

/// `logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root`
fn pam_kv(s: &str) -> PamKv<'_> {
    let mut out = PamKv::default();
    for pair in s.split_whitespace() {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = Some(v).filter(|v| !v.is_empty());
        match k {
            "user" => out.user = v,
            "rhost" => out.rhost = v,
            "logname" => out.logname = v,
            _ => {}
        }
    }
    out
}

/// `pam_unix(sshd:auth): authentication failure; ...` and `session opened/closed for user`.
fn pam(msg: &str, ev: &mut Json) -> bool {
    let Some((module, rest)) = msg.split_once("): ") else {
        return false;
    };
    let Some((_, service)) = module.split_once('(') else {
        return false;
    };
    if let Some(kv) = rest.strip_prefix("authentication failure; ") {
        let kv = pam_kv(kv);
        event::set(ev, "event.provider", service.into());
        let user = kv.user.or(kv.logname);
        return Auth {
            user,
            ip: kv.rhost,
            ..Auth::new("pam_authentication_failure", "failure")
        }
        .apply(ev);
    }
    let (action, kind, rest) = if let Some(r) = rest.strip_prefix("session opened for user ") {
        ("session_opened", "start", r)
    } else if let Some(r) = rest.strip_prefix("session closed for user ") {
        ("session_closed", "end", r)
    } else {
        return false;
    };
    // `alice(uid=1000) by (uid=0)`, `root(uid=0) by www-data(uid=33)`, `alice by (uid=0)`
    let (target, by) = match rest.split_once(" by ") {
        Some((t, b)) => (t, Some(b)),
        None => (rest.trim_end(), None),
    };
    let name_uid = |s: &str| -> (String, Option<String>) {
        match s.split_once("(uid=") {
            Some((n, uid)) => (n.to_owned(), Some(uid.trim_end_matches(')').to_owned())),
            None => (s.to_owned(), None),
        }
    };
    let (target, target_uid) = name_uid(target);
    let by = by.map(name_uid).filter(|(n, _)| !n.is_empty());
    event::set(ev, "event.provider", service.into());
    let mut auth = Auth::new(action, "success");
    auth.category = "session";
    auth.kind = kind;
    auth.apply(ev);
    match by {
        Some((by_name, by_uid)) => {
            event::set(ev, fields::USER_NAME, by_name.into());
            if let Some(uid) = by_uid {
                event::set(ev, "user.id", uid.into());
            }
            event::set(ev, "user.effective.name", target.into());
            if let Some(uid) = target_uid {
                event::set(ev, "user.effective.id", uid.into());
            }
        }
        None => {
            event::set(ev, fields::USER_NAME, target.into());
            if let Some(uid) = target_uid {
                event::set(ev, "user.id", uid.into());
            }
        }
    }
    true
}

/// `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`, with a reason
/// before `TTY=` when sudo refused (`3 incorrect password attempts ; `, `user NOT in sudoers ; `).
fn sudo(msg: &str, ev: &mut Json) -> bool {
    let text = msg.trim_start();
    if let Some((user, reason)) = text
        .split_once(" is not allowed to run sudo on ")
        .map(|(u, h)| {
            (
                u,
                format!(
                    "not allowed to run sudo on {}",
                    h.split("  ").next().unwrap_or(h).trim_end_matches('.')
                ),
            )
        })
        .or_else(|| {
            text.split_once(" is not in the sudoers file")
                .map(|(u, _)| (u, "not in the sudoers file".to_owned()))
        })
        .filter(|(u, _)| !u.contains(' '))
    {
        event::set(ev, "event.reason", reason.into());
        return Auth {
            user: Some(user),
            ..Auth::new("sudo", "failure")
        }
        .apply(ev);
    }
    let Some((user, rest)) = text.split_once(" : ") else {
        return false;
    };
    if user.is_empty() || user.contains(' ') {
        return false;
    }
    let (head, command) = match rest.find("COMMAND=") {
        Some(i) => (&rest[..i], Some(&rest[i + 8..])),
        None => (rest, None),
    };
    let mut reasons = Vec::new();
    let (mut tty, mut pwd, mut target, mut group) = (None, None, None, None);
    for part in head.split(" ; ").map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("TTY", v)) => tty = Some(v),
            Some(("PWD", v)) => pwd = Some(v),
            Some(("USER", v)) => target = Some(v),
            Some(("GROUP", v)) => group = Some(v),
            Some((k, _)) if k.bytes().all(|b| b.is_ascii_uppercase()) => {}
            _ => reasons.push(part.trim_end_matches(';').trim()),
        }
    }
    if tty.is_none() && command.is_none() {
        return false;
    }
    let failed = !reasons.is_empty();
    let mut auth = Auth {
        user: Some(user),
        ..Auth::new("sudo", if failed { "failure" } else { "success" })
    };
    if !failed {
        auth.category = "process";
    }
    auth.apply(ev);
    if failed {
        event::set(ev, "event.reason", reasons.join("; ").into());
    }
    if let Some(t) = target {
        event::set(ev, "user.effective.name", t.into());
    }
    if let Some(g) = group {
        event::set(ev, "user.effective.group.name", g.into());
    }
    if let Some(p) = pwd {
        event::set(ev, "process.working_directory", p.into());
    }
    if let Some(t) = tty {
        event::set(ev, "process.tty.name", t.into());
    }
    if let Some(c) = command {
        event::set(ev, fields::PROCESS_COMMAND_LINE, c.into());
        if let Some(exe) = c.split_whitespace().next().filter(|e| e.starts_with('/')) {
            event::set(ev, fields::PROCESS_EXECUTABLE, exe.into());
        }
    }
    true
}

/// `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`,
/// `Successful su for root by alice`, `FAILED su for root by alice`, `+ pts/0 alice:root`.
fn su(msg: &str, ev: &mut Json) -> bool {
    let msg = msg.trim();
    let (outcome, rest) = match msg.strip_prefix("FAILED SU ") {
        Some(r) => ("failure", r),
        None => ("success", msg),
    };
    let mut parsed: Option<(&str, &str, Option<&str>)> = None;
    if let Some(r) = rest.strip_prefix("(to ")
        && let Some((target, r)) = r.split_once(") ")
    {
        let (user, tty) = match r.split_once(" on ") {
            Some((u, t)) => (u, Some(t)),
            None => (r, None),
        };
        parsed = Some((user, target, tty));
    }
    let mut outcome = outcome;
    for (prefix, result) in [
        ("Successful su for ", "success"),
        ("FAILED su for ", "failure"),
    ] {
        if let Some(r) = msg.strip_prefix(prefix)
            && let Some((target, user)) = r.split_once(" by ")
        {
            parsed = Some((user, target, None));
            outcome = result;
        }
    }
    for (prefix, result) in [("+ ", "success"), ("- ", "failure")] {
        if let Some(r) = msg.strip_prefix(prefix)
            && let Some((tty, pair)) = r.split_once(' ')
            && let Some((user, target)) = pair.split_once(':')
        {
            parsed = Some((user, target, Some(tty)));
            outcome = result;
        }
    }
    let Some((user, target, tty)) = parsed else {
        return false;
    };
    Auth {
        user: Some(user),
        ..Auth::new("su", outcome)
    }
    .apply(ev);
    event::set(ev, "user.effective.name", target.into());
    if let Some(t) = tty {
        event::set(ev, "process.tty.name", t.into());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LineContext, parse_line};

    fn line(s: &str) -> Json {
        let ctx = LineContext::new("2026-11-23T12:00:00Z".parse().unwrap());
        parse_line(s, &ctx)
    }

    fn get<'a>(e: &'a Json, path: &str) -> &'a Json {
        event::get(e, path).unwrap_or(&Json::Null)
    }

    #[test]
    fn sshd_failed_password_has_what_the_correlations_group_on() {
        let e = line(
            "Nov 23 10:00:01 bastion-1 sshd[812]: Failed password for root from 203.0.113.9 port 52144 ssh2",
        );
        assert_eq!(get(&e, "event.dataset"), "auth");
        assert_eq!(get(&e, "event.category"), &json!(["authentication"]));
        assert_eq!(get(&e, "event.action"), "ssh_login");
        assert_eq!(get(&e, "event.outcome"), "failure");
        assert_eq!(get(&e, "user.name"), "root");
        assert_eq!(get(&e, "source.ip"), "203.0.113.9");
        assert_eq!(get(&e, "source.port"), 52144);
        assert_eq!(get(&e, "host.name"), "bastion-1");
        assert_eq!(get(&e, "process.name"), "sshd");
        assert_eq!(get(&e, "process.pid"), 812);
        assert_eq!(get(&e, "ssh.method"), "password");
        assert_eq!(get(&e, "@timestamp"), "2026-11-23T10:00:01.000000Z");
        assert_eq!(
            get(&e, "message"),
            "Failed password for root from 203.0.113.9 port 52144 ssh2"
        );
    }

    #[test]
    fn sshd_variants() {
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Failed password for invalid user admin from 198.51.100.23 port 40022 ssh2",
        );
        assert_eq!(get(&e, "user.name"), "admin");
        assert_eq!(get(&e, "event.reason"), "invalid user");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Accepted publickey for alice from 2001:db8::7 port 61022 ssh2: ED25519 SHA256:abc",
        );
        assert_eq!(get(&e, "event.outcome"), "success");
        assert_eq!(get(&e, "event.type"), &json!(["start"]));
        assert_eq!(get(&e, "source.ip"), "2001:db8::7");
        assert_eq!(get(&e, "ssh.method"), "publickey");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Accepted keyboard-interactive/pam for bob from 10.0.0.2 port 22 ssh2",
        );
        assert_eq!(get(&e, "ssh.method"), "keyboard-interactive/pam");
        let e =
            line("Nov 23 10:00:01 h sshd[1]: Invalid user oracle from 198.51.100.23 port 40100");
        assert_eq!(get(&e, "event.action"), "ssh_invalid_user");
        assert_eq!(get(&e, "user.name"), "oracle");
        assert_eq!(get(&e, "source.port"), 40100);
        let e = line("Nov 23 10:00:01 h sshd[1]: Invalid user  from 198.51.100.23 port 40100");
        assert_eq!(get(&e, "source.ip"), "198.51.100.23");
        assert!(event::get(&e, "user.name").is_none());
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: error: maximum authentication attempts exceeded for invalid user test from 203.0.113.9 port 5555 ssh2 [preauth]",
        );
        assert_eq!(get(&e, "event.action"), "ssh_max_auth_attempts");
        assert_eq!(get(&e, "user.name"), "test");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Connection closed by authenticating user root 203.0.113.9 port 52144 [preauth]",
        );
        assert_eq!(get(&e, "event.action"), "ssh_connection_closed");
        assert_eq!(get(&e, "event.outcome"), "failure");
        assert_eq!(get(&e, "user.name"), "root");
        assert_eq!(get(&e, "source.port"), 52144);
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Connection closed by 203.0.113.9 port 52144 [preauth]",
        );
        assert_eq!(get(&e, "source.ip"), "203.0.113.9");
        let e = line("Nov 23 10:00:01 h sshd[1]: Disconnected from user alice 10.0.4.7 port 61022");
        assert_eq!(get(&e, "event.action"), "ssh_disconnect");
        assert_eq!(get(&e, "event.type"), &json!(["end"]));
        assert_eq!(get(&e, "user.name"), "alice");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: Disconnected from invalid user admin 203.0.113.9 port 1 [preauth]",
        );
        assert_eq!(get(&e, "user.name"), "admin");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
        );
        assert_eq!(get(&e, "source.ip"), "203.0.113.9");
        assert_eq!(get(&e, "user.name"), "root");
        // OpenSSH 9.8 per-session process.
        let e = line(
            "Nov 23 10:00:01 h sshd-session[1]: Failed password for root from 203.0.113.9 port 1 ssh2",
        );
        assert_eq!(get(&e, "process.name"), "sshd");
        assert_eq!(get(&e, "log.syslog.appname"), "sshd-session");
        // Unrecognised sshd lines are still auth.
        let e = line("Nov 23 10:00:01 h sshd[1]: Server listening on 0.0.0.0 port 22.");
        assert_eq!(get(&e, "event.dataset"), "auth");
        assert!(event::get(&e, "event.action").is_none());
    }

    #[test]
    fn pam_failures_and_sessions() {
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
        );
        assert_eq!(get(&e, "event.action"), "pam_authentication_failure");
        assert_eq!(get(&e, "event.outcome"), "failure");
        assert_eq!(get(&e, "user.name"), "root");
        assert_eq!(get(&e, "source.ip"), "203.0.113.9");
        assert_eq!(get(&e, "event.provider"), "sshd:auth");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example.net",
        );
        assert_eq!(get(&e, "source.domain"), "scanner.example.net");
        let e = line(
            "Nov 23 10:00:01 h sshd[1]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
        );
        assert_eq!(get(&e, "event.action"), "session_opened");
        assert_eq!(get(&e, "event.category"), &json!(["session"]));
        assert_eq!(get(&e, "user.name"), "alice");
        assert_eq!(get(&e, "user.id"), "1000");
        let e = line(
            "Nov 23 10:00:01 h sudo: pam_unix(sudo:session): session opened for user root(uid=0) by www-data(uid=33)",
        );
        assert_eq!(get(&e, "user.name"), "www-data");
        assert_eq!(get(&e, "user.effective.name"), "root");
        let e = line("Nov 23 10:00:01 h su[9]: pam_unix(su:session): session closed for user root");
        assert_eq!(get(&e, "event.action"), "session_closed");
        assert_eq!(get(&e, "user.name"), "root");
    }

    #[test]
    fn sudo_commands_and_refusals() {
        let e = line(
            "Nov 23 10:00:01 app-2 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update",
        );
        assert_eq!(get(&e, "event.dataset"), "auth");
        assert_eq!(get(&e, "event.action"), "sudo");
        assert_eq!(get(&e, "event.outcome"), "success");
        assert_eq!(get(&e, "user.name"), "alice");
        assert_eq!(get(&e, "user.effective.name"), "root");
        assert_eq!(get(&e, "process.command_line"), "/usr/bin/apt update");
        assert_eq!(get(&e, "process.executable"), "/usr/bin/apt");
        assert_eq!(get(&e, "process.working_directory"), "/home/alice");
        assert_eq!(get(&e, "process.name"), "sudo");
        assert_eq!(
            get(&e, "message"),
            "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update"
        );
        let e = line(
            "Nov 23 10:00:01 app-2 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
        );
        assert_eq!(get(&e, "event.outcome"), "failure");
        assert_eq!(get(&e, "event.reason"), "3 incorrect password attempts");
        let e = line(
            "Nov 23 10:00:01 app-2 sudo: www-data : user NOT in sudoers ; TTY=unknown ; PWD=/var/www ; USER=root ; COMMAND=/bin/bash",
        );
        assert_eq!(get(&e, "event.reason"), "user NOT in sudoers");
        assert_eq!(get(&e, "user.name"), "www-data");
        let e = line(
            "Nov 23 10:00:01 app-2 sudo: carol is not allowed to run sudo on app-2.  This incident will be reported.",
        );
        assert_eq!(get(&e, "user.name"), "carol");
        assert_eq!(get(&e, "event.reason"), "not allowed to run sudo on app-2");
        // A command with ` ; ` in it stays whole.
        let e = line(
            "Nov 23 10:00:01 h sudo: bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c id ; whoami",
        );
        assert_eq!(get(&e, "process.command_line"), "/bin/sh -c id ; whoami");
    }

    #[test]
    fn su_success_and_failure() {
        let e = line("Nov 23 10:00:01 h su[77]: (to root) alice on pts/0");
        assert_eq!(get(&e, "event.action"), "su");
        assert_eq!(get(&e, "event.outcome"), "success");
        assert_eq!(get(&e, "user.name"), "alice");
        assert_eq!(get(&e, "user.effective.name"), "root");
        let e = line("Nov 23 10:00:01 h su[77]: FAILED SU (to root) alice on pts/0");
        assert_eq!(get(&e, "event.outcome"), "failure");
        let e = line("Nov 23 10:00:01 h su: - pts/1 bob:root");
        assert_eq!(get(&e, "event.outcome"), "failure");
        assert_eq!(get(&e, "user.name"), "bob");
        let e = line("Nov 23 10:00:01 h su: Successful su for root by alice");
        assert_eq!(get(&e, "user.effective.name"), "root");
    }
}
