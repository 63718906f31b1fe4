//! Nezha dataset files (span, log and metric CSV, plain or gzip) through the dataset reader:
//! `loupe_ingest::fuzzing::nezha_csv_target`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    loupe_ingest::fuzzing::nezha_csv_target(data);
});
