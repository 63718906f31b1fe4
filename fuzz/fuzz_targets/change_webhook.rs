//! Change webhook bodies (loupe's schema, Argo CD, GitHub) through the change intake's parser:
//! `loupe_ingest::fuzzing::change_webhook_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    loupe_ingest::fuzzing::change_webhook_target(data);
});
