//! A `GET /alerts` query string and a pagination cursor from the network: parsing must
//! never panic, and an accepted filter must be within the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(f) = vigil_server::api::alerts::parse_filter(Some(s)) {
        assert!((1..=1000).contains(&f.limit));
        if let (Some(a), Some(b)) = (f.since, f.until) {
            assert!(a <= b);
        }
    }
    if let Ok(c) = vigil_store::decode_cursor(s) {
        assert_eq!(vigil_store::decode_cursor(&vigil_store::encode_cursor(&c)).unwrap(), c);
    }
});
