//! Authentication message formats with the slots an attacker writes (user names, remote
//! users, method names, client-sent texts) marked `{}`: shared by the property test in
//! `props.rs` and the `auth_injection` fuzz target. Whatever goes into the slots, the
//! event's `source.ip` is the format's address or absent and its `source.port` the format's
//! port or absent.

use serde_json::Value as Json;

/// The address and port the daemon wrote.
pub const ADDRESS: &str = "192.0.2.11";
pub const PORT: u64 = 20000;

/// (syslog program, message).
#[rustfmt::skip]
pub const TEMPLATES: &[(&str, &str)] = &[
    ("sshd", "Failed password for {} from 192.0.2.11 port 20000 ssh2"),
    ("sshd", "Failed password for invalid user {} from 192.0.2.11 port 20000 ssh2"),
    ("sshd", "Failed {} for {} from 192.0.2.11 port 20000 ssh2"),
    ("sshd", "Accepted publickey for {} from 192.0.2.11 port 20000 ssh2: RSA SHA256:q1w2e3"),
    ("sshd", "Failed publickey for {} from 192.0.2.11 port 20000 ssh2: ECDSA-CERT SHA256:q1 ID {} (serial 3) CA ED25519 SHA256:w2"),
    ("sshd", "Failed hostbased for {} from 192.0.2.11 port 20000 ssh2: client user \"{}\", client host \"{}\""),
    ("sshd", "Failed rhosts-rsa for {} from 192.0.2.11 port 20000 ssh1: ruser {}"),
    ("sshd", "Invalid user {} from 192.0.2.11 port 20000"),
    ("sshd", "Invalid user {} from 192.0.2.11"),
    ("sshd", "error: maximum authentication attempts exceeded for invalid user {} from 192.0.2.11 port 20000 ssh2 [preauth]"),
    ("sshd", "Connection closed by invalid user {} 192.0.2.11 port 20000 [preauth]"),
    ("sshd", "Disconnecting authenticating user {} 192.0.2.11 port 20000: Too many authentication failures [preauth]"),
    ("sshd", "Received disconnect from 192.0.2.11 port 20000:11: {} [preauth]"),
    ("sshd", "Unable to negotiate with 192.0.2.11 port 20000: no matching cipher found. Their offer: {} [preauth]"),
    ("sshd", "Bad protocol version identification '{}' from 192.0.2.11 port 20000"),
    ("sshd", "error: PAM: Authentication failure for illegal user {} from 192.0.2.11"),
    ("sshd", "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user={}"),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user={}"),
    ("dovecot", "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser={} rhost=192.0.2.11  user={}"),
    ("dropbear", "Bad password attempt for '{}' from 192.0.2.11:20000"),
    ("dropbear", "Login attempt for nonexistent user '{}' from 192.0.2.11:20000"),
    ("dropbear", "Exit before auth from <192.0.2.11:20000>: (user '{}', 3 fails): Max auth tries reached - user '{}'"),
    ("proftpd", "ftp.example.com (192.0.2.11[192.0.2.11]) - USER {}: no such user found from 192.0.2.11 [192.0.2.11] to 10.0.0.1:21"),
    ("proftpd", "ftp.example.com (192.0.2.11[192.0.2.11]) - USER {} (Login failed): Incorrect password"),
    ("vsftpd", "[{}] FAIL LOGIN: Client \"192.0.2.11\""),
    ("pure-ftpd", "(?@192.0.2.11) [WARNING] Authentication failed for user [{}]"),
    ("postfix/smtpd", "warning: unknown[192.0.2.11]: SASL LOGIN authentication failed: authentication failure, sasl_username={}"),
    ("dovecot", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{}>, method=PLAIN, rip=192.0.2.11, lip=10.0.0.1, TLS, session=<Kx1yZ2>"),
    ("dovecot", "auth: passwd-file({},192.0.2.11,<Kx1yZ2>): unknown user"),
    ("sudo", "{} : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/{} ; USER=root ; COMMAND={}"),
    ("su", "FAILED SU (to root) {} on pts/0"),
];

/// Text imitating the fixed parts of the formats, with another address and port.
pub const FRAGMENTS: &[&str] = &[
    " from 6.6.6.6 port 6666 ssh2",
    " from 6.6.6.6 port 6666",
    " from 6.6.6.6",
    " 6.6.6.6 port 6666",
    " port 6666",
    " ssh2",
    ": ",
    " ssh2: RSA SHA256:x",
    " for ",
    "invalid user ",
    " [preauth]",
    ": Too many authentication failures",
    " rhost=6.6.6.6",
    "  user=",
    " ruser=",
    " rhost=",
    "\"",
    "'",
    "[",
    "]",
    "<",
    ">",
    "(",
    ")",
    ",",
    "#012",
    "\\n",
    "6.6.6.6:6666",
    "<6.6.6.6:6666>: ",
    "', 1 fails): ",
    ", rip=6.6.6.6, lip=10.0.0.1",
    "user=<",
    ">, method=PLAIN, ",
    ",6.6.6.6): unknown user",
    "unknown[6.6.6.6]: SASL ",
    "(?@6.6.6.6) [WARNING] ",
    "FAIL LOGIN: Client \"6.6.6.6\"",
    "] ",
    " (Login failed): ",
    ": no such user found from ",
    " (6.6.6.6[6.6.6.6]) - ",
    "::ffff:6.6.6.6",
    "[2001:db8::66]",
    "2001:db8::66",
    "UNKNOWN",
    " ; USER=",
    " ; TTY=",
];

/// The template's line with `slots[i]` in the i-th `{}` (an empty text where there are fewer).
pub fn line(program: &str, template: &str, slots: &[String]) -> String {
    let mut out = format!("Nov 23 10:00:01 h {program}[1]: ");
    let mut parts = template.split("{}");
    out.push_str(parts.next().unwrap_or(""));
    for (i, part) in parts.enumerate() {
        out.push_str(slots.get(i).map_or("", String::as_str));
        out.push_str(part);
    }
    out
}

/// Why the event's address or port is not the format's, if it is not (the formats write
/// an address, so a host name would be the attacker's too).
pub fn check(event: &Json) -> Result<(), String> {
    let ip = &event["source"]["ip"];
    if !(ip.is_null() || ip == ADDRESS) {
        return Err(format!("source.ip {ip}"));
    }
    let port = &event["source"]["port"];
    if !(port.is_null() || port == PORT) {
        return Err(format!("source.port {port}"));
    }
    let domain = &event["source"]["domain"];
    if !domain.is_null() {
        return Err(format!("source.domain {domain}"));
    }
    Ok(())
}
