//! AFL entry of the `data` target (see `haraka_fuzz::data`).

fn main() {
    afl::fuzz!(|data: &[u8]| haraka_fuzz::data(data));
}
