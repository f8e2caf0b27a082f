//! The rewrite rules that turn the example roots in config-examples/ into test roots:
//! only listen addresses, ports, the backend address, the relay ACL and
//! absolute paths change; everything else is the user's file as written.

use std::path::Path;

use super::net;

/// The (from, to) text substitutions for `config-examples/<example>` copied
/// to `dest`, for [`super::haraka::copy_root`]. `None` for an unknown example.
pub fn rules_for(example: &str, dest: &Path) -> Option<Vec<(String, String)>> {
    let haraka_in = format!("listen={}", net::HARAKA_IN);
    let haraka_out = format!("listen={}", net::HARAKA_OUT);
    let backend = net::BACKEND;
    let rules: Vec<(String, String)> = match example {
        // The flat-layout folder: [server] listen in `config`, plugin
        // settings under plugins/, an absolute host_list path.
        "haraka-in" => vec![
            ("listen=0.0.0.0:25".into(), haraka_in.clone()),
            ("listen=[::]:25".into(), haraka_in),
            (
                "destination=10.0.0.2:25".into(),
                format!("destination={backend}"),
            ),
            ("host=10.0.0.2".into(), format!("host={}", backend.ip())),
            ("port=25\n".into(), format!("port={}\n", backend.port())),
            (
                "/opt/haraka/config/haraka-in/".into(),
                format!("{}/", dest.display()),
            ),
        ],
        // The same in Haraka's own layout (ROOT/config/...).
        "haraka-in-real" => vec![
            ("listen=[::]:25".into(), haraka_in),
            ("host=10.0.0.2".into(), format!("host={}", backend.ip())),
            ("port=25\n".into(), format!("port={}\n", backend.port())),
        ],
        "haraka-out" | "haraka-out-real" => vec![
            ("listen=10.0.0.1:2526".into(), haraka_out),
            ("10.0.0.2/32".into(), format!("{}/32", backend.ip())),
        ],
        _ => return None,
    };
    Some(rules)
}
