//! AFL entry of the `ini` target (see `haraka_fuzz::ini`).

fn main() {
    afl::fuzz!(|data: &[u8]| haraka_fuzz::ini(data));
}
