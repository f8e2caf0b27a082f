//! AFL entry of the `session` target (see `haraka_fuzz::session`).

fn main() {
    afl::fuzz!(|data: &[u8]| haraka_fuzz::session(data));
}
