//! Attacker text in the attacker-written slots of the authentication formats (user names,
//! remote users, client-sent texts) never supplies the address or port: `source.ip` is the
//! format's address or absent, `source.port` the format's port or absent. The templates and
//! the imitating fragments are the property test's (`crates/vigil-parse/tests/auth_templates.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parse::{Format, LineContext, parse_line};

#[path = "../../crates/vigil-parse/tests/auth_templates.rs"]
mod auth_templates;

use auth_templates::{FRAGMENTS, TEMPLATES, check, line};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (program, message) = TEMPLATES[usize::from(pick) % TEMPLATES.len()];
    // Slots are separated by 0xFF; a byte below 0x20 stands for a fragment (so the fuzzer
    // reaches the imitations without guessing them byte by byte); the rest is text, without
    // line ends (the line is one line).
    let slots: Vec<String> = rest
        .split(|b| *b == 0xFF)
        .map(|slot| {
            let mut text = String::new();
            for chunk in slot.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\n' | '\r' => {}
                        c if (c as u32) < 0x20 => {
                            text.push_str(FRAGMENTS[c as usize % FRAGMENTS.len()]);
                        }
                        c => text.push(c),
                    }
                }
            }
            text
        })
        .collect();
    let text = line(program, message, &slots);
    let ctx = LineContext::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap())
        .with_format(Format::Auth);
    let event = parse_line(&text, &ctx);
    if let Err(why) = check(&event) {
        panic!("{why} from {text}");
    }
});
