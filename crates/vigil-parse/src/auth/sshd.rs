//! OpenSSH's sshd, versions 3.9 to 9.x. The format strings are OpenSSH's own (`auth.c`
//! `auth_log`, `getpwnamallow`, `allowed_user`, `auth_root_allowed`,
//! `auth_maxtries_exceeded`; `auth-pam.c`; `packet.c` `sshpkt_fmt_connection_id`,
//! `ssh_packet_disconnect`; `kex.c`; `sshd.c`); older spellings (`illegal user`, no
//! `port`, `ssh1`) are kept where they differ.
//!
//! What the client chooses and sshd writes as it came: the user name (up to 100 bytes, any
//! bytes but control characters), the method name of an unknown method, a hostbased
//! client's user and host, a certificate's key id, the text of a disconnect and a
//! client's algorithm offer. The address and port are sshd's own and come from where the
//! format puts them.

use serde_json::Value as Json;
use vigil_core::event;

use super::{Auth, from_host_port, pam_kv, port};

pub(super) fn parse_into(msg: &str, ev: &mut Json) -> bool {
    let msg = msg
        .strip_prefix("error: ")
        .or_else(|| msg.strip_prefix("fatal: "))
        .unwrap_or(msg);
    // Messages of the pre-authentication child end so (`log.c`); nothing else does.
    let (msg, preauth) = match msg.strip_suffix(" [preauth]") {
        Some(m) => (m, true),
        None => (msg, false),
    };
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        return auth_log(rest, "success", ev);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        return auth_log(rest, "failure", ev);
    }
    // `Invalid user %.100s from %.100s port %d` (7.x+), `... from %.100s` before, and
    // `Illegal user` before 3.9.
    if msg.starts_with("Invalid user ") || msg.starts_with("Illegal user ") {
        return invalid_user(msg, ev);
    }
    // `input_userauth_request: invalid user %s` (auth2.c, 5.x-7.x), no address.
    if let Some(user) = msg.strip_prefix("input_userauth_request: invalid user ") {
        return Auth::failure("ssh_invalid_user")
            .user(Some(user))
            .reason("invalid user")
            .apply(ev);
    }
    // `maximum authentication attempts exceeded for %s%.100s from %.200s port %d ssh2`
    if let Some(rest) = msg.strip_prefix("maximum authentication attempts exceeded for ") {
        let rest = rest.strip_suffix(" ssh2").unwrap_or(rest);
        let Some((user, host, port)) = from_host_port(rest) else {
            return false;
        };
        let (user, _) = strip_invalid(user);
        return Auth::failure("ssh_max_auth_attempts")
            .user(Some(user))
            .host(Some(host))
            .port(port)
            .reason("maximum authentication attempts exceeded")
            .apply(ev);
    }
    // `User %.100s from %.100s not allowed because <reason>` (allowed_user): the user is an
    // existing account, the host sshd's (an address, or its name with UseDNS).
    if let Some(rest) = msg.strip_prefix("User ")
        && let Some((head, reason)) = rest.rsplit_once(" not allowed because ")
    {
        let (user, host) = match from_host_port(head) {
            Some((user, host, None)) => (user, Some(host)),
            _ => (head, None),
        };
        return Auth::failure("ssh_user_not_allowed")
            .user(Some(user))
            .host(host)
            .reason(reason)
            .apply(ev);
    }
    // `ROOT LOGIN REFUSED FROM %.200s port %d` (auth_root_allowed; no port before 7.x).
    if let Some(rest) = msg.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        let (host, port) = match rest.split_once(" port ") {
            Some((h, p)) => (h, port(p)),
            None => (rest, None),
        };
        if host.contains(' ') {
            return false;
        }
        return Auth::failure("ssh_root_login_refused")
            .user(Some("root"))
            .host(Some(host))
            .port(port)
            .reason("root login refused")
            .apply(ev);
    }
    // `PAM: %s for %s%.100s from %.100s` (auth-pam.c): a PAM error text (none holds
    // ` for `), `illegal user ` for unknown users, the host sshd gave PAM as PAM_RHOST.
    if let Some(rest) = msg.strip_prefix("PAM: ")
        && let Some((text, rest)) = rest.split_once(" for ")
        && let Some((user, host, None)) = from_host_port(rest)
    {
        let (user, _) = strip_invalid(user);
        return Auth::failure("ssh_pam_failure")
            .user(Some(user))
            .host(Some(host))
            .reason(text)
            .apply(ev);
    }
    // `PAM %d more authentication failure%s; %s` (auth-pam.c) with pam_unix's key list.
    if let Some(rest) = msg.strip_prefix("PAM ")
        && let Some((_, kv)) = rest
            .split_once(" more authentication failures; ")
            .or_else(|| rest.split_once(" more authentication failure; "))
    {
        let kv = pam_kv(kv);
        return Auth::failure("ssh_login")
            .user(kv.user)
            .host(kv.rhost)
            .apply(ev);
    }
    // `Disconnecting <connection id>: Too many authentication failures` (7.x+), and
    // `Disconnecting: Too many authentication failures for %.100s` before.
    if let Some(rest) = msg.strip_prefix("Disconnecting") {
        const TOO_MANY: &str = "Too many authentication failures";
        if let Some(user) = rest.strip_prefix(&format!(": {TOO_MANY} for ")) {
            let (user, _) = strip_invalid(user);
            return Auth::failure("ssh_max_auth_attempts")
                .user(Some(user))
                .reason("too many authentication failures")
                .apply(ev);
        }
        if let Some(id) = rest
            .strip_prefix(' ')
            .and_then(|r| r.strip_suffix(&format!(": {TOO_MANY}")))
            && let Some((user, host, port)) = connection_id(id)
        {
            return Auth::failure("ssh_max_auth_attempts")
                .user(user)
                .host(Some(host))
                .port(port)
                .reason("too many authentication failures")
                .apply(ev);
        }
        return false;
    }
    for (prefix, action) in [
        ("Connection closed by ", "ssh_connection_closed"),
        ("Disconnected from ", "ssh_disconnect"),
        ("Connection reset by ", "ssh_connection_closed"),
    ] {
        let Some(rest) = msg.strip_prefix(prefix) else {
            continue;
        };
        let Some((user, host, port)) = connection_id(rest) else {
            return false;
        };
        let mut auth = Auth::new(action, if preauth { "failure" } else { "success" })
            .user(user)
            .host(Some(host))
            .port(port);
        auth.kind = if preauth { "info" } else { "end" };
        if !preauth && action == "ssh_disconnect" {
            auth.category = "session";
        }
        return auth.apply(ev);
    }
    // `Received disconnect from %s port %d:%u: %.400s` (7.x+), `... from %s: %u: %.400s`
    // before. The text is the client's: `Auth fail` (JSch, paramiko) and code 14 (no more
    // authentication methods) say that it gave up authenticating.
    if let Some(rest) = msg.strip_prefix("Received disconnect from ") {
        let Some((host, port, text)) = left_host_port(rest) else {
            return false;
        };
        let (code, text) = text.split_once(": ").unwrap_or((text, ""));
        let failed = code.trim() == "14" || text.contains("Auth fail");
        let mut auth = Auth::new("ssh_disconnect", if failed { "failure" } else { "unknown" })
            .host(Some(host))
            .port(port);
        auth.kind = "end";
        return auth.apply(ev);
    }
    // `Did not receive identification string from %s port %d` (sshd.c, up to 7.x).
    if let Some((head, host, port)) = from_host_port(msg)
        && head == "Did not receive identification string"
    {
        return Auth::failure("ssh_no_identification")
            .host(Some(host))
            .port(port)
            .reason("no identification string")
            .apply(ev);
    }
    // `Bad protocol version identification '%.100s' from %s port %d` (sshd.c, up to 7.x):
    // the quoted version is the client's, the address ends the line.
    if msg.starts_with("Bad protocol version identification ")
        && let Some((_, host, port)) = from_host_port(msg)
    {
        return Auth::failure("ssh_no_identification")
            .host(Some(host))
            .port(port)
            .reason("bad protocol version identification")
            .apply(ev);
    }
    // `banner exchange: Connection from %s port %d: %s` (8.x+, kex.c).
    if let Some(rest) = msg.strip_prefix("banner exchange: Connection from ")
        && let Some((host, port, text)) = left_host_port(rest)
    {
        return Auth::failure("ssh_no_identification")
            .host(Some(host))
            .port(port)
            .reason(text)
            .apply(ev);
    }
    // `Unable to negotiate with %s: no matching %s found. Their offer: %s` (kex.c; the
    // connection id has a port from 7.x on). The offer is the client's.
    if let Some(rest) = msg.strip_prefix("Unable to negotiate with ")
        && let Some((host, port, text)) = left_host_port(rest)
    {
        let reason = text.split(". Their offer:").next().unwrap_or(text);
        return Auth::failure("ssh_negotiation_failed")
            .host(Some(host))
            .port(port)
            .reason(reason)
            .apply(ev);
    }
    false
}

