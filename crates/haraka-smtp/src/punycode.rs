//! RFC 3492 punycode, encoding only: what address-rfc2821 does to a UTF-8 domain
//! (`punycode.toASCII`) before it lower-cases it.

const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

fn adapt(mut delta: u32, num_points: u32, first: bool) -> u32 {
    delta /= if first { DAMP } else { 2 };
    delta += delta / num_points;
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
}

fn digit(d: u32) -> char {
    // 0..25 -> a..z, 26..35 -> 0..9
    let b = if d < 26 {
        b'a' + d as u8
    } else {
        b'0' + (d - 26) as u8
    };
    b as char
}

/// Encode one label (without the `xn--` prefix). `None` on arithmetic overflow.
pub(crate) fn encode_label(input: &str) -> Option<String> {
    let chars: Vec<u32> = input.chars().map(u32::from).collect();
    let mut out: String = input.chars().filter(char::is_ascii).collect();
    let basic = out.chars().count() as u32;
    let mut handled = basic;
    if basic > 0 {
        out.push('-');
    }
    let mut n = INITIAL_N;
    let mut delta: u32 = 0;
    let mut bias = INITIAL_BIAS;
    let total = chars.len() as u32;
    while handled < total {
        let m = chars.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &chars {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(out)
}

/// `punycode.toASCII(domain)`: the label separators `。．｡` become `.`, and every
/// label with a non-ASCII character becomes `xn--<punycode>`.
pub(crate) fn to_ascii(domain: &str) -> String {
    let mapped: String = domain
        .chars()
        .map(|c| match c {
            '\u{3002}' | '\u{FF0E}' | '\u{FF61}' => '.',
            other => other,
        })
        .collect();
    mapped
        .split('.')
        .map(|label| {
            if label.is_ascii() {
                label.to_owned()
            } else {
                match encode_label(label) {
                    Some(enc) => format!("xn--{enc}"),
                    None => label.to_owned(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(to_ascii("bü.de"), "xn--b-eha.de");
        assert_eq!(to_ascii("münchen.de"), "xn--mnchen-3ya.de");
        assert_eq!(to_ascii("例え.jp"), "xn--r8jz45g.jp");
        assert_eq!(to_ascii("example.com"), "example.com");
        assert_eq!(encode_label("ü").as_deref(), Some("tda"));
    }
}
