//! The versioned C ABI between haraka-rs and cdylib plugins.
//!
//! Owns the `#[repr(C)]` contract and nothing else: the entry symbol (its name
//! carries the major version), the structs that cross the library boundary, the
//! numeric constants, and the C header generated from these definitions
//! (`include/haraka_plugin.h`). It must never depend on another crate of the
//! workspace, never hold state, and never change a struct of a released major
//! version except by appending fields (which bumps the minor version).
//!
//! # The rules
//! * The host looks up one symbol, [`ENTRY_SYMBOL`] (`haraka_plugin_entry_v1`),
//!   a function returning a pointer to a static [`HkPluginVtable`]. The host checks
//!   `abi_major == ABI_MAJOR`, `abi_minor <= ABI_MINOR` and that `struct_size` is
//!   at least the size of the vtable at the plugin's minor version.
//! * Only plain structs, `(ptr, len)` byte slices ([`HkBytes`]), integers, function
//!   pointers and opaque handles cross. No Rust type, no trait object, no
//!   allocation changes hands.
//! * Each side frees what it allocated: every [`HkBytes`] is *borrowed* for the
//!   duration of the call that receives it. Whoever needs the bytes later copies
//!   them.
//! * A hook is answered through [`HkHostApi::complete`] with the call's token,
//!   exactly once, from any thread, before or after `hook` returns. A token is a
//!   number, not a pointer: a late or second completion is logged by the host and
//!   ignored; it can never touch freed memory.
//! * Libraries are loaded once and never unloaded; the host API table and the
//!   plugin's vtable live for the whole process.
//! * No panic or exception may unwind across an entry point.
//!
//! The JSON documents carried by [`HkHookCall::request`] and [`HkOutcome::changes`]
//! are described in `docs/writing-plugins.md`; their shape is part of the minor
//! version.

#![allow(
    unsafe_code,
    reason = "this crate is the FFI contract; each block says why it is sound"
)]

pub mod ctype;
mod header;

use std::ffi::c_void;

use ctype::abi_struct;

pub use header::{Layout, c_header, layouts};

/// Incompatible changes bump this; it is part of the entry symbol's name.
pub const ABI_MAJOR: u32 = 1;
/// Compatible additions (fields appended to a struct) bump this.
pub const ABI_MINOR: u32 = 0;
/// The symbol every plugin library exports, for [`ABI_MAJOR`].
pub const ENTRY_SYMBOL: &str = "haraka_plugin_entry_v1";

/// The entry symbol's name for another major version (used to diagnose a plugin
/// built for a different ABI).
pub fn entry_symbol(major: u32) -> String {
    format!("haraka_plugin_entry_v{major}")
}

/// The entry function: returns the plugin's static vtable (never freed).
pub type EntryFn = unsafe extern "C" fn() -> *const HkPluginVtable;

/// `create` succeeded.
pub const HK_OK: i32 = 0;
/// `create` failed; the reason was given through [`HkInit::report_error`].
pub const HK_ERROR: i32 = 1;

/// Log levels for [`HkHostApi::log`] and [`HkHostApi::max_log_level`] (0 = off).
pub const HK_LOG_ERROR: u32 = 1;
pub const HK_LOG_WARN: u32 = 2;
pub const HK_LOG_INFO: u32 = 3;
pub const HK_LOG_DEBUG: u32 = 4;
pub const HK_LOG_TRACE: u32 = 5;

/// Haraka's return codes, as [`HkOutcome::action`] carries them.
pub const HK_CONT: u32 = 900;
pub const HK_STOP: u32 = 901;
pub const HK_DENY: u32 = 902;
pub const HK_DENYSOFT: u32 = 903;
pub const HK_DENYDISCONNECT: u32 = 904;
pub const HK_DISCONNECT: u32 = 905;
pub const HK_OK_ACTION: u32 = 906;
pub const HK_NEXT_HOOK: u32 = 907;
pub const HK_DELAY: u32 = 908;
pub const HK_DENYSOFTDISCONNECT: u32 = 909;

abi_struct! {
    /// A borrowed byte slice: valid only during the call that receives it.
    /// `ptr` may be NULL when `len` is 0.
    pub struct HkBytes {
        pub ptr: *const u8,
        pub len: usize,
    }
}

