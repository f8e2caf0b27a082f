//! AFL entry of the `command` target (see `haraka_fuzz::command`).

fn main() {
    afl::fuzz!(|data: &[u8]| haraka_fuzz::command(data));
}