/// `Invalid user U from H[ port N]`: the address ends the line.
fn invalid_user(msg: &str, ev: &mut Json) -> bool {
    let Some((head, host, port)) = from_host_port(msg) else {
        return false;
    };
    let user = head
        .strip_prefix("Invalid user")
        .or_else(|| head.strip_prefix("Illegal user"))
        .map(|u| u.strip_prefix(' ').unwrap_or(u));
    let Some(user) = user else {
        return false;
    };
    Auth::failure("ssh_invalid_user")
        .user(Some(user))
        .host(Some(host))
        .port(port)
        .reason("invalid user")
        .apply(ev)
}

/// The methods sshd knows (`auth2.c` `authmethods`, SSH1's before 7.4). A client may send
/// any name, which sshd then logs as it came: only a known name ends at the first ` for `.
fn known_method(method: &str) -> bool {
    let base = method.split_once('/').map_or(method, |(m, _)| m);
    matches!(
        base,
        "none"
            | "password"
            | "publickey"
            | "hostbased"
            | "keyboard-interactive"
            | "gssapi-with-mic"
            | "gssapi-keyex"
            | "gssapi"
            | "rsa"
            | "rhosts"
            | "rhosts-rsa"
            | "challenge-response"
            | "tis"
            | "kerberos"
    )
}