impl HkBytes {
    /// The empty slice.
    pub const EMPTY: HkBytes = HkBytes {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows `bytes` (the caller keeps them alive for the call).
    pub fn from_slice(bytes: &[u8]) -> HkBytes {
        HkBytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// The bytes; an empty slice when `len` is 0 or `ptr` is NULL.
    ///
    /// # Safety
    /// When `ptr` is not NULL it must point to `len` readable bytes that stay valid
    /// and unchanged for `'a` (the ABI guarantees this for the duration of a call).
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: non-NULL and `len` bytes readable for 'a, by this function's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

abi_struct! {
    /// A hook's answer (Haraka's `next(code, msg)` plus the plugin's edits), passed
    /// to `complete`. Every slice is borrowed for the duration of that call.
    pub struct HkOutcome {
        /// `sizeof(HkOutcome)` as the plugin knows it.
        pub struct_size: u32,
        /// One of `HK_CONT` ... `HK_DENYSOFTDISCONNECT` (Haraka's 900 ... 909).
        pub action: u32,
        /// An SMTP code replacing the hook's default (a DSN's code), or 0.
        pub reply_code: u32,
        /// 1 when `body` replaces the message body, 0 to leave it unchanged.
        pub body_replaced: u32,
        /// Reply lines, UTF-8, separated by `\n`; empty for no message.
        pub reply: HkBytes,
        /// The connection / mail view after the hook (JSON), or empty for no change.
        pub changes: HkBytes,
        /// The new message body when `body_replaced` is 1.
        pub body: HkBytes,
    }
}

abi_struct! {
    /// What the host offers every plugin; static for the life of the process.
    pub struct HkHostApi {
        /// `sizeof(HkHostApi)` as the host knows it.
        pub struct_size: u32,
        pub abi_major: u32,
        pub abi_minor: u32,
        /// The most verbose `HK_LOG_*` level the host records (0 = none).
        pub max_log_level: u32,
        /// `log(level, plugin_name, message)`: UTF-8 text, borrowed for the call.
        pub log: Option<unsafe extern "C" fn(u32, HkBytes, HkBytes)>,
        /// `complete(token, outcome)`: answers the hook call `token`, exactly once,
        /// from any thread. Later calls with the same token are logged and ignored.
        pub complete: Option<unsafe extern "C" fn(u64, *const HkOutcome)>,
    }
}

abi_struct! {
    /// The arguments of `create`; every pointer is valid only during that call.
    pub struct HkInit {
        /// `sizeof(HkInit)` as the host knows it.
        pub struct_size: u32,
        pub reserved: u32,
        /// The plugin's name (its line in `config/plugins`, or the library's stem).
        pub name: HkBytes,
        /// The server's `-c ROOT` directory (bytes of the path).
        pub root: HkBytes,
        /// Passed back to `report_error` and `register_hook`.
        pub ctx: *mut c_void,
        /// `report_error(ctx, message)`: why `create` fails (UTF-8).
        pub report_error: Option<unsafe extern "C" fn(*mut c_void, HkBytes)>,
        /// `register_hook(ctx, hook_name, priority)`: one call per hook, in order.
        pub register_hook: Option<unsafe extern "C" fn(*mut c_void, HkBytes, i32)>,
    }
}

abi_struct! {
    /// One hook invocation; every slice is borrowed for the duration of `hook`.
    pub struct HkHookCall {
        /// `sizeof(HkHookCall)` as the host knows it.
        pub struct_size: u32,
        pub reserved: u32,
        /// Pass this to `complete`.
        pub token: u64,
        /// Haraka's hook name (`rcpt`, `data_post`, ...).
        pub hook: HkBytes,
        /// The connection (or queued mail) view and the hook arguments (JSON).
        pub request: HkBytes,
        /// The message body, CRLF line ends, dot-unstuffed (empty before DATA).
        pub body: HkBytes,
    }
}

abi_struct! {
    /// What a plugin library exports through its entry symbol; static.
    pub struct HkPluginVtable {
        /// `sizeof(HkPluginVtable)` at the plugin's minor version.
        pub struct_size: u32,
        pub abi_major: u32,
        pub abi_minor: u32,
        pub reserved: u32,
        /// `create(host, init, out_instance)`: build one plugin instance; `HK_OK` or
        /// `HK_ERROR` (after `report_error`). `host` outlives the instance.
        pub create: Option<unsafe extern "C" fn(*const HkHostApi, *const HkInit, *mut *mut c_void) -> i32>,
        /// `hook(instance, call)`: start a hook; answer through `complete`.
        pub hook: Option<unsafe extern "C" fn(*mut c_void, *const HkHookCall)>,
        /// `shutdown(instance)`: the server is stopping.
        pub shutdown: Option<unsafe extern "C" fn(*mut c_void)>,
        /// `destroy(instance)`: the host holds no more references; free it.
        pub destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    }
}

/// The size a vtable of `minor` must have at least (`None`: a minor this crate does
/// not know, i.e. newer than [`ABI_MINOR`]).
pub fn vtable_size_for_minor(minor: u32) -> Option<usize> {
    match minor {
        0 => Some(std::mem::size_of::<HkPluginVtable>()),
        _ => None,
    }
}

/// Byte offset of `abi_major` in every vtable version (for reading it from a
/// vtable that may be too short).
pub const VTABLE_MAJOR_OFFSET: usize = std::mem::offset_of!(HkPluginVtable, abi_major);

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn entry_symbol_carries_the_major_version() {
        assert_eq!(entry_symbol(ABI_MAJOR), ENTRY_SYMBOL);
        assert_eq!(entry_symbol(2), "haraka_plugin_entry_v2");
    }

    #[test]
    fn action_codes_are_harakas() {
        let codes = [
            HK_CONT,
            HK_STOP,
            HK_DENY,
            HK_DENYSOFT,
            HK_DENYDISCONNECT,
            HK_DISCONNECT,
            HK_OK_ACTION,
            HK_NEXT_HOOK,
            HK_DELAY,
            HK_DENYSOFTDISCONNECT,
        ];
        assert_eq!(codes.to_vec(), (900..=909).collect::<Vec<u32>>());
    }

    #[test]
    fn bytes_round_trip_and_empty_is_safe() {
        let data = b"hello";
        let b = HkBytes::from_slice(data);
        // SAFETY: `data` outlives the slice.
        assert_eq!(unsafe { b.as_slice() }, data);
        // SAFETY: NULL with len 0 is the documented empty slice.
        assert!(unsafe { HkBytes::EMPTY.as_slice() }.is_empty());
        let dangling = HkBytes {
            ptr: std::ptr::null(),
            len: 5,
        };
        // SAFETY: a NULL pointer is treated as empty whatever the length.
        assert!(unsafe { dangling.as_slice() }.is_empty());
    }

    #[test]
    fn minor_sizes() {
        assert_eq!(
            vtable_size_for_minor(ABI_MINOR),
            Some(std::mem::size_of::<HkPluginVtable>())
        );
        assert_eq!(vtable_size_for_minor(ABI_MINOR + 1), None);
        assert_eq!(VTABLE_MAJOR_OFFSET, 4);
    }
}
