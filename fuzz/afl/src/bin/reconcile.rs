//! `cargo afl fuzz` target: [`fuzz::reconcile`].
fn main() {
    afl::fuzz!(|data: &[u8]| fuzz::reconcile(data));
}
