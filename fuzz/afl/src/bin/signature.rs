//! `cargo afl fuzz` target: [`fuzz::signature`].
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::signature(data));
}
