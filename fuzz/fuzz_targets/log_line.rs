//! `parse_line` in every format never panics, and always gives an object with an
//! `@timestamp` (it never fails).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_parse::{Format, LineContext, parse_line, parse_line_strict};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let received = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    for format in Format::ALL {
        let ctx = LineContext::new(received).with_format(format).with_path("/var/log/auth.log");
        let event = parse_line(line, &ctx);
        assert!(event.is_object());
        assert!(event.get("@timestamp").is_some());
        let _ = parse_line_strict(line, &ctx);
    }
});
