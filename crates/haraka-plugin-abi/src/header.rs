//! The C header, produced from the Rust definitions in this crate.
//!
//! `include/haraka_plugin.h` is this function's output, checked in; a test fails
//! when it is stale (`HARAKA_BLESS=1 cargo test -p haraka-plugin-abi` rewrites it).

use crate::ctype::{CStruct, push_comment};
use crate::{HkBytes, HkHookCall, HkHostApi, HkInit, HkOutcome, HkPluginVtable};

/// One ABI struct as C sees it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub name: &'static str,
    /// The `typedef struct`.
    pub definition: String,
    pub size: usize,
    /// Field names and byte offsets, in order.
    pub fields: Vec<(&'static str, usize)>,
}

/// Every ABI struct's C definition, in dependency order, with its size and
/// field offsets (for layout tests).
pub fn layouts() -> Vec<Layout> {
    fn one<T: CStruct>(name: &'static str) -> Layout {
        Layout {
            name,
            definition: T::c_definition(),
            size: T::c_size(),
            fields: T::field_offsets(),
        }
    }
    vec![
        one::<HkBytes>("HkBytes"),
        one::<HkOutcome>("HkOutcome"),
        one::<HkHostApi>("HkHostApi"),
        one::<HkInit>("HkInit"),
        one::<HkHookCall>("HkHookCall"),
        one::<HkPluginVtable>("HkPluginVtable"),
    ]
}

const INTRO: &[&str] = &[
    "haraka_plugin.h: the C ABI of haraka-rs cdylib plugins.",
    "",
    "Produced from crates/haraka-plugin-abi; do not edit by hand.",
    "",
    "Rules:",
    "- Export one function, HARAKA_PLUGIN_ENTRY, returning a static vtable.",
    "- Every HkBytes is borrowed for the duration of the call that receives it;",
    "   each side frees only what it allocated.",
    "- Answer each hook call exactly once through host->complete(token, outcome),",
    "   from any thread; a late or repeated completion is logged and ignored.",
    "- Never let an exception or a panic unwind out of a function of the vtable.",
    "- The library is never unloaded.",
];

/// The complete header text.
pub fn c_header() -> String {
    let mut out = String::new();
    push_comment(&mut out, "", INTRO);
    out.push_str("#ifndef HARAKA_PLUGIN_H\n#define HARAKA_PLUGIN_H\n\n");
    out.push_str("#include <stddef.h>\n#include <stdint.h>\n\n");
    out.push_str("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    let defines: &[(&str, String)] = &[
        ("HARAKA_PLUGIN_ABI_MAJOR", crate::ABI_MAJOR.to_string()),
        ("HARAKA_PLUGIN_ABI_MINOR", crate::ABI_MINOR.to_string()),
        ("HARAKA_PLUGIN_ENTRY", crate::ENTRY_SYMBOL.to_owned()),
        ("HK_OK", crate::HK_OK.to_string()),
        ("HK_ERROR", crate::HK_ERROR.to_string()),
        ("HK_LOG_ERROR", crate::HK_LOG_ERROR.to_string()),
        ("HK_LOG_WARN", crate::HK_LOG_WARN.to_string()),
        ("HK_LOG_INFO", crate::HK_LOG_INFO.to_string()),
        ("HK_LOG_DEBUG", crate::HK_LOG_DEBUG.to_string()),
        ("HK_LOG_TRACE", crate::HK_LOG_TRACE.to_string()),
        ("HK_CONT", crate::HK_CONT.to_string()),
        ("HK_STOP", crate::HK_STOP.to_string()),
        ("HK_DENY", crate::HK_DENY.to_string()),
        ("HK_DENYSOFT", crate::HK_DENYSOFT.to_string()),
        ("HK_DENYDISCONNECT", crate::HK_DENYDISCONNECT.to_string()),
        ("HK_DISCONNECT", crate::HK_DISCONNECT.to_string()),
        ("HK_OK_ACTION", crate::HK_OK_ACTION.to_string()),
        ("HK_NEXT_HOOK", crate::HK_NEXT_HOOK.to_string()),
        ("HK_DELAY", crate::HK_DELAY.to_string()),
        (
            "HK_DENYSOFTDISCONNECT",
            crate::HK_DENYSOFTDISCONNECT.to_string(),
        ),
    ];
    for (name, value) in defines {
        out.push_str(&format!("#define {name} {value}\n"));
    }
    out.push('\n');
    for layout in layouts() {
        out.push_str(&layout.definition);
        out.push('\n');
    }
    push_comment(
        &mut out,
        "",
        &["The entry point every plugin library exports (HARAKA_PLUGIN_ENTRY)."],
    );
    out.push_str("typedef const HkPluginVtable *(*haraka_plugin_entry_fn)(void);\n");
    out.push_str(&format!(
        "const HkPluginVtable *{}(void);\n\n",
        crate::ENTRY_SYMBOL
    ));
    out.push_str("#ifdef __cplusplus\n}\n#endif\n\n#endif /* HARAKA_PLUGIN_H */\n");
    out
}