/// `[invalid user |illegal user ]U`: U, and whether sshd said the user does not exist.
fn strip_invalid(user: &str) -> (&str, bool) {
    match user
        .strip_prefix("invalid user ")
        .or_else(|| user.strip_prefix("illegal user "))
    {
        Some(u) => (u, true),
        None => (user, false),
    }
}

/// Methods whose `auth_log` line never has info after the protocol: the address and port
/// end it.
fn without_info(method: &str) -> bool {
    let base = method.split_once('/').map_or(method, |(m, _)| m);
    matches!(
        base,
        "none"
            | "password"
            | "keyboard-interactive"
            | "gssapi-with-mic"
            | "gssapi-keyex"
            | "gssapi"
            | "challenge-response"
            | "tis"
    )
}

/// `Failed|Accepted <method> for [invalid user ]<user> from <ip> port <n> ssh2[: <info>]`
/// (`auth.c` `auth_log`). The info after `: ` is a key's type and fingerprint, a
/// certificate (whose key id is the client's), a hostbased client's user and host or an
/// SSH1 rhosts client's user (the client's); without info the address ends the line.
fn auth_log(rest: &str, outcome: &'static str, ev: &mut Json) -> bool {
    let Some((method, rest)) = rest.split_once(" for ") else {
        return false;
    };
    let tail = rest
        .strip_suffix(" ssh2")
        .or_else(|| rest.strip_suffix(" ssh1"))
        .unwrap_or(rest);
    let at_end = from_host_port(tail).filter(|(_, _, port)| port.is_some());
    let found = match at_end {
        // Nothing follows the address in these lines, so the end is sshd's.
        Some(end) if without_info(method) => Some(end),
        // Info the client wrote may end the line like an address would, and a user name
        // may hold `... port N ssh2: `: with both, either could be sshd's.
        Some(end) => with_info(rest).map_or(Some(end), |_| None),
        None => with_info(rest).and_then(|found| found),
    };
    let known = known_method(method);
    if known {
        event::set(ev, "ssh.method", method.into());
    }
    let mut auth = Auth::new("ssh_login", outcome);
    if let Some((user, host, port)) = found {
        let (user, invalid) = strip_invalid(user);
        if invalid {
            auth = auth.reason("invalid user");
        }
        // With a method sshd does not know, the user's start is not known either.
        auth = auth.user(known.then_some(user)).host(Some(host)).port(port);
    }
    auth.apply(ev)
}

type Anchor<'a> = (&'a str, &'a str, Option<u16>);

/// The ` from H port N[ ssh2]: ` places in `s`: `None` when there is none, `Some(None)`
/// when there are several (a user name before or a key id or hostbased name after may
/// hold the same text, and the address is then not known), else (user, host, port).
fn with_info(s: &str) -> Option<Option<Anchor<'_>>> {
    let mut found = s.match_indices(" from ").filter_map(|(i, _)| {
        let after = &s[i + " from ".len()..];
        let (host, after) = after.split_once(" port ")?;
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let (port, after) = after.split_at(digits);
        let after = after
            .strip_prefix(" ssh2")
            .or_else(|| after.strip_prefix(" ssh1"))
            .unwrap_or(after);
        (!host.contains(' ') && after.starts_with(": ")).then(|| (&s[..i], host, super::port(port)))
    });
    let first = found.next()?;
    Some(found.next().is_none().then_some(first))
}

/// `[authenticating |invalid ]user U H port N` or `H port N`, sshd's connection id
/// (`sshpkt_fmt_connection_id`), which always ends the text it is in: read from the right.
fn connection_id(s: &str) -> Option<(Option<&str>, &str, Option<u16>)> {
    let mut words = s.trim_end().rsplitn(4, ' ');
    let (n, port_kw, host) = (words.next()?, words.next()?, words.next()?);
    if port_kw != "port" {
        return None;
    }
    let user = match words.next() {
        None => None,
        Some(h) => Some(
            h.strip_prefix("authenticating user ")
                .or_else(|| h.strip_prefix("invalid user "))
                .or_else(|| h.strip_prefix("user "))?,
        ),
    };
    Some((user, host, port(n)))
}

/// `H port N:TEXT` / `H port N: TEXT` / `H: TEXT` at the start of `s`, sshd's own text
/// before anything the client sent: (H, N, TEXT).
fn left_host_port(s: &str) -> Option<(&str, Option<u16>, &str)> {
    if let Some((host, rest)) = s.split_once(' ')
        && let Some(rest) = rest.strip_prefix("port ")
    {
        let (n, text) = rest.split_once(':')?;
        return Some((host, Some(port(n)?), text.trim_start()));
    }
    let (host, text) = s.split_once(": ")?;
    (!host.contains(' ')).then_some((host, None, text))
}
