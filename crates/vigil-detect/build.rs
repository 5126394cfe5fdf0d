//! Embeds the built-in rule pack (`rules/**/*.yml`) in the library and generates one test per
//! rule file for `tests/builtin.rs`. Files are listed in path order, so the output depends
//! only on the pack's contents.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rules = manifest.join("rules");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=rules");
    let mut files = Vec::new();
    collect(&rules, &mut files);
    let mut relative: Vec<String> = files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&rules).expect("under rules/");
            // `/` on every platform: the names are part of the library's API.
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    relative.sort();

    let mut table = String::from(
        "/// `(path under rules/, YAML text)` of every built-in rule file, in path order.\n\
         pub const BUILTIN_RULE_FILES: &[(&str, &str)] = &[\n",
    );
    let mut tests = String::new();
    for rel in &relative {
        let abs = rules.join(rel);
        writeln!(
            table,
            "    ({rel:?}, include_str!({:?})),",
            abs.to_string_lossy()
        )
        .expect("write to String");
        let name: String = rel
            .trim_end_matches(".yml")
            .trim_end_matches(".yaml")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        writeln!(
            tests,
            "#[test]\nfn {name}() {{\n    check_rule_file({rel:?});\n}}\n"
        )
        .expect("write to String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("builtin_rules.rs"), table).expect("write builtin_rules.rs");
    std::fs::write(out.join("builtin_rule_tests.rs"), tests).expect("write builtin_rule_tests.rs");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}
