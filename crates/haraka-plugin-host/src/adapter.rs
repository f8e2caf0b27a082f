//! A loaded plugin instance as an ordinary [`Plugin`].

#![allow(unsafe_code, reason = "calls into the plugin's vtable")]

use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;

use haraka_plugin_abi::{HK_OK, HkBytes, HkHookCall, HkInit};
use haraka_plugin_api::{
    Action, BoxFuture, Connection, Hook, HookArgs, Msg, OutboundArgs, OutboundMail, Outcome,
    Plugin, Registration,
};
use haraka_plugin_wire::{self as wire, WireError};

use crate::completion::{self, Completed};
use crate::library::Library;
use crate::{LoadError, PLUGIN_ERROR_TEXT};

/// The plugin's opaque instance handle.
struct Handle(*mut c_void);

// SAFETY: the ABI requires instances to be usable from any thread, concurrently
// (the SDK's instance holds an `Arc<dyn Plugin>`, which is `Send + Sync`).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// A plugin living in a cdylib.
pub(crate) struct LoadedPlugin {
    name: Arc<str>,
    library: &'static Library,
    instance: Handle,
    hooks: Vec<Registration>,
}

/// What `create` reports through its callbacks.
#[derive(Default)]
struct CreateReport {
    error: Option<String>,
    hooks: Vec<(String, i32)>,
}

unsafe extern "C" fn report_error(ctx: *mut c_void, message: HkBytes) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `ctx` is the `CreateReport` lent to `create`, alive and not
        // otherwise borrowed during the call; the slice is lent for this call.
        let (report, message) = unsafe { (&mut *ctx.cast::<CreateReport>(), message.as_slice()) };
        report.error = Some(String::from_utf8_lossy(message).into_owned());
    }));
}

unsafe extern "C" fn register_hook(ctx: *mut c_void, hook: HkBytes, priority: i32) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `report_error`.
        let (report, hook) = unsafe { (&mut *ctx.cast::<CreateReport>(), hook.as_slice()) };
        report
            .hooks
            .push((String::from_utf8_lossy(hook).into_owned(), priority));
    }));
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

impl LoadedPlugin {
    /// Creates an instance of the library's plugin named `name`.
    pub(crate) fn create(
        library: &'static Library,
        name: &str,
        root: &Path,
    ) -> Result<LoadedPlugin, LoadError> {
        let mut report = CreateReport::default();
        let root = path_bytes(root);
        let init = HkInit {
            struct_size: size_of::<HkInit>() as u32,
            reserved: 0,
            name: HkBytes::from_slice(name.as_bytes()),
            root: HkBytes::from_slice(&root),
            ctx: (&raw mut report).cast::<c_void>(),
            report_error: Some(report_error),
            register_hook: Some(register_hook),
        };
        let mut instance: *mut c_void = std::ptr::null_mut();
        // SAFETY: `create` was checked at load; the API table is static, `init` and
        // everything it points to outlive the call, `instance` is a valid out slot.
        let status = unsafe { (library.create)(completion::host_api(), &init, &raw mut instance) };
        let failed = |reason: String| LoadError::Create {
            path: library.path.clone(),
            name: name.to_owned(),
            reason,
        };
        if status != HK_OK || instance.is_null() {
            return Err(failed(report.error.unwrap_or_else(|| {
                format!("create returned {status} without a reason")
            })));
        }
        let mut hooks = Vec::new();
        let mut unknown = None;
        for (hook, priority) in report.hooks {
            match Hook::from_name(&hook) {
                Some(h) => hooks.push(Registration::with_priority(h, priority)),
                None => {
                    unknown = Some(hook);
                    break;
                }
            }
        }
        let plugin = LoadedPlugin {
            name: Arc::from(name),
            library,
            instance: Handle(instance),
            hooks,
        };
        if let Some(hook) = unknown {
            // Dropping the plugin destroys the instance.
            drop(plugin);
            return Err(LoadError::UnknownHook {
                path: library.path.clone(),
                name: name.to_owned(),
                hook,
            });
        }
        Ok(plugin)
    }

    /// Calls the plugin and waits for its answer (forever, if it never answers).
    async fn call(&self, hook: Hook, request: &[u8], body: &[u8]) -> Option<Completed> {
        let (ticket, rx) = completion::register(self.name.clone(), hook);
        {
            let call = HkHookCall {
                struct_size: size_of::<HkHookCall>() as u32,
                reserved: 0,
                token: ticket.token,
                hook: HkBytes::from_slice(hook.name().as_bytes()),
                request: HkBytes::from_slice(request),
                body: HkBytes::from_slice(body),
            };
            // SAFETY: `hook` was checked at load, the instance is alive until
            // `destroy` (in our `Drop`), and `call` with its slices outlives the call.
            unsafe { (self.library.hook)(self.instance.0, &call) };
        }
        let completed = rx.await.ok();
        drop(ticket);
        completed
    }

    /// Turns an answer into an outcome, applying the plugin's edits with `apply`.
    fn finish(
        &self,
        hook: Hook,
        completed: Option<Completed>,
        apply: impl FnOnce(&[u8], Option<Vec<u8>>) -> Result<(), WireError>,
    ) -> Outcome {
        let failed = |why: String| {
            tracing::error!(plugin = %self.name, %hook, "{why}");
            Outcome::deny_soft(PLUGIN_ERROR_TEXT)
        };
        let Some(c) = completed else {
            return failed("the hook's answer was lost".into());
        };
        let Some(action) = u16::try_from(c.action).ok().and_then(Action::from_code) else {
            return failed(format!("invalid return code {}", c.action));
        };
        if let Err(e) = apply(&c.changes, c.body) {
            return failed(e.to_string());
        }
        let msg = if c.reply.is_empty() && c.reply_code == 0 {
            None
        } else {
            Some(Msg {
                code: u16::try_from(c.reply_code).ok().filter(|&code| code != 0),
                lines: String::from_utf8_lossy(&c.reply)
                    .split('\n')
                    .map(str::to_owned)
                    .collect(),
            })
        };
        Outcome::new(action, msg)
    }
}

impl Plugin for LoadedPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Vec<Registration> {
        self.hooks.clone()
    }

    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let request = wire::encode_conn_request(conn, args);
            let body = conn
                .transaction
                .as_ref()
                .map_or(&[][..], |t| t.message.body.as_slice());
            let completed = self.call(hook, &request, body).await;
            self.finish(hook, completed, |changes, body| {
                wire::apply_conn_changes(conn, changes, body)
            })
        })
    }

    fn outbound_hook<'a>(
        &'a self,
        hook: Hook,
        mail: &'a mut OutboundMail,
        args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let request = wire::encode_mail_request(mail, args);
            let completed = self.call(hook, &request, &[]).await;
            self.finish(hook, completed, |changes, _| {
                wire::apply_mail_changes(mail, changes)
            })
        })
    }

    fn shutdown(&self) {
        // SAFETY: checked at load; the instance is alive until `destroy`.
        unsafe { (self.library.shutdown)(self.instance.0) };
    }
}

impl Drop for LoadedPlugin {
    fn drop(&mut self) {
        // SAFETY: checked at load; this is the last use of the instance, and the
        // plugin keeps whatever its running hooks still need.
        unsafe { (self.library.destroy)(self.instance.0) };
    }
}
