//! Gives the shared library the SONAME it is installed under. CMake renames
//! `libnerves_hub_channel_ffi.so` to `libnerves_hub_channel.so`; without this
//! the dynamic linker would look for the cargo file name at run time.
//!
//! Also builds the C half of the ABI layout test (abi_layout_gen.rs): a
//! table compiled by the target's C compiler against the public header. Only
//! the unit test links it (ffi/src/abi_layout.rs), so the shipped libraries
//! do not contain it.

#[path = "abi_layout_gen.rs"]
mod abi_layout_gen;

use std::path::PathBuf;

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnerves_hub_channel.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=abi_layout_gen.rs");
    abi_layout();
}

fn abi_layout() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let include = manifest.join("../include");
    let header = include.join("nerves_hub_channel.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", header.display()));
    let items =
        abi_layout_gen::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let c_file = out.join("abi_layout.c");
    std::fs::write(&c_file, abi_layout_gen::c_source(&items)).expect("write abi_layout.c");
    std::fs::write(
        out.join("abi_layout.rs"),
        abi_layout_gen::rust_source(&items),
    )
    .expect("write abi_layout.rs");
    cc::Build::new()
        .file(&c_file)
        .include(&include)
        .std("c11")
        .cargo_metadata(false)
        .compile("nhc_abi_layout");
    println!("cargo:rustc-link-search=native={}", out.display());
}
