//! Authentication failures of other daemons: Dropbear, ProFTPD, vsftpd, Pure-FTPd, Postfix
//! and Dovecot. Each is read from the fixed parts of the daemon's format string (the source
//! file is named at each); user names are the client's and may hold anything.

use serde_json::Value as Json;

use super::{Auth, port};

/// Dropbear's `IP:PORT` (`svr-session.c`: `"%s:%s", host, port`), IPv6 without brackets.
fn dropbear_addr(s: &str) -> (&str, Option<u16>) {
    match s.rsplit_once(':') {
        Some((host, p)) if port(p).is_some() => (host, port(p)),
        _ => (s, None),
    }
}

/// `'user'` as Dropbear quotes it.
fn quoted(s: &str) -> Option<&str> {
    s.strip_prefix('\'')?.strip_suffix('\'')
}

/// Dropbear (`svr-authpasswd.c`, `svr-auth.c`, `common-session.c`).
pub(super) fn dropbear(msg: &str, ev: &mut Json) -> bool {
    // `Exit before auth from <%s>: (user '%s', %u fails): %s` (2013.59+), and
    // `Exit before auth from <%s>: %s` when no user was tried. The address comes first, in
    // angle brackets, before anything the client chose.
    if let Some(rest) = msg.strip_prefix("Exit before auth from <")
        && let Some((addr, rest)) = rest.split_once(">: ")
    {
        let (host, port) = dropbear_addr(addr);
        let tried = rest.strip_prefix("(user '").and_then(|r| {
            // `', N fails): ` is the fixed text after the user (the reason after it may
            // name the user again).
            let end = r.find(" fails): ")?;
            let (user, n) = r[..end].rsplit_once("', ")?;
            Some((user, n.parse::<u32>().ok()?))
        });
        let (user, fails) = tried.map_or((None, 0), |(u, n)| (Some(u), n));
        let failed = fails > 0 || rest.contains("Max auth tries reached");
        return Auth::new(
            "dropbear_exit_before_auth",
            if failed { "failure" } else { "unknown" },
        )
        .user(user)
        .host(Some(host))
        .port(port)
        .reason("exit before auth")
        .apply(ev);
    }
    // `... from %s`: the address ends the line (`svr_ses.addrstring`).
    let Some((head, addr)) = msg.rsplit_once(" from ") else {
        return false;
    };
    if addr.contains(' ') {
        return false;
    }
    let (host, port) = dropbear_addr(addr);
    let (action, outcome, user) = if let Some(u) = head
        .strip_prefix("Bad password attempt for ")
        .or_else(|| head.strip_prefix("Bad PAM password attempt for "))
    {
        ("dropbear_login", "failure", quoted(u))
    } else if let Some(rest) = head.strip_prefix("Login attempt for nonexistent user") {
        // Without a name before 2020.79, with it (quoted) after.
        let user = rest.strip_prefix(' ').and_then(quoted);
        ("dropbear_invalid_user", "failure", user)
    } else if let Some(u) = head.strip_prefix("Max auth tries reached - user ") {
        ("dropbear_max_auth_attempts", "failure", quoted(u))
    } else if let Some(u) = head.strip_prefix("Password auth succeeded for ") {
        ("dropbear_login", "success", quoted(u))
    } else if let Some(rest) = head.strip_prefix("Pubkey auth succeeded for '") {
        // `Pubkey auth succeeded for '%s' with %s key %s` (`svr-authpubkey.c`).
        (
            "dropbear_login",
            "success",
            rest.split_once("' with ").map(|(u, _)| u),
        )
    } else {
        return false;
    };
    let mut auth = Auth::new(action, outcome)
        .user(user)
        .host(Some(host))
        .port(port);
    if action == "dropbear_invalid_user" {
        auth = auth.reason("invalid user");
    }
    auth.apply(ev)
}

