//! `cargo afl fuzz` target: [`fuzz::envelope`].
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::envelope(data));
}
