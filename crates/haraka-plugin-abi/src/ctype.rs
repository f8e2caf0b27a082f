//! How the ABI's Rust types are spelled in C, for the generated header.
//!
//! Every type that appears in an ABI struct implements [`CType`]; the structs
//! themselves are declared through `abi_struct!`, which implements [`CStruct`] so
//! that the header is produced from the very definitions the Rust code compiles.

use std::ffi::c_void;

/// A Rust type with a C spelling.
pub trait CType {
    /// The C type name (`uint32_t`, `const uint8_t *`, `HkBytes`).
    fn c_name() -> String;

    /// A declaration of `field` with this type (`uint32_t len`, `void (*log)(...)`).
    fn c_decl(field: &str) -> String {
        let name = Self::c_name();
        if name.ends_with('*') {
            format!("{name}{field}")
        } else {
            format!("{name} {field}")
        }
    }
}

/// A `#[repr(C)]` struct of the ABI.
pub trait CStruct: CType {
    /// The C `typedef struct` with its documentation as comments.
    fn c_definition() -> String;
    /// Every field with its byte offset, in declaration order.
    fn field_offsets() -> Vec<(&'static str, usize)>;
    /// `size_of::<Self>()`.
    fn c_size() -> usize;
}

macro_rules! scalar {
    ($($t:ty => $c:literal),* $(,)?) => {
        $(impl CType for $t {
            fn c_name() -> String {
                $c.to_owned()
            }
        })*
    };
}

scalar! {
    () => "void",
    c_void => "void",
    u8 => "uint8_t",
    u32 => "uint32_t",
    i32 => "int32_t",
    u64 => "uint64_t",
    usize => "size_t",
}

fn pointer_to(inner: &str) -> String {
    if inner.ends_with('*') {
        format!("{inner}*")
    } else {
        format!("{inner} *")
    }
}

impl<T: CType> CType for *const T {
    fn c_name() -> String {
        pointer_to(&format!("const {}", T::c_name()))
    }
}

impl<T: CType> CType for *mut T {
    fn c_name() -> String {
        pointer_to(&T::c_name())
    }
}

macro_rules! fn_pointer {
    ($($arg:ident),*) => {
        impl<R: CType $(, $arg: CType)*> CType for Option<unsafe extern "C" fn($($arg),*) -> R> {
            fn c_name() -> String {
                Self::c_decl("")
            }
            fn c_decl(field: &str) -> String {
                let args: Vec<String> = vec![$($arg::c_name()),*];
                let args = if args.is_empty() { "void".to_owned() } else { args.join(", ") };
                let ret = R::c_name();
                let sep = if ret.ends_with('*') { "" } else { " " };
                format!("{ret}{sep}(*{field})({args})")
            }
        }
    };
}

fn_pointer!();
fn_pointer!(A);
fn_pointer!(A, B);
fn_pointer!(A, B, C);

/// Declares a `#[repr(C)]` ABI struct and its C spelling from one definition.
macro_rules! abi_struct {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $fdoc:literal])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[doc = $doc])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            $(
                $(#[doc = $fdoc])*
                pub $field: $ty,
            )*
        }

        impl $crate::ctype::CType for $name {
            fn c_name() -> String {
                stringify!($name).to_owned()
            }
        }

        impl $crate::ctype::CStruct for $name {
            fn c_definition() -> String {
                let mut out = String::new();
                $crate::ctype::push_comment(&mut out, "", &[$($doc),*]);
                out.push_str(concat!("typedef struct ", stringify!($name), " {\n"));
                $(
                    $crate::ctype::push_comment(&mut out, "    ", &[$($fdoc),*]);
                    out.push_str("    ");
                    out.push_str(&<$ty as $crate::ctype::CType>::c_decl(stringify!($field)));
                    out.push_str(";\n");
                )*
                out.push_str(concat!("} ", stringify!($name), ";\n"));
                out
            }
            fn field_offsets() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), ::core::mem::offset_of!($name, $field))),*]
            }
            fn c_size() -> usize {
                ::core::mem::size_of::<$name>()
            }
        }
    };
}

pub(crate) use abi_struct;

/// Appends doc lines as a C comment block with `indent`.
pub fn push_comment(out: &mut String, indent: &str, lines: &[&str]) {
    if lines.is_empty() {
        return;
    }
    if let [line] = lines {
        out.push_str(indent);
        out.push_str("/* ");
        out.push_str(&line.trim().replace("*/", "* /"));
        out.push_str(" */\n");
        return;
    }
    out.push_str(indent);
    out.push_str("/*\n");
    for line in lines {
        out.push_str(indent);
        out.push_str(" *");
        let line = line.trim_end();
        if !line.is_empty() {
            if !line.starts_with(' ') {
                out.push(' ');
            }
            out.push_str(&line.replace("*/", "* /"));
        }
        out.push('\n');
    }
    out.push_str(indent);
    out.push_str(" */\n");
}
