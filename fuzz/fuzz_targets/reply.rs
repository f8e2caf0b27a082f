//! AFL entry of the `reply` target (see `haraka_fuzz::reply`).

fn main() {
    afl::fuzz!(|data: &[u8]| haraka_fuzz::reply(data));
}
