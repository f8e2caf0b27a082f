//! Opening plugin libraries (once per file, never unloaded) and checking their
//! entry symbol, ABI version and vtable.

#![allow(unsafe_code, reason = "dlopen and reading the plugin's vtable")]

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use haraka_plugin_abi::{
    ABI_MAJOR, ABI_MINOR, ENTRY_SYMBOL, EntryFn, HkHookCall, HkHostApi, HkInit, HkPluginVtable,
    VTABLE_MAJOR_OFFSET, entry_symbol, vtable_size_for_minor,
};

use crate::LoadError;

type CreateFn = unsafe extern "C" fn(*const HkHostApi, *const HkInit, *mut *mut c_void) -> i32;
type HookFn = unsafe extern "C" fn(*mut c_void, *const HkHookCall);
type InstanceFn = unsafe extern "C" fn(*mut c_void);

/// A checked plugin library: its functions, valid for the life of the process.
#[derive(Debug)]
pub(crate) struct Library {
    pub(crate) path: PathBuf,
    pub(crate) create: CreateFn,
    pub(crate) hook: HookFn,
    pub(crate) shutdown: InstanceFn,
    pub(crate) destroy: InstanceFn,
}

static LIBRARIES: LazyLock<Mutex<HashMap<PathBuf, &'static Library>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Majors probed to explain a library without our entry symbol.
const OTHER_MAJORS: std::ops::RangeInclusive<u32> = 0..=16;

/// The library at `path`, opened and checked on first use.
pub(crate) fn open(path: &Path) -> Result<&'static Library, LoadError> {
    let canonical = path.canonicalize().map_err(|e| LoadError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut libraries = LIBRARIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lib) = libraries.get(&canonical) {
        return Ok(lib);
    }
    let handle = dlopen(path, &canonical)?;
    // Never unloaded: plugin code and statics must outlive every call into them.
    let handle: &'static libloading::Library = Box::leak(Box::new(handle));
    let library: &'static Library = Box::leak(Box::new(check(handle, path)?));
    libraries.insert(canonical, library);
    Ok(library)
}

fn dlopen(path: &Path, canonical: &Path) -> Result<libloading::Library, LoadError> {
    let open_error = |e: libloading::Error| LoadError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    #[cfg(unix)]
    {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        // SAFETY: loading a plugin library runs its initialisers; plugins are
        // trusted in-process code by design (docs/writing-plugins.md). RTLD_NOW
        // makes unresolved symbols an error here rather than a crash later.
        unsafe { Library::open(Some(canonical), RTLD_NOW | RTLD_LOCAL) }
            .map(Into::into)
            .map_err(open_error)
    }
    #[cfg(not(unix))]
    {
        // SAFETY: as above.
        unsafe { libloading::Library::new(canonical) }.map_err(open_error)
    }
}

fn entry(handle: &'static libloading::Library, symbol: &str) -> Option<EntryFn> {
    let mut name = symbol.as_bytes().to_vec();
    name.push(0);
    // SAFETY: the symbol, when present, is the ABI's entry function with exactly
    // this signature (its name carries the major version that fixes it).
    unsafe { handle.get::<EntryFn>(&name) }.ok().map(|s| *s)
}

fn check(handle: &'static libloading::Library, path: &Path) -> Result<Library, LoadError> {
    let Some(entry_fn) = entry(handle, ENTRY_SYMBOL) else {
        if let Some(found) = OTHER_MAJORS
            .filter(|&m| m != ABI_MAJOR)
            .find(|&m| entry(handle, &entry_symbol(m)).is_some())
        {
            return Err(LoadError::WrongMajor {
                path: path.to_owned(),
                found,
                expected: ABI_MAJOR,
            });
        }
        return Err(LoadError::MissingSymbol {
            path: path.to_owned(),
            symbol: ENTRY_SYMBOL.to_owned(),
        });
    };
    // SAFETY: the entry function takes nothing and returns a pointer to static data.
    let ptr = unsafe { entry_fn() };
    let vtable = read_vtable(ptr, path)?;
    let missing = |field| LoadError::NullEntry {
        path: path.to_owned(),
        field,
    };
    Ok(Library {
        path: path.to_owned(),
        create: vtable.create.ok_or_else(|| missing("create"))?,
        hook: vtable.hook.ok_or_else(|| missing("hook"))?,
        shutdown: vtable.shutdown.ok_or_else(|| missing("shutdown"))?,
        destroy: vtable.destroy.ok_or_else(|| missing("destroy"))?,
    })
}

