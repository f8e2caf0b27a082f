//! The vtable functions `export_plugin!` exports, each catching panics.

#![allow(unsafe_code, reason = "the plugin side of the C ABI")]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use haraka_plugin_abi::{
    ABI_MAJOR, ABI_MINOR, HK_ERROR, HK_OK, HkBytes, HkHookCall, HkHostApi, HkInit, HkPluginVtable,
};
use haraka_plugin_api::{ConfigDir, Hook, Outcome, Plugin, PluginInit};
use haraka_plugin_wire::PLUGIN_ERROR_TEXT;

use crate::exec::{self, Completer};
use crate::{NewPlugin, host, log};

/// The size of the vtable this SDK exports.
pub const VTABLE_SIZE: u32 = size_of::<HkPluginVtable>() as u32;

/// One plugin instance, behind the opaque handle the host holds.
pub(crate) struct Instance {
    pub(crate) plugin: Arc<dyn Plugin>,
    pub(crate) name: Arc<str>,
}

/// The vtable for plugin type `T`.
pub const fn vtable<T: NewPlugin>(major: u32, size: u32) -> HkPluginVtable {
    HkPluginVtable {
        struct_size: size,
        abi_major: major,
        abi_minor: ABI_MINOR,
        reserved: 0,
        create: Some(create::<T>),
        hook: Some(hook),
        shutdown: Some(shutdown),
        destroy: Some(destroy),
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic".to_owned()
    }
}

fn report(init: &HkInit, message: &str) {
    if let Some(report) = init.report_error {
        // SAFETY: `report_error` and `ctx` come from the host's `HkInit`, valid for
        // the duration of `create`, which is when this runs; the slice is borrowed.
        unsafe { report(init.ctx, HkBytes::from_slice(message.as_bytes())) };
    }
}

#[cfg(unix)]
fn path_from(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

unsafe extern "C" fn create<T: NewPlugin>(
    api: *const HkHostApi,
    init: *const HkInit,
    out: *mut *mut c_void,
) -> i32 {
    if init.is_null() || out.is_null() {
        return HK_ERROR;
    }
    // SAFETY: non-NULL; the host passes a valid `HkInit` for the duration of the
    // call. Its first field says how much of it the host wrote.
    let init = unsafe { &*init };
    if (init.struct_size as usize) < size_of::<HkInit>() {
        return HK_ERROR;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the slices of `init` are valid for the duration of `create`.
        let (name, root) = unsafe { (init.name.as_slice(), init.root.as_slice()) };
        let name = String::from_utf8_lossy(name).into_owned();
        // SAFETY: `api` is NULL or the host's static table.
        let api = unsafe { api.as_ref() }.ok_or("the host passed no API table")?;
        check_host(api)?;
        host::install(*api, &name);
        log::install();
        let config = ConfigDir::open(&path_from(root)).map_err(|e| e.to_string())?;
        let plugin = T::new(&PluginInit {
            name: &name,
            config: &config,
        })
        .map_err(|e| e.to_string())?;
        let plugin = haraka_plugin_api::plugin(&name, plugin);
        for reg in plugin.hooks() {
            if let Some(register) = init.register_hook {
                // SAFETY: as for `report`: host callback and context valid during
                // `create`; the slice is borrowed for the call.
                unsafe {
                    register(
                        init.ctx,
                        HkBytes::from_slice(reg.hook.name().as_bytes()),
                        reg.priority,
                    )
                };
            }
        }
        let instance = Box::new(Instance {
            plugin,
            name: Arc::from(name.as_str()),
        });
        Ok::<_, String>(Box::into_raw(instance).cast::<c_void>())
    }));
    match result {
        Ok(Ok(instance)) => {
            // SAFETY: `out` is non-NULL and points to the host's slot for the handle.
            unsafe { *out = instance };
            HK_OK
        }
        Ok(Err(message)) => {
            report(init, &message);
            HK_ERROR
        }
        Err(panic) => {
            report(
                init,
                &format!("panicked while starting: {}", panic_text(&*panic)),
            );
            HK_ERROR
        }
    }
}

