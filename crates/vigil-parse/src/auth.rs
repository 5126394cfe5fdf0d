//! The text of sshd, PAM, sudo and su syslog messages (`auth.log`, `secure`) and of the
//! authentication failures of Dropbear, ProFTPD, vsftpd, Pure-FTPd, Postfix and Dovecot into
//! authentication fields: `event.category`, `event.action`, `event.outcome`, `event.reason`,
//! `user.name`, `user.effective.name`, `source.ip`, `source.port`, `process.command_line`.
//!
//! `message` stays the syslog message as it was: the built-in sshd and sudo rules match on
//! it, and the correlations group on `host.name` and `source.ip` set here.
//!
//! Every format is read from its fixed parts (see `docs/EVENTS.md`): user names, remote
//! users, client-sent method names, paths and reasons are attacker-written and may contain
//! anything, ` from 6.6.6.6 port 1` and `rhost=6.6.6.6` included, so an address is taken only
//! from the place the daemon wrote it, and where two places fit the format equally no
//! address is taken at all.

use std::net::IpAddr;

use serde_json::{Value as Json, json};
use vigil_core::event::{self, fields};

mod services;
mod sshd;

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

/// Adds the fields of a recognised authentication message (`app` is the syslog program
/// name) to `ev`; false when the message is none of them.
pub(crate) fn parse_into(app: &str, msg: &str, ev: &mut Json) -> bool {
    let msg = strip_solaris_id(msg);
    if msg.starts_with("pam_") && pam(msg, ev) {
        return true;
    }
    match app {
        "sshd" => sshd::parse_into(msg, ev),
        "sudo" => sudo(msg, ev),
        "su" => su(msg, ev),
        "dropbear" => services::dropbear(msg, ev),
        "proftpd" => services::proftpd(msg, ev),
        "vsftpd" => services::vsftpd(msg, ev),
        "pure-ftpd" => services::pure_ftpd(msg, ev),
        "dovecot" => services::dovecot(None, msg, ev),
        a if a.ends_with("-login") || a == "auth" || a.starts_with("auth-worker") => {
            services::dovecot(Some(a), msg, ev)
        }
        a if a.starts_with("postfix") || a == "smtpd" => services::postfix(msg, ev),
        _ => false,
    }
}

/// Solaris and illumos syslogd put a message id before the text:
/// `sshd[1]: [ID 800047 auth.info] Failed password for ...`.
fn strip_solaris_id(msg: &str) -> &str {
    let Some(rest) = msg.strip_prefix("[ID ") else {
        return msg;
    };
    let Some((id, rest)) = rest.split_once(' ') else {
        return msg;
    };
    let Some((facility, rest)) = rest.split_once("] ") else {
        return msg;
    };
    let ok = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && facility.contains('.')
        && !facility.contains(' ');
    if ok { rest } else { msg }
}

struct Auth<'a> {
    category: &'static str,
    kind: &'static str,
    action: &'static str,
    outcome: &'static str,
    user: Option<&'a str>,
    ip: Option<IpAddr>,
    domain: Option<&'a str>,
    port: Option<u16>,
    reason: Option<&'a str>,
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
            domain: None,
            port: None,
            reason: None,
        }
    }

    /// A failed authentication: the shape the single-failure rules key on.
    fn failure(action: &'static str) -> Self {
        Self::new(action, "failure")
    }

    fn user(mut self, user: Option<&'a str>) -> Self {
        self.user = user;
        self
    }

    fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    fn port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }

    /// The remote end as the daemon wrote it: an address (`source.ip`), else a host name
    /// (`source.domain`); `UNKNOWN`, `unknown` and anything that is not one word of host
    /// name characters are neither.
    fn host(mut self, host: Option<&'a str>) -> Self {
        let Some(host) = host else {
            return self;
        };
        if let Some(ip) = ip(host) {
            self.ip = Some(ip);
        } else if is_host_name(host) {
            self.domain = Some(host);
        }
        self
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
            event::set(ev, fields::SOURCE_IP, ip.to_string().into());
        } else if let Some(domain) = self.domain {
            event::set(ev, "source.domain", domain.into());
        }
        if let Some(port) = self.port {
            event::set(ev, fields::SOURCE_PORT, port.into());
        }
        if let Some(reason) = self.reason.filter(|r| !r.is_empty()) {
            event::set(ev, "event.reason", reason.into());
        }
        true
    }
}

/// `s` as an address, validated by std's parser: brackets (`[2001:db8::1]`) dropped, and an
/// IPv4-mapped IPv6 address (`::ffff:203.0.113.9`, as dual-stack daemons write IPv4
/// clients) as its IPv4 address, so one client is one `source.ip` whichever way it was
/// logged.
pub(crate) fn ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// One word of host name characters (what a reverse lookup gives), not a placeholder.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && !s.eq_ignore_ascii_case("unknown")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `HEAD from HOST[ port N]` ending `s`: (HEAD, HOST, N). HOST is one word, so the last
/// ` from ` is the daemon's whatever HEAD (a user name) holds: only for formats in which
/// nothing attacker-written follows the host.
fn from_host_port(s: &str) -> Option<(&str, &str, Option<u16>)> {
    let (s, port) = match s.rsplit_once(" port ") {
        Some((h, p)) if port(p).is_some() => (h, port(p)),
        _ => (s, None),
    };
    let (head, host) = s.rsplit_once(" from ")?;
    if host.is_empty() || host.contains(' ') {
        return None;
    }
    Some((head, host, port))
}

