//! The `vigil` binary end to end: configuration checks, user management, version.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp() -> Dir {
    let d = std::env::temp_dir().join(format!("vigil-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// Runs vigil in `dir` with a clean environment (no VIGIL_*/legacy variables leak in).
fn vigil(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run vigil")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_package_version() {
    let d = tmp();
    let o = vigil(&d.0, &["version"], &[]);
    assert!(o.status.success());
    assert_eq!(
        text(&o).0.trim(),
        format!("vigil {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_check_redacts_secrets_and_names_unknown_keys() {
    let d = tmp();
    let o = vigil(
        &d.0,
        &["config", "check"],
        &[
            ("THEHIVE_API_KEY", "hive-secret-value"),
            ("VIGIL_DATABASE__URL", "postgres://u:hunter2@db/vigil"),
            ("API_PORT", "9100"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("port = 9100"), "{out}");
    assert!(out.contains("postgres://u:***@db/vigil"), "{out}");
    assert!(
        !out.contains("hive-secret-value") && !out.contains("hunter2"),
        "{out}"
    );

    std::fs::write(d.0.join("vigil.toml"), "[server]\nprot = 1\n").unwrap();
    let o = vigil(&d.0, &["config", "check"], &[]);
    assert!(!o.status.success());
    let err = text(&o).1;
    assert!(err.contains("vigil.toml") && err.contains("prot"), "{err}");

    std::fs::remove_file(d.0.join("vigil.toml")).unwrap();
    let o = vigil(&d.0, &["config", "check"], &[("VIGIL_SERVER__PROT", "1")]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("VIGIL_SERVER__PROT"));
}

#[test]
fn user_lifecycle_from_the_command_line() {
    let d = tmp();
    let pw = [("VIGIL_USER_PASSWORD", "a long enough passphrase")];
    let o = vigil(
        &d.0,
        &[
            "user", "create", "alice", "--role", "viewer", "--org", "acme",
        ],
        &pw,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("created user 'alice' (role viewer, org 'acme'"),
        "{out}"
    );
    assert!(
        !out.contains("password (shown once)"),
        "a given password must not be printed"
    );

    // Generated password: printed once.
    let o = vigil(&d.0, &["user", "create", "bob"], &[]);
    assert!(text(&o).0.contains("password (shown once): "));

    let o = vigil(&d.0, &["user", "create", "bob"], &pw);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("username 'bob' is taken"));

    let o = vigil(&d.0, &["user", "create", "x y"], &pw);
    assert!(!o.status.success() && text(&o).1.contains("username"));
    let o = vigil(
        &d.0,
        &["user", "create", "weak"],
        &[("VIGIL_USER_PASSWORD", "short")],
    );
    assert!(!o.status.success() && text(&o).1.contains("VIGIL_USER_PASSWORD"));

    assert!(
        vigil(&d.0, &["user", "set-role", "alice", "admin"], &[])
            .status
            .success()
    );
    let o = vigil(&d.0, &["user", "set-role", "alice", "boss"], &[]);
    assert!(!o.status.success() && text(&o).1.contains("boss"));
    let o = vigil(&d.0, &["user", "set-role", "nobody", "admin"], &[]);
    assert!(!o.status.success() && text(&o).1.contains("no user named 'nobody'"));
    let o = vigil(&d.0, &["user", "reset-password", "alice"], &[]);
    assert!(text(&o).0.contains("sessions have ended"));

    let o = vigil(&d.0, &["user", "list"], &[]);
    let out = text(&o).0;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(&rows[0][..4], ["alice", "admin", "acme", "active"]);
    assert_eq!(&rows[1][..4], ["bob", "analyst", "default", "active"]);

    assert!(vigil(&d.0, &["migrate"], &[]).status.success());
    assert!(d.0.join("vigil-data/vigil.db").exists());
}