fn check_host(api: &HkHostApi) -> Result<(), String> {
    if api.abi_major != ABI_MAJOR {
        return Err(format!(
            "the host speaks plugin ABI v{}, this plugin v{ABI_MAJOR}",
            api.abi_major
        ));
    }
    if (api.struct_size as usize) < size_of::<HkHostApi>() || api.complete.is_none() {
        return Err(format!(
            "the host's API table is too old (ABI v{}.{}; this plugin needs v{ABI_MAJOR}.{ABI_MINOR})",
            api.abi_major, api.abi_minor
        ));
    }
    Ok(())
}

/// What `hook` copies out of the host's call before it returns.
struct Call {
    token: u64,
    hook: String,
    request: Vec<u8>,
    body: Vec<u8>,
}

unsafe extern "C" fn hook(instance: *mut c_void, call: *const HkHookCall) {
    if call.is_null() {
        host::log(
            haraka_plugin_abi::HK_LOG_ERROR,
            "hook called without a call",
        );
        return;
    }
    // SAFETY: non-NULL; the host's `HkHookCall` is valid for the duration of `hook`.
    let raw = unsafe { &*call };
    if (raw.struct_size as usize) < size_of::<HkHookCall>() {
        host::log(haraka_plugin_abi::HK_LOG_ERROR, "hook call is too short");
        return;
    }
    // Created first, so that whatever happens below the call is answered.
    let completer = Completer::new(raw.token);
    // SAFETY: the slices are valid for the duration of `hook`; they are copied.
    let call = unsafe {
        Call {
            token: raw.token,
            hook: String::from_utf8_lossy(raw.hook.as_slice()).into_owned(),
            request: raw.request.as_slice().to_vec(),
            body: raw.body.as_slice().to_vec(),
        }
    };
    // SAFETY: `instance` is the handle `create` returned; the host keeps it alive
    // until `destroy` and never calls `hook` after that.
    let Some(instance) = (unsafe { instance.cast::<Instance>().as_ref() }) else {
        completer.finish(&Outcome::deny_soft(PLUGIN_ERROR_TEXT), &[], None);
        return;
    };
    let started = catch_unwind(AssertUnwindSafe(|| {
        start(instance, call, completer);
    }));
    if let Err(panic) = started {
        // The completer was dropped while unwinding, which answered the call.
        host::log(
            haraka_plugin_abi::HK_LOG_ERROR,
            &format!("plugin {} panicked: {}", instance.name, panic_text(&*panic)),
        );
    }
}

fn start(instance: &Instance, call: Call, completer: Completer) {
    let Some(hook) = Hook::from_name(&call.hook) else {
        host::log(
            haraka_plugin_abi::HK_LOG_WARN,
            &format!(
                "plugin {} was called for unknown hook `{}`",
                instance.name, call.hook
            ),
        );
        completer.finish(&Outcome::cont(), &[], None);
        return;
    };
    let target = match haraka_plugin_wire::decode_request(&call.request, call.body) {
        Ok(t) => t,
        Err(e) => {
            host::log(
                haraka_plugin_abi::HK_LOG_ERROR,
                &format!("plugin {}: {e}", instance.name),
            );
            completer.finish(&Outcome::deny_soft(PLUGIN_ERROR_TEXT), &[], None);
            return;
        }
    };
    crate::testing::with_token(call.token, || {
        exec::run(
            instance.plugin.clone(),
            instance.name.clone(),
            hook,
            target,
            completer,
        );
    });
}

unsafe extern "C" fn shutdown(instance: *mut c_void) {
    // SAFETY: the handle `create` returned, alive until `destroy`.
    let Some(instance) = (unsafe { instance.cast::<Instance>().as_ref() }) else {
        return;
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| instance.plugin.shutdown())) {
        host::log(
            haraka_plugin_abi::HK_LOG_ERROR,
            &format!(
                "plugin {} panicked in shutdown: {}",
                instance.name,
                panic_text(&*panic)
            ),
        );
    }
}

unsafe extern "C" fn destroy(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the handle came from `Box::into_raw` in `create` and the host calls
    // `destroy` once, after its last use. Hooks still running hold their own `Arc`.
    let instance = unsafe { Box::from_raw(instance.cast::<Instance>()) };
    let name = instance.name.clone();
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(instance))) {
        host::log(
            haraka_plugin_abi::HK_LOG_ERROR,
            &format!(
                "plugin {name} panicked while being dropped: {}",
                panic_text(&*panic)
            ),
        );
    }
}