/// Reads the vtable, never past the size it declares.
fn read_vtable(ptr: *const HkPluginVtable, path: &Path) -> Result<HkPluginVtable, LoadError> {
    let short = |size: usize, needed: usize, minor: u32| LoadError::ShortVtable {
        path: path.to_owned(),
        size,
        needed,
        major: ABI_MAJOR,
        minor,
    };
    if ptr.is_null() {
        return Err(short(0, size_of::<HkPluginVtable>(), ABI_MINOR));
    }
    // SAFETY: every vtable version starts with its `u32` size; `ptr` is non-NULL
    // and points to the plugin's static vtable.
    let size = unsafe { ptr.cast::<u32>().read() } as usize;
    if size < VTABLE_MAJOR_OFFSET + 4 {
        return Err(short(size, size_of::<HkPluginVtable>(), ABI_MINOR));
    }
    // SAFETY: `size` says the first two `u32`s are there.
    let major = unsafe {
        ptr.cast::<u8>()
            .add(VTABLE_MAJOR_OFFSET)
            .cast::<u32>()
            .read()
    };
    if major != ABI_MAJOR {
        return Err(LoadError::WrongMajor {
            path: path.to_owned(),
            found: major,
            expected: ABI_MAJOR,
        });
    }
    if size < 12 {
        return Err(short(size, size_of::<HkPluginVtable>(), ABI_MINOR));
    }
    // SAFETY: `size` says the third `u32` is there.
    let minor = unsafe { ptr.cast::<u32>().add(2).read() };
    let Some(needed) = vtable_size_for_minor(minor) else {
        return Err(LoadError::NewerMinor {
            path: path.to_owned(),
            major,
            found: minor,
            supported: ABI_MINOR,
        });
    };
    if size < needed {
        return Err(short(size, needed, minor));
    }
    // SAFETY: all-zero bytes are a valid vtable (integers 0, every function None).
    let mut vtable: HkPluginVtable = unsafe { std::mem::zeroed() };
    let len = size.min(size_of::<HkPluginVtable>());
    // SAFETY: the plugin's vtable has at least `size` readable bytes, we copy at
    // most that many into a local of at least `len` bytes; the regions are disjoint.
    unsafe { std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&raw mut vtable).cast::<u8>(), len) };
    Ok(vtable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn full() -> HkPluginVtable {
        // SAFETY: all-zero is a valid vtable.
        let mut v: HkPluginVtable = unsafe { std::mem::zeroed() };
        v.struct_size = size_of::<HkPluginVtable>() as u32;
        v.abi_major = ABI_MAJOR;
        v.abi_minor = ABI_MINOR;
        v
    }

    fn read(v: &HkPluginVtable) -> Result<HkPluginVtable, LoadError> {
        read_vtable(v, Path::new("/p/libx.so"))
    }

    #[test]
    fn vtable_checks() {
        assert!(read(&full()).is_ok());
        assert!(matches!(
            read_vtable(std::ptr::null(), Path::new("/p/libx.so")),
            Err(LoadError::ShortVtable { size: 0, .. })
        ));
        type Edit = fn(&mut HkPluginVtable);
        let table: [(Edit, &str); 4] = [
            (|v| v.struct_size = 4, "ShortVtable"),
            (|v| v.abi_major = 2, "WrongMajor"),
            (|v| v.abi_minor = ABI_MINOR + 1, "NewerMinor"),
            (|v| v.struct_size -= 8, "ShortVtable"),
        ];
        for (edit, want) in table {
            let mut v = full();
            edit(&mut v);
            let err = read(&v).err().unwrap();
            assert!(format!("{err:?}").starts_with(want), "{err:?}");
            assert!(err.to_string().starts_with("/p/libx.so: "), "{err}");
        }
    }

    #[test]
    fn a_longer_vtable_from_a_newer_sdk_is_read_up_to_what_we_know() {
        #[repr(C)]
        struct Longer {
            v: HkPluginVtable,
            extra: u64,
        }
        let mut l = Longer {
            v: full(),
            extra: 7,
        };
        l.v.struct_size = size_of::<Longer>() as u32;
        assert_eq!(l.extra, 7);
        assert!(read(&l.v).is_ok());
    }
}
