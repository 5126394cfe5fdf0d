//! Authentication lines as the daemons write them: each format's failures become
//! `event.outcome: failure`, `event.category: [authentication]` with the client's address,
//! port and user; attacker-written parts (user names, remote users, client-sent texts)
//! never supply the address, the port or the user.

use serde_json::{Value as Json, json};
use vigil_parse::{Format, LineContext, parse_line};

fn parse(line: &str) -> Json {
    let ctx = LineContext::new("2026-11-23T12:00:00Z".parse().unwrap()).with_format(Format::Auth);
    parse_line(line, &ctx)
}

fn field<'a>(e: &'a Json, path: &str) -> Option<&'a str> {
    vigil_core::event::get(e, path).and_then(Json::as_str)
}

/// (line, action, source.ip, source.port, user.name) for lines that are failures.
#[rustfmt::skip]
type Failure = (&'static str, &'static str, Option<&'static str>, Option<u16>, Option<&'static str>);

fn check_failures(cases: &[Failure]) {
    let mut wrong = Vec::new();
    for &(line, action, ip, port, user) in cases {
        let e = parse(line);
        let got = (
            field(&e, "event.action"),
            field(&e, "event.outcome"),
            vigil_core::event::get(&e, "event.category").cloned(),
            field(&e, "source.ip"),
            vigil_core::event::get(&e, "source.port").and_then(Json::as_u64),
            field(&e, "user.name"),
            field(&e, "event.dataset"),
        );
        let want = (
            Some(action),
            Some("failure"),
            Some(json!(["authentication"])),
            ip,
            port.map(u64::from),
            user,
            Some("auth"),
        );
        if got != want {
            wrong.push(format!("{line}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
#[rustfmt::skip] // one line per case
fn openssh_failures_of_versions_4_to_9() {
    // auth.c auth_log: "%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s"
    // (authmsg, method, "/" submethod, "invalid user ", user, ip, port, ": " info).
    check_failures(&[
        ("Nov 23 10:00:01 h sshd[1]: Failed password for root from 192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: Failed password for invalid user admin from 192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("admin")),
        ("Nov 23 10:00:01 h sshd[1]: Failed none for invalid user guest from 2001:db8::7 port 20000 ssh2", "ssh_login", Some("2001:db8::7"), Some(20000), Some("guest")),
        ("Nov 23 10:00:01 h sshd[1]: Failed keyboard-interactive/pam for invalid user pi from 192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("pi")),
        ("Nov 23 10:00:01 h sshd[1]: Failed publickey for git from 192.0.2.11 port 20000 ssh2: RSA SHA256:q1w2e3r4t5y6", "ssh_login", Some("192.0.2.11"), Some(20000), Some("git")),
        ("Nov 23 10:00:01 h sshd[1]: Failed publickey for git from 192.0.2.11 port 20000 ssh2: ED25519-CERT SHA256:abc ID deploy (serial 7) CA ED25519 SHA256:def", "ssh_login", Some("192.0.2.11"), Some(20000), Some("git")),
        ("Nov 23 10:00:01 h sshd[1]: Failed hostbased for bob from 192.0.2.11 port 20000 ssh2: client user \"bob\", client host \"ws1\"", "ssh_login", Some("192.0.2.11"), Some(20000), Some("bob")),
        // OpenSSH 4.x-6.x on dual-stack sockets, and SSH1.
        ("Nov 23 10:00:01 h sshd[1]: Failed password for root from ::ffff:192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: Failed password for illegal user test from 192.0.2.11 port 20000 ssh1", "ssh_login", Some("192.0.2.11"), Some(20000), Some("test")),
        // auth.c getpwnamallow: "Invalid user %.100s from %.100s port %d"; before 7.x
        // without the port, before 3.9 "Illegal user".
        ("Nov 23 10:00:01 h sshd[1]: Invalid user oracle from 192.0.2.11 port 20000", "ssh_invalid_user", Some("192.0.2.11"), Some(20000), Some("oracle")),
        ("Nov 23 10:00:01 h sshd[1]: Invalid user oracle from 192.0.2.11", "ssh_invalid_user", Some("192.0.2.11"), None, Some("oracle")),
        ("Nov 23 10:00:01 h sshd[1]: Illegal user oracle from 192.0.2.11", "ssh_invalid_user", Some("192.0.2.11"), None, Some("oracle")),
        // auth2.c (5.x-7.x): "input_userauth_request: invalid user %s"
        ("Nov 23 10:00:01 h sshd[1]: input_userauth_request: invalid user ftp [preauth]", "ssh_invalid_user", None, None, Some("ftp")),
        // auth-pam.c: "PAM: %s for %s%.100s from %.100s"
        ("Nov 23 10:00:01 h sshd[1]: error: PAM: Authentication failure for root from 192.0.2.11", "ssh_pam_failure", Some("192.0.2.11"), None, Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: error: PAM: Authentication failure for illegal user admin from 192.0.2.11", "ssh_pam_failure", Some("192.0.2.11"), None, Some("admin")),
        // auth-pam.c: "PAM %d more authentication failure%s; %s"
        ("Nov 23 10:00:01 h sshd[1]: PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root", "ssh_login", Some("192.0.2.11"), None, Some("root")),
        // auth.c auth_root_allowed: "ROOT LOGIN REFUSED FROM %.200s port %d"
        ("Nov 23 10:00:01 h sshd[1]: ROOT LOGIN REFUSED FROM 192.0.2.11 port 20000", "ssh_root_login_refused", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: ROOT LOGIN REFUSED FROM 192.0.2.11", "ssh_root_login_refused", Some("192.0.2.11"), None, Some("root")),
        // auth.c allowed_user: "User %.100s from %.100s not allowed because ..."
        ("Nov 23 10:00:01 h sshd[1]: User root from 192.0.2.11 not allowed because not listed in AllowUsers", "ssh_user_not_allowed", Some("192.0.2.11"), None, Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: User bob from 192.0.2.11 not allowed because listed in DenyUsers", "ssh_user_not_allowed", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h sshd[1]: User bob from 192.0.2.11 not allowed because none of user's groups are listed in AllowGroups", "ssh_user_not_allowed", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h sshd[1]: User bob from 192.0.2.11 not allowed because a group is listed in DenyGroups", "ssh_user_not_allowed", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h sshd[1]: User bob from 192.0.2.11 not allowed because not in any group", "ssh_user_not_allowed", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h sshd[1]: User bob not allowed because account is locked", "ssh_user_not_allowed", None, None, Some("bob")),
        // auth.c auth_maxtries_exceeded
        ("Nov 23 10:00:01 h sshd[1]: error: maximum authentication attempts exceeded for invalid user test from 192.0.2.11 port 20000 ssh2 [preauth]", "ssh_max_auth_attempts", Some("192.0.2.11"), Some(20000), Some("test")),
        // packet.c ssh_packet_disconnect: "Disconnecting %s: %.100s" with the connection id
        // (7.x+), "Disconnecting: Too many authentication failures for %.100s" before.
        ("Nov 23 10:00:01 h sshd[1]: Disconnecting invalid user admin 192.0.2.11 port 20000: Too many authentication failures [preauth]", "ssh_max_auth_attempts", Some("192.0.2.11"), Some(20000), Some("admin")),
        ("Nov 23 10:00:01 h sshd[1]: Disconnecting authenticating user root 192.0.2.11 port 20000: Too many authentication failures [preauth]", "ssh_max_auth_attempts", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: Disconnecting: Too many authentication failures for root [preauth]", "ssh_max_auth_attempts", None, None, Some("root")),
        // packet.c: "Connection closed by %s" with the connection id, in preauth.
        ("Nov 23 10:00:01 h sshd[1]: Connection closed by invalid user admin 192.0.2.11 port 20000 [preauth]", "ssh_connection_closed", Some("192.0.2.11"), Some(20000), Some("admin")),
        ("Nov 23 10:00:01 h sshd[1]: Connection closed by authenticating user root 192.0.2.11 port 20000 [preauth]", "ssh_connection_closed", Some("192.0.2.11"), Some(20000), Some("root")),
        // packet.c: "Received disconnect from %s port %d:%u: %.400s", the text the client's.
        ("Nov 23 10:00:01 h sshd[1]: Received disconnect from 192.0.2.11 port 20000:11: com.jcraft.jsch.JSchException: Auth fail [preauth]", "ssh_disconnect", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h sshd[1]: Received disconnect from 192.0.2.11 port 20000:14: No supported authentication methods available [preauth]", "ssh_disconnect", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h sshd[1]: Received disconnect from 192.0.2.11: 11: Auth fail", "ssh_disconnect", Some("192.0.2.11"), None, None),
        // sshd.c: "Did not receive identification string from %s port %d"; kex.c (8.x+)
        // "banner exchange: Connection from %s port %d: %s".
        ("Nov 23 10:00:01 h sshd[1]: Did not receive identification string from 192.0.2.11 port 20000", "ssh_no_identification", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h sshd[1]: Did not receive identification string from 192.0.2.11", "ssh_no_identification", Some("192.0.2.11"), None, None),
        ("Nov 23 10:00:01 h sshd[1]: banner exchange: Connection from 192.0.2.11 port 20000: invalid format", "ssh_no_identification", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h sshd[1]: Bad protocol version identification 'GET / HTTP/1.1' from 192.0.2.11 port 20000", "ssh_no_identification", Some("192.0.2.11"), Some(20000), None),
        // kex.c: "Unable to negotiate with %s: no matching %s found. Their offer: %s"
        ("Nov 23 10:00:01 h sshd[1]: Unable to negotiate with 192.0.2.11 port 20000: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]", "ssh_negotiation_failed", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h sshd[1]: fatal: Unable to negotiate with 192.0.2.11: no matching cipher found. Their offer: des [preauth]", "ssh_negotiation_failed", Some("192.0.2.11"), None, None),
        // Solaris/illumos syslogd's message ids, and OpenSSH 9.8's sshd-session.
        ("Nov 23 10:00:01 h sshd[1]: [ID 800047 auth.info] Failed keyboard-interactive for root from 192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: [ID 800047 auth.notice] Failed none for invalid user x from 192.0.2.11 port 20000 ssh2", "ssh_login", Some("192.0.2.11"), Some(20000), Some("x")),
        ("Nov 23 10:00:01 h sshd-session[1]: Failed password for root from [2001:db8::7] port 20000 ssh2", "ssh_login", Some("2001:db8::7"), Some(20000), Some("root")),
    ]);
}

#[test]
#[rustfmt::skip] // one line per case
fn pam_and_sudo_and_su_failures() {
    // pam_unix support.c _unix_verify_password: "authentication failure; logname=%s uid=%d
    // euid=%d tty=%s ruser=%s rhost=%s %s%s" (" user=" USER when known).
    check_failures(&[
        ("Nov 23 10:00:01 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root", "pam_authentication_failure", Some("192.0.2.11"), None, Some("root")),
        ("Nov 23 10:00:01 h vsftpd[1]: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=bob rhost=::ffff:192.0.2.11", "pam_authentication_failure", Some("192.0.2.11"), None, None),
        ("Nov 23 10:00:01 h proftpd[1]: pam_unix(proftpd:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/ftpd1 ruser=bob rhost=192.0.2.11  user=bob", "pam_authentication_failure", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h auth[1]: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=bob rhost=2001:db8::7  user=bob", "pam_authentication_failure", Some("2001:db8::7"), None, Some("bob")),
        ("Nov 23 10:00:01 h login[1]: pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=/dev/tty1 ruser= rhost=  user=root", "pam_authentication_failure", None, None, Some("root")),
        ("Nov 23 10:00:01 h sshd[1]: pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11 user=alice", "pam_authentication_failure", Some("192.0.2.11"), None, Some("alice")),
        ("Nov 23 10:00:01 h sudo: pam_unix(sudo:auth): authentication failure; logname=carol uid=1001 euid=0 tty=/dev/pts/0 ruser=carol rhost=  user=carol", "pam_authentication_failure", None, None, Some("carol")),
        // sudo logging.c: "%s : %s ; TTY=%s ; PWD=%s ; USER=%s ; COMMAND=%s"
        ("Nov 23 10:00:01 h sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash", "sudo", None, None, Some("alice")),
        // util-linux su: "FAILED SU (to %s) %s on %s"; shadow su: "FAILED su for %s by %s"
        ("Nov 23 10:00:01 h su[1]: FAILED SU (to root) alice on pts/0", "su", None, None, Some("alice")),
        ("Nov 23 10:00:01 h su[1]: FAILED su for root by alice", "su", None, None, Some("alice")),
    ]);
}

#[test]
#[rustfmt::skip] // one line per case
fn dropbear_ftp_and_mail_failures() {
    check_failures(&[
        // dropbear svr-authpasswd.c: "Bad password attempt for '%s' from %s" (IP:PORT)
        ("Nov 23 10:00:01 h dropbear[1]: Bad password attempt for 'root' from 192.0.2.11:20000", "dropbear_login", Some("192.0.2.11"), Some(20000), Some("root")),
        ("Nov 23 10:00:01 h dropbear[1]: Bad password attempt for 'root' from 2001:db8::7:20000", "dropbear_login", Some("2001:db8::7"), Some(20000), Some("root")),
        // svr-auth.c: "Login attempt for nonexistent user from %s" (and with the name)
        ("Nov 23 10:00:01 h dropbear[1]: Login attempt for nonexistent user from 192.0.2.11:20000", "dropbear_invalid_user", Some("192.0.2.11"), Some(20000), None),
        ("Nov 23 10:00:01 h dropbear[1]: Login attempt for nonexistent user 'admin' from 192.0.2.11:20000", "dropbear_invalid_user", Some("192.0.2.11"), Some(20000), Some("admin")),
        ("Nov 23 10:00:01 h dropbear[1]: Max auth tries reached - user 'root' from 192.0.2.11:20000", "dropbear_max_auth_attempts", Some("192.0.2.11"), Some(20000), Some("root")),
        // common-session.c: "Exit before auth%s: (user '%s', %u fails): %s", %s "from <%s>"
        ("Nov 23 10:00:01 h dropbear[1]: Exit before auth from <192.0.2.11:20000>: (user 'root', 10 fails): Max auth tries reached - user 'root'", "dropbear_exit_before_auth", Some("192.0.2.11"), Some(20000), Some("root")),
        // proftpd mod_auth.c, after log.c's "%s (%s[%s]) - " session prefix
        ("Nov 23 10:00:01 h proftpd[1]: ftp.example.com (scanner.example.net[192.0.2.11]) - USER admin: no such user found from scanner.example.net [192.0.2.11] to 10.0.0.1:21", "proftpd_invalid_user", Some("192.0.2.11"), None, Some("admin")),
        ("Nov 23 10:00:01 h proftpd[1]: ftp.example.com (192.0.2.11[192.0.2.11]) - USER bob (Login failed): Incorrect password", "proftpd_login", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h proftpd[1]: ftp.example.com (::ffff:192.0.2.11[::ffff:192.0.2.11]) - Maximum login attempts (3) exceeded, connection refused", "proftpd_max_auth_attempts", Some("192.0.2.11"), None, None),
        // vsftpd logging.c/postlogin.c: "FAIL LOGIN: Client \"%s\"", "[user]" before it
        ("Nov 23 10:00:01 h vsftpd[1]: [bob] FAIL LOGIN: Client \"192.0.2.11\"", "vsftpd_login", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h vsftpd[1]: FAIL LOGIN: Client \"::ffff:192.0.2.11\"", "vsftpd_login", Some("192.0.2.11"), None, None),
        ("Nov 23 10:00:01 h vsftpd[1]: [pid 4242] [bob] FAIL LOGIN: Client \"192.0.2.11\"", "vsftpd_login", Some("192.0.2.11"), None, Some("bob")),
        // pure-ftpd log_unix.c "(%s@%s) [%s] " + MSG_AUTH_FAILED_LOG
        ("Nov 23 10:00:01 h pure-ftpd: (?@192.0.2.11) [WARNING] Authentication failed for user [admin]", "pure_ftpd_login", Some("192.0.2.11"), None, Some("admin")),
        ("Nov 23 10:00:01 h pure-ftpd: (?@2001:db8::7) [WARNING] Authentication failed for user [admin]", "pure_ftpd_login", Some("2001:db8::7"), None, Some("admin")),
        // postfix smtpd_sasl_glue.c: "%s: SASL %s authentication failed: %s" (name[addr])
        ("Nov 23 10:00:01 h postfix/smtpd[1]: warning: unknown[192.0.2.11]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "sasl_login", Some("192.0.2.11"), None, None),
        ("Nov 23 10:00:01 h postfix/submission/smtpd[1]: warning: mail.example.net[2001:db8::7]: SASL PLAIN authentication failed: authentication failure, sasl_username=bob@example.com", "sasl_login", Some("2001:db8::7"), None, Some("bob@example.com")),
        ("Nov 23 10:00:01 h postfix/smtpd[1]: warning: unknown[192.0.2.11]:20000: SASL LOGIN authentication failed: authentication failure", "sasl_login", Some("192.0.2.11"), Some(20000), None),
        // dovecot login-common client-common.c (login_log_format_elements) and auth-request.c
        ("Nov 23 10:00:01 h dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN, rip=192.0.2.11, lip=10.0.0.1, TLS, session=<Kx1yZ2>", "dovecot_login", Some("192.0.2.11"), None, Some("bob")),
        ("Nov 23 10:00:01 h dovecot: pop3-login: Aborted login (auth failed, 3 attempts in 15 secs): user=<admin>, method=LOGIN, rip=::ffff:192.0.2.11, lip=::ffff:10.0.0.1, session=<Kx1yZ2>", "dovecot_login", Some("192.0.2.11"), None, Some("admin")),
        ("Nov 23 10:00:01 h dovecot: auth: passwd-file(admin,192.0.2.11,<Kx1yZ2>): unknown user", "dovecot_auth", Some("192.0.2.11"), None, Some("admin")),
        ("Nov 23 10:00:01 h dovecot: auth-worker(4242): pam(bob,192.0.2.11): pam_authenticate() failed: Authentication failure (password mismatch?)", "dovecot_auth", Some("192.0.2.11"), None, Some("bob")),
    ]);
}

/// (program, message, user.name expected): attacker text in user names, remote users and
/// client-sent text imitating the format's own address part. The format's address is
/// 192.0.2.11 port 20000; 6.6.6.6 and port 6666 are the attacker's.
#[test]
#[rustfmt::skip] // one line per case
fn attacker_text_never_becomes_the_address_port_or_another_user() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        // The reproductions.
        ("sshd", "Failed password for root from 192.0.2.11 port 20000 ssh2: ruser from 6.6.6.6", Some("root")),
        ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root rhost=6.6.6.6", Some("root rhost=6.6.6.6")),
        // OpenSSH user names (any bytes but control characters, which sshd escapes).
        ("sshd", "Failed password for x from 6.6.6.6 port 6666 ssh2 from 192.0.2.11 port 20000 ssh2", Some("x from 6.6.6.6 port 6666 ssh2")),
        ("sshd", "Failed password for invalid user a from 6.6.6.6 port 6666 ssh2: b from 192.0.2.11 port 20000 ssh2", Some("a from 6.6.6.6 port 6666 ssh2: b")),
        ("sshd", "Failed publickey for a from 6.6.6.6 port 6666 ssh2: b from 192.0.2.11 port 20000 ssh2: RSA SHA256:x", None),
        ("sshd", "Failed hostbased for bob from 192.0.2.11 port 20000 ssh2: client user \"x from 6.6.6.6 port 6666 ssh2\", client host \"y from 6.6.6.6 port 6666 ssh2: z\"", None),
        ("sshd", "Failed x for y from 6.6.6.6 port 6666 ssh2 for root from 192.0.2.11 port 20000 ssh2", None),
        // SSH1 rhosts info ends with the client's user: it may end like an address.
        ("sshd", "Failed rhosts-rsa for root from 192.0.2.11 port 20000 ssh1: ruser x from 6.6.6.6 port 6666", None),
        ("sshd", "Failed password for root\\nNov 23 10:00:00 h sshd[2]: Failed password for root from 6.6.6.6 port 6666 ssh2 from 192.0.2.11 port 20000 ssh2", Some("root\\nNov 23 10:00:00 h sshd[2]: Failed password for root from 6.6.6.6 port 6666 ssh2")),
        ("sshd", "Failed password for \"root from 6.6.6.6 port 6666\" from 192.0.2.11 port 20000 ssh2", Some("\"root from 6.6.6.6 port 6666\"")),
        ("sshd", "Invalid user x from 6.6.6.6 port 6666 from 192.0.2.11 port 20000", Some("x from 6.6.6.6 port 6666")),
        ("sshd", "Invalid user x from 6.6.6.6 from 192.0.2.11", Some("x from 6.6.6.6")),
        ("sshd", "Connection closed by invalid user x 6.6.6.6 port 6666 192.0.2.11 port 20000 [preauth]", Some("x 6.6.6.6 port 6666")),
        ("sshd", "Disconnecting invalid user x 6.6.6.6 port 6666: Too many authentication failures 192.0.2.11 port 20000: Too many authentication failures [preauth]", Some("x 6.6.6.6 port 6666: Too many authentication failures")),
        ("sshd", "error: maximum authentication attempts exceeded for invalid user x from 6.6.6.6 port 6666 ssh2 from 192.0.2.11 port 20000 ssh2 [preauth]", Some("x from 6.6.6.6 port 6666 ssh2")),
        ("sshd", "error: PAM: Authentication failure for illegal user x from 6.6.6.6 from 192.0.2.11", Some("x from 6.6.6.6")),
        ("sshd", "Received disconnect from 192.0.2.11 port 20000:11: from 6.6.6.6 port 6666 Auth fail [preauth]", None),
        ("sshd", "Unable to negotiate with 192.0.2.11 port 20000: no matching cipher found. Their offer: 6.6.6.6 port 6666: x [preauth]", None),
        ("sshd", "Bad protocol version identification 'x from 6.6.6.6 port 6666' from 192.0.2.11 port 20000", None),
        // rsyslog escapes a newline in a PAM user name as #012.
        ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=x#012Nov 23 10:00:00 h sshd[2]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=6.6.6.6  user=root", Some("x#012Nov 23 10:00:00 h sshd[2]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=6.6.6.6  user=root")),
        // A remote user (dovecot, vsftpd, rsh) imitating the tail: two places fit, no address.
        ("dovecot", "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=x rhost=6.6.6.6  user=y rhost=192.0.2.11  user=bob", None),
        ("sshd", "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root rhost=6.6.6.6", Some("root rhost=6.6.6.6")),
        // Dropbear quotes the user; the address ends the line.
        ("dropbear", "Bad password attempt for 'x' from 6.6.6.6:6666' from 192.0.2.11:20000", Some("x' from 6.6.6.6:6666")),
        ("dropbear", "Login attempt for nonexistent user 'x from 6.6.6.6:6666' from 192.0.2.11:20000", Some("x from 6.6.6.6:6666")),
        ("dropbear", "Exit before auth from <192.0.2.11:20000>: (user 'x from <6.6.6.6:6666>', 1 fails): Exited normally", Some("x from <6.6.6.6:6666>")),
        // ProFTPD: the session prefix comes first.
        ("proftpd", "ftp.example.com (192.0.2.11[192.0.2.11]) - USER x (6.6.6.6[6.6.6.6]) - : no such user found from 192.0.2.11 [192.0.2.11] to 10.0.0.1:21", Some("x (6.6.6.6[6.6.6.6]) - ")),
        ("proftpd", "ftp.example.com (192.0.2.11[192.0.2.11]) - USER \"x [6.6.6.6]\" (Login failed): Incorrect password", Some("\"x [6.6.6.6]\"")),
        // vsftpd: the user in brackets may imitate the whole line.
        ("vsftpd", "[x] FAIL LOGIN: Client \"6.6.6.6\"] FAIL LOGIN: Client \"192.0.2.11\"", Some("x] FAIL LOGIN: Client \"6.6.6.6\"")),
        // Pure-FTPd: the address is in the session prefix.
        ("pure-ftpd", "(?@192.0.2.11) [WARNING] Authentication failed for user [x (?@6.6.6.6) [WARNING]]", Some("x (?@6.6.6.6) [WARNING]")),
        // Postfix: the client comes first; the SASL user last.
        ("postfix/smtpd", "warning: unknown[192.0.2.11]: SASL LOGIN authentication failed: authentication failure, sasl_username=x unknown[6.6.6.6]: SASL", Some("x unknown[6.6.6.6]: SASL")),
        // Dovecot: Dovecot's own fields follow the address.
        ("dovecot", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=6.6.6.6, lip=1.1.1.1, y>, method=PLAIN, rip=192.0.2.11, lip=10.0.0.1, session=<a>", Some("x>, method=PLAIN, rip=6.6.6.6, lip=1.1.1.1, y")),
        ("dovecot", "auth: passwd-file(x,6.6.6.6,192.0.2.11,<a>): unknown user", Some("x,6.6.6.6")),
        ("dovecot", "auth: passwd-file(x,6.6.6.6): unknown user (y,192.0.2.11): unknown user", None),
    ];
    let mut wrong = Vec::new();
    for &(program, msg, user) in cases {
        let line = format!("Nov 23 10:00:01 h {program}[1]: {msg}");
        let e = parse(&line);
        let ip = field(&e, "source.ip");
        let port = vigil_core::event::get(&e, "source.port").and_then(Json::as_u64);
        let ok = matches!(ip, None | Some("192.0.2.11"))
            && matches!(port, None | Some(20000))
            && field(&e, "user.name") == user
            && field(&e, "event.outcome").is_some();
        if !ok {
            wrong.push(format!(
                "{line}\n   source.ip {ip:?} source.port {port:?} user.name {:?} (want {user:?}) outcome {:?}",
                field(&e, "user.name"),
                field(&e, "event.outcome")
            ));
        }
    }
    assert!(wrong.is_empty(), "{} of {}:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

#[test]
#[rustfmt::skip] // one line per case
fn the_format_address_is_still_found_when_attacker_text_is_plain() {
    // The injection table allows an absent address; these, from the same formats with
    // plain attacker text, must have it.
    for (program, msg) in [
        ("sshd", "Failed password for x from 6.6.6.6 port 6666 ssh2 from 192.0.2.11 port 20000 ssh2"),
        ("sshd", "Failed password for root from 192.0.2.11 port 20000 ssh2"),
        ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.11  user=root rhost=6.6.6.6"),
        ("vsftpd", "[x] FAIL LOGIN: Client \"6.6.6.6\"] FAIL LOGIN: Client \"192.0.2.11\""),
        ("dovecot", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=6.6.6.6, lip=1.1.1.1, y>, method=PLAIN, rip=192.0.2.11, lip=10.0.0.1, session=<a>"),
    ] {
        let e = parse(&format!("Nov 23 10:00:01 h {program}[1]: {msg}"));
        assert_eq!(field(&e, "source.ip"), Some("192.0.2.11"), "{msg}");
    }
}

#[test]
fn unknown_and_placeholder_hosts_are_not_addresses() {
    let e = parse("Nov 23 10:00:01 h sshd[1]: Connection closed by UNKNOWN port 65535 [preauth]");
    assert_eq!(field(&e, "source.ip"), None);
    assert_eq!(field(&e, "source.domain"), None);
    let e = parse(
        "Nov 23 10:00:01 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example.net",
    );
    assert_eq!(field(&e, "source.ip"), None);
    assert_eq!(field(&e, "source.domain"), Some("scanner.example.net"));
    let e = parse(
        "Nov 23 10:00:01 h sshd[1]: User root from gw.example.net not allowed because not listed in AllowUsers",
    );
    assert_eq!(field(&e, "source.domain"), Some("gw.example.net"));
    assert_eq!(field(&e, "source.ip"), None);
    // A successful dropbear or vsftpd login is a success.
    let e = parse("Nov 23 10:00:01 h vsftpd[1]: [bob] OK LOGIN: Client \"192.0.2.11\"");
    assert_eq!(field(&e, "event.outcome"), Some("success"));
    let e = parse(
        "Nov 23 10:00:01 h dropbear[1]: Password auth succeeded for 'root' from 192.0.2.11:20000",
    );
    assert_eq!(field(&e, "event.outcome"), Some("success"));
    assert_eq!(field(&e, "user.name"), Some("root"));
    // A disconnect that says nothing about authentication stays unknown.
    let e = parse(
        "Nov 23 10:00:01 h sshd[1]: Received disconnect from 192.0.2.11 port 20000:11: Bye Bye [preauth]",
    );
    assert_eq!(field(&e, "event.outcome"), Some("unknown"));
}

#[test]
fn sudo_directories_and_commands_never_supply_the_target_or_the_command() {
    // A directory the user created, and a command's arguments, imitating sudo's fields.
    for line in [
        "Nov 23 10:00:01 h sudo: alice : TTY=pts/0 ; PWD=/tmp/x ; USER=root ; COMMAND=/bin/true ; y ; USER=nobody ; COMMAND=/usr/bin/ls",
        "Nov 23 10:00:01 h sudo: alice : TTY=pts/0 ; PWD=/tmp ; USER=nobody ; COMMAND=/bin/echo ; USER=root ; COMMAND=/bin/true",
        "Nov 23 10:00:01 h sudo: alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/tmp/x ; USER=root ; COMMAND=/bin/true ; y ; USER=nobody ; COMMAND=/usr/bin/ls",
    ] {
        let e = parse(line);
        assert_eq!(field(&e, "user.name"), Some("alice"), "{line}");
        assert_ne!(field(&e, "user.effective.name"), Some("root"), "{line}");
        assert!(
            !field(&e, "process.command_line").is_some_and(|c| c.starts_with("/bin/true")),
            "{line}: {e}"
        );
    }
    // Plain lines keep every field; a command holding ` ; ` stays whole.
    let e = parse(
        "Nov 23 10:00:01 h sudo: bob : TTY=pts/1 ; PWD=/srv/a ; b ; USER=root ; GROUP=adm ; ENV=A=1 ; COMMAND=/bin/sh -c id ; whoami",
    );
    assert_eq!(field(&e, "process.working_directory"), Some("/srv/a ; b"));
    assert_eq!(field(&e, "user.effective.name"), Some("root"));
    assert_eq!(field(&e, "user.effective.group.name"), Some("adm"));
    assert_eq!(
        field(&e, "process.command_line"),
        Some("/bin/sh -c id ; whoami")
    );
    assert_eq!(field(&e, "process.tty.name"), Some("pts/1"));
}
