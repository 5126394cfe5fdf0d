//! An alert body from the network: JSON decoding then validation must never panic, and
//! whatever validates must satisfy the documented limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_core::{AlertInput, NewAlert, limits};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<AlertInput>(data) else { return };
    if let Ok(a) = NewAlert::parse(input, vigil_core::now()) {
        assert!(!a.title.trim().is_empty());
        assert!(a.title.chars().count() <= limits::TITLE_MAX);
        assert!(a.tags.len() <= limits::TAGS_MAX);
        assert!(a.metadata.is_object());
        if let Some(c) = a.confidence_score {
            assert!((0.0..=1.0).contains(&c));
        }
    }
});
