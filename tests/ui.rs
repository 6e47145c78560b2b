//! Compile-time diagnostics of the macros, pinned: each `ui/fail/<case>.rs` must fail to
//! compile with exactly the message in `ui/fail/<case>.stderr` (regenerate with
//! `TRYBUILD=overwrite cargo test -p act-tests --test ui`, then read the diff), and each
//! `ui/pass/<case>.rs` must compile and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
