//! The `bool` fields of the option structs, read as the byte they are.
//!
//! C code stores 0 or 1 there, but a caller in another language (ctypes,
//! Go, Zig) or a `memset` may leave any byte, and a Rust `bool` holding
//! another value is undefined behaviour as soon as the struct is copied.
//! The header still says `bool` (cbindgen.toml renames this type), with the
//! same size and alignment, so C users see no change.

/// A C `bool` as its byte: any nonzero byte is true.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CBool(u8);

impl CBool {
    pub(crate) const FALSE: CBool = CBool(0);

    pub(crate) fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for CBool {
    fn from(b: bool) -> CBool {
        CBool(u8::from(b))
    }
}

const _: () = assert!(
    std::mem::size_of::<CBool>() == std::mem::size_of::<bool>()
        && std::mem::align_of::<CBool>() == std::mem::align_of::<bool>()
);
