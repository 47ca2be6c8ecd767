//! The C ABI is the same on every target: for every struct and enum of the
//! public header, `sizeof`, alignment, and each field's offset and size as a
//! C compiler for the target sees them (a table build.rs compiles against
//! the header) equal what the Rust definitions give. Runs on the host in
//! the normal suite and on each cross target under qemu
//! (scripts/cross-test.sh), where 32-bit `size_t`, pointers and 64-bit
//! alignment differ.

use std::ffi::{c_char, CStr};

include!(concat!(env!("OUT_DIR"), "/abi_layout.rs"));

#[repr(C)]
struct Entry {
    type_name: *const c_char,
    field: *const c_char,
    a: usize,
    b: usize,
}

#[link(name = "nhc_abi_layout", kind = "static")]
extern "C" {
    static NHC_ABI_LAYOUT_C: [Entry; 0];
    static NHC_ABI_LAYOUT_C_LEN: usize;
}

fn abi_layout_c() -> Vec<(String, String, usize, usize)> {
    // SAFETY: the C table has NHC_ABI_LAYOUT_C_LEN entries of static,
    // NUL-terminated strings; it is never written.
    unsafe {
        let len = NHC_ABI_LAYOUT_C_LEN;
        let table =
            std::slice::from_raw_parts(std::ptr::addr_of!(NHC_ABI_LAYOUT_C).cast::<Entry>(), len);
        table
            .iter()
            .map(|e| {
                let name = CStr::from_ptr(e.type_name).to_string_lossy().into_owned();
                let field = CStr::from_ptr(e.field).to_string_lossy().into_owned();
                (name, field, e.a, e.b)
            })
            .collect()
    }
}

#[test]
fn c_and_rust_layouts_match() {
    let c = abi_layout_c();
    let rust = abi_layout_rust();
    assert_eq!(c.len(), rust.len(), "the two tables list different items");
    let structs = rust.iter().filter(|r| r.1.is_empty()).count();
    assert!(
        structs >= 25,
        "only {structs} structs and enums found in the header"
    );
    let mut mismatches = Vec::new();
    for (c, r) in c.iter().zip(&rust) {
        assert_eq!(
            (c.0.as_str(), c.1.as_str()),
            (r.0, r.1),
            "tables out of order"
        );
        let what = if r.1.is_empty() {
            "size, align"
        } else {
            "offset, size"
        };
        println!("{}.{}: {what} {} {}", r.0, r.1, r.2, r.3);
        if (c.2, c.3) != (r.2, r.3) {
            mismatches.push(format!(
                "{}{}{}: C ({what}) = ({}, {}), Rust = ({}, {})",
                r.0,
                if r.1.is_empty() { "" } else { "." },
                r.1,
                c.2,
                c.3,
                r.2,
                r.3
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "C and Rust layouts differ on {}:\n{}",
        std::env::consts::ARCH,
        mismatches.join("\n")
    );
}
