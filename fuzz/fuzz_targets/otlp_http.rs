//! OTLP/HTTP bodies (three signals, protobuf and JSON, identity and gzip) through the
//! receivers' decoding and validation: `loupe_ingest::fuzzing::otlp_http_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    loupe_ingest::fuzzing::otlp_http_target(data);
});