/// ProFTPD (`mod_auth.c`). Every message starts with the session's
/// `SERVER (REMOTE_NAME[REMOTE_IP]) - ` (`log.c`), the client's address before anything
/// the client sent.
pub(super) fn proftpd(msg: &str, ev: &mut Json) -> bool {
    let Some((session, text)) = msg.split_once(") - ") else {
        return false;
    };
    let Some(addr) = session
        .strip_suffix(']')
        .and_then(|s| s.rsplit_once('[').map(|(_, a)| a))
    else {
        return false;
    };
    // `USER %s: no such user found from %s [%s] to %s:%i`: what follows the user is the
    // server's (names, addresses), so the last occurrence is ProFTPD's.
    let (action, user, reason) = if let Some(rest) = text.strip_prefix("USER ")
        && let Some((user, _)) = rest.rsplit_once(": no such user found from ")
    {
        ("proftpd_invalid_user", Some(user), "no such user")
    } else if let Some(rest) = text.strip_prefix("USER ")
        && let Some((user, reason)) = rest.rsplit_once(" (Login failed): ")
    {
        // `USER %s (Login failed): %s`: `Incorrect password`, `Invalid shell`, ...
        ("proftpd_login", Some(user), reason)
    } else if text.starts_with("Maximum login attempts (") {
        // `Maximum login attempts (%u) exceeded, connection refused`
        (
            "proftpd_max_auth_attempts",
            None,
            "maximum login attempts exceeded",
        )
    } else if text.starts_with("SECURITY VIOLATION: Root login attempted") {
        ("proftpd_login", Some("root"), "root login attempted")
    } else {
        return false;
    };
    Auth::failure(action)
        .user(user)
        .host(Some(addr))
        .reason(reason)
        .apply(ev)
}

/// vsftpd (`logging.c`, `postlogin.c`): `[pid N] [USER] FAIL LOGIN: Client "IP"` (the pid
/// only with `log_ftp_protocol`-style file logs), `OK LOGIN` for a success. The user is the
/// client's and may hold `] FAIL LOGIN: Client "`; the address ends the line.
pub(super) fn vsftpd(msg: &str, ev: &mut Json) -> bool {
    let Some((head, addr)) = msg
        .trim_end()
        .strip_suffix('"')
        .and_then(|m| m.rsplit_once("Client \""))
    else {
        return false;
    };
    let (outcome, head) = if let Some(h) = head.strip_suffix("FAIL LOGIN: ") {
        ("failure", h)
    } else if let Some(h) = head.strip_suffix("OK LOGIN: ") {
        ("success", h)
    } else {
        return false;
    };
    let head = match head.strip_prefix("[pid ") {
        Some(r) => r.split_once("] ").map_or("", |(_, r)| r),
        None => head,
    };
    let user = head.strip_prefix('[').and_then(|h| h.strip_suffix("] "));
    Auth::new("vsftpd_login", outcome)
        .user(user)
        .host(Some(addr))
        .apply(ev)
}

/// Pure-FTPd (`log_unix.c`, `messages_en.h` `MSG_AUTH_FAILED_LOG`):
/// `(ACCOUNT@HOST) [WARNING] Authentication failed for user [USER]`, ACCOUNT `?` before a
/// login, HOST the client's address (or name when resolving is on).
pub(super) fn pure_ftpd(msg: &str, ev: &mut Json) -> bool {
    let Some((session, rest)) = msg.strip_prefix('(').and_then(|m| m.split_once(") [")) else {
        return false;
    };
    let Some((_, host)) = session.rsplit_once('@') else {
        return false;
    };
    let Some((_, text)) = rest.split_once("] ") else {
        return false;
    };
    let Some(user) = text
        .strip_prefix("Authentication failed for user [")
        .and_then(|u| u.strip_suffix(']'))
    else {
        return false;
    };
    Auth::failure("pure_ftpd_login")
        .user(Some(user))
        .host(Some(host))
        .apply(ev)
}

/// Postfix smtpd (`smtpd_sasl_glue.c`):
/// `warning: NAME[IP]: SASL MECH authentication failed: REPLY[, sasl_username=USER]`, with
/// `NAME[IP]:PORT` when `smtpd_client_port_logging` is on. The client's name and address
/// come first and are Postfix's (`unknown` when the name did not verify).
pub(super) fn postfix(msg: &str, ev: &mut Json) -> bool {
    let Some(rest) = msg.strip_prefix("warning: ") else {
        return false;
    };
    let Some((client, text)) = rest.split_once(": SASL ") else {
        return false;
    };
    let Some((_, addr)) = client.split_once('[') else {
        return false;
    };
    let (addr, port) = match addr.rsplit_once("]:") {
        Some((a, p)) => (a, super::port(p)),
        None => (addr.strip_suffix(']').unwrap_or(addr), None),
    };
    let Some((_, reply)) = text.split_once(" authentication failed") else {
        return false;
    };
    let user = reply.split_once(", sasl_username=").map(|(_, u)| u);
    Auth::failure("sasl_login")
        .user(user)
        .host(Some(addr))
        .port(port)
        .reason("SASL authentication failed")
        .apply(ev)
}

