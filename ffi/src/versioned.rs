//! Option structs versioned by their leading `struct_size`: fields are only
//! appended, a program compiled against an older header passes a smaller
//! size, and the library fills in defaults for what that program lacks.

use std::mem::size_of;

use crate::error::{invalid, FfiResult};

/// Writes `defaults` into the caller's struct of `struct_size` bytes, whose
/// first field is a `usize` struct_size.
///
/// # Safety
/// `dst` is NULL or points to `struct_size` writable bytes; `T` is a
/// `repr(C)` struct starting with `struct_size: usize`.
pub(crate) unsafe fn init<T>(
    dst: *mut T,
    struct_size: usize,
    v1_size: usize,
    defaults: T,
    name: &str,
) -> FfiResult {
    if dst.is_null() {
        return Err(invalid("opts is NULL"));
    }
    if struct_size < v1_size {
        return Err(invalid(format!(
            "struct_size {struct_size} is smaller than {name} ({v1_size})"
        )));
    }
    let ours = size_of::<T>();
    let mut d = std::mem::ManuallyDrop::new(defaults);
    // The first field is the size, as this program knows it.
    // SAFETY: `d` is a live `T` whose first field is a `usize` (the caller's contract on `T`).
    unsafe {
        std::ptr::write_unaligned((&mut *d as *mut T).cast::<usize>(), struct_size.min(ours))
    };
    let out = dst.cast::<u8>();
    // SAFETY: `dst` is not NULL and has `struct_size` writable bytes (the caller's contract); at
    // most `size_of::<T>()` bytes are read from `d`.
    unsafe {
        std::ptr::copy_nonoverlapping((&*d as *const T).cast::<u8>(), out, ours.min(struct_size))
    };
    if struct_size > ours {
        // Fields of a newer header: zero is their default by design.
        // SAFETY: `out + ours .. out + struct_size` lies within the caller's `struct_size` writable
        // bytes.
        unsafe { std::ptr::write_bytes(out.add(ours), 0, struct_size - ours) };
    }
    Ok(())
}

/// A copy of the caller's struct as this library version knows it.
///
/// # Safety
/// `src` points to a struct whose `struct_size` bytes are readable; `T` as for `init`.
pub(crate) unsafe fn read<T>(
    src: *const T,
    v1_size: usize,
    defaults: T,
    name: &str,
) -> FfiResult<T> {
    // SAFETY: `src` points to a readable struct that starts with its `usize` size (the caller's
    // contract).
    let size = unsafe { std::ptr::read_unaligned(src.cast::<usize>()) };
    if size < v1_size {
        return Err(invalid(format!(
            "the {name} were not initialised with its _default macro (struct_size is wrong)"
        )));
    }
    let mut d = defaults;
    let n = size.min(size_of::<T>());
    // SAFETY: `src` has `size` readable bytes and `d` has `size_of::<T>()`; `n` is the smaller.
    // Every field type of `T` is valid for any bit pattern the caller may leave (integers,
    // pointers, `CBool`, `Option<fn>`), so the copy makes a valid `T`.
    unsafe { std::ptr::copy_nonoverlapping(src.cast::<u8>(), (&mut d as *mut T).cast::<u8>(), n) };
    Ok(d)
}