/// The only item, or `None` when there are none or several: where attacker text can
/// imitate the fixed part of a format, two matches mean the address is not known.
fn only<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.next().is_none().then_some(first)
}

/// `logname=L uid=N euid=N tty=T ruser=R rhost=H  user=U`, pam_unix's fixed key order
/// (`support.c`, `_unix_verify_password`). L and T are the service's, H is the client as
/// the service set it; R and U are whatever the client sent, and may hold ` rhost=` too.
#[derive(Default)]
struct PamKv<'a> {
    user: Option<&'a str>,
    rhost: Option<&'a str>,
    logname: Option<&'a str>,
}

fn nonempty(v: &str) -> Option<&str> {
    Some(v).filter(|v| !v.is_empty())
}

fn pam_kv(s: &str) -> PamKv<'_> {
    let Some(rest) = s.trim_start().strip_prefix("logname=") else {
        return PamKv::default();
    };
    let Some((logname, rest)) = rest.split_once(" uid=") else {
        return PamKv::default();
    };
    let logname = nonempty(logname);
    let Some((_, rest)) = rest.split_once(" tty=") else {
        return PamKv {
            logname,
            ..PamKv::default()
        };
    };
    let Some((_, rest)) = rest.split_once(" ruser=") else {
        return PamKv {
            logname,
            ..PamKv::default()
        };
    };
    // `rhost=H` then the end or `user=U`: the user may hold ` rhost=`, so when ruser is
    // empty the rhost is the one right after it; else it is the only ` rhost=` that the
    // format's tail can follow.
    let split = |at: usize| -> Option<(&str, Option<&str>)> {
        let after = &rest[at + " rhost=".len()..];
        let (host, tail) = after.split_once(' ').unwrap_or((after, ""));
        if tail.is_empty() {
            return Some((host, None));
        }
        let user = tail.trim_start_matches(' ').strip_prefix("user=")?;
        Some((host, Some(user)))
    };
    let found = if rest.starts_with(" rhost=") {
        split(0)
    } else {
        only(rest.match_indices(" rhost=").filter_map(|(i, _)| split(i)))
    };
    match found {
        Some((host, user)) => PamKv {
            user: user.and_then(nonempty),
            rhost: nonempty(host),
            logname,
        },
        None => PamKv {
            logname,
            ..PamKv::default()
        },
    }
}

/// `pam_unix(sshd:auth): authentication failure; ...` (from any service: sshd, login, ftp,
/// dovecot, sudo, su) and `session opened/closed for user`.
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
        return Auth::failure("pam_authentication_failure")
            .user(kv.user.or(kv.logname))
            .host(kv.rhost)
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
    // sudo's order is fixed (`logging.c`): `[REASON ; ]TTY=t ; PWD=p ; USER=u ; [GROUP=g ;
    // ][TSID=s ; ][ENV=e ; ]COMMAND=c`. The reasons and the tty are sudo's own.
    let Some(tty_at) = rest
        .match_indices("TTY=")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || rest[..i].ends_with("; "))
    else {
        return false;
    };
    let reasons: Vec<&str> = rest[..tty_at]
        .split(" ; ")
        .map(|p| p.trim().trim_end_matches(';').trim())
        .filter(|p| !p.is_empty())
        .collect();
    let (tty, after) = rest[tty_at + "TTY=".len()..]
        .split_once(" ; ")
        .unwrap_or((&rest[tty_at + "TTY=".len()..], ""));
    let tty = Some(tty);
    let found = after.strip_prefix("PWD=").and_then(sudo_fields);
    let (pwd, target, group, command) = match found {
        Some(f) => (Some(f.pwd), Some(f.user), f.group, Some(f.command)),
        None => (None, None, None, None),
    };
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

struct SudoFields<'a> {
    pwd: &'a str,
    user: &'a str,
    group: Option<&'a str>,
    command: &'a str,
}

/// `p ; USER=u ; [GROUP=g ; ][TSID=s ; ][ENV=e ; ]COMMAND=c` after `PWD=`. The directory
/// (any name the user made), the environment and the command are the user's and may hold
/// ` ; USER=root ; COMMAND=...`; the target user and group are one word. Where more than one
/// ` ; USER=` fits, neither the target nor the command is known.
fn sudo_fields(s: &str) -> Option<SudoFields<'_>> {
    only(s.match_indices(" ; USER=").filter_map(|(i, _)| {
        let (user, mut rest) = s[i + " ; USER=".len()..].split_once(" ; ")?;
        if user.is_empty() || user.contains(' ') {
            return None;
        }
        let mut group = None;
        if let Some(r) = rest.strip_prefix("GROUP=") {
            let (g, r) = r.split_once(" ; ")?;
            if g.contains(' ') {
                return None;
            }
            group = Some(g);
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("TSID=") {
            rest = r.split_once(" ; ")?.1;
        }
        let command = match rest.strip_prefix("ENV=") {
            Some(r) => r.split_once(" ; COMMAND=")?.1,
            None => rest.strip_prefix("COMMAND=")?,
        };
        Some(SudoFields {
            pwd: &s[..i],
            user,
            group,
            command,
        })
    }))
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