/// Dovecot: the login processes' `Disconnected (auth failed, N attempts in S secs):
/// user=<U>, method=M, rip=IP, lip=IP, ...` (`login-common/client-common.c`, the default
/// `login_log_format_elements`) and the auth process's `DRIVER(U,IP[,<SESSION>]): unknown
/// user` / `Password mismatch` / `pam_authenticate() failed: ...` (`auth/auth-request.c`).
/// `service` is the program name when Dovecot logs as `imap-login`, `auth` ...; with the
/// `dovecot` program the service starts the text.
pub(super) fn dovecot(service: Option<&str>, msg: &str, ev: &mut Json) -> bool {
    let (service, text) = match service {
        Some(s) => (s, msg),
        None => match msg.split_once(": ") {
            Some(pair) => pair,
            None => return false,
        },
    };
    let text = ["Info: ", "Warning: ", "Error: "]
        .iter()
        .find_map(|l| text.strip_prefix(l))
        .unwrap_or(text);
    if service.ends_with("-login") {
        return dovecot_login(text, ev);
    }
    if service == "auth" || service.starts_with("auth-worker") {
        return dovecot_auth(text, ev);
    }
    false
}

fn dovecot_login(text: &str, ev: &mut Json) -> bool {
    // What comes before the first `user=<` is Dovecot's own (the user follows it).
    let before_user = text.split("user=<").next().unwrap_or(text);
    if !before_user.contains("(auth failed") {
        return false;
    }
    // After the address come only Dovecot's fields (lip, mpid, TLS, session), so the last
    // `rip=` is Dovecot's whatever the user name holds.
    let Some((head, rest)) = text.rsplit_once("rip=") else {
        return false;
    };
    let addr = rest.split(',').next().unwrap_or(rest).trim();
    // `user=<U>, method=M, ` before it: the user ends at the `>` of that element.
    let head = head.strip_suffix(", ").unwrap_or(head);
    let head = match head.rsplit_once(", method=") {
        Some((h, m)) if !m.contains([' ', ',']) => h,
        _ => head,
    };
    let user = head
        .strip_suffix('>')
        .and_then(|h| h.split_once("user=<"))
        .map(|(_, u)| u);
    Auth::failure("dovecot_login")
        .user(user)
        .host(Some(addr))
        .reason("auth failed")
        .apply(ev)
}

fn dovecot_auth(text: &str, ev: &mut Json) -> bool {
    const FAILURES: [(&str, &str); 4] = [
        ("unknown user", "unknown user"),
        ("Password mismatch", "password mismatch"),
        ("pam_authenticate() failed", "pam_authenticate failed"),
        (
            "User not known to the underlying authentication module",
            "unknown user",
        ),
    ];
    let Some((_, args)) = text.split_once('(') else {
        return false;
    };
    // `U,IP[,<SESSION>]): MESSAGE`: the user may hold `): unknown user` too, so the closing
    // must be the only one followed by a failure message; with several, the line is a
    // failure whose user and address are not known.
    let mut found = args.match_indices("): ").filter_map(|(i, _)| {
        let message = &args[i + 3..];
        let reason = FAILURES
            .iter()
            .find(|(m, _)| message.starts_with(m))
            .map(|(_, r)| *r)?;
        let inner = &args[..i];
        let inner = match inner.rsplit_once(",<") {
            Some((x, s)) if s.ends_with('>') => x,
            _ => inner,
        };
        let (user, addr) = inner.rsplit_once(',').unwrap_or((inner, ""));
        Some((user, addr, reason))
    });
    let Some(first) = found.next() else {
        return false;
    };
    let (user, addr, reason) = match found.next() {
        None => first,
        Some(_) => ("", "", first.2),
    };
    Auth::failure("dovecot_auth")
        .user(Some(user).filter(|u| *u != "?"))
        .host(Some(addr).filter(|a| !a.is_empty()))
        .reason(reason)
        .apply(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropbear_addresses_split_at_the_last_colon() {
        assert_eq!(
            dropbear_addr("203.0.113.9:5678"),
            ("203.0.113.9", Some(5678))
        );
        assert_eq!(
            dropbear_addr("2001:db8::7:5678"),
            ("2001:db8::7", Some(5678))
        );
    }
}
