//! Gives the shared library the SONAME it is installed under. CMake renames
//! `libnerves_hub_channel_ffi.so` to `libnerves_hub_channel.so`; without this
//! the dynamic linker would look for the cargo file name at run time.
//!
//! On x86_64 Linux, where rustc links with its own LLD, it also orders the
//! library's code by use (`link/`): see `link_order`.
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
    link_order();
    abi_layout();
}

/// Puts the functions a device runs while connecting and idling first in
/// `.text`, in the order of `link/<target>.order` (made by
/// `scripts/link-order.sh`). The kernel maps a library's code in 64 KiB
/// blocks around each page touched, so code scattered over the whole file
/// makes all of it resident; packed together it stays a few blocks (issue
/// 18: idle RSS). Only where the linker is known to be LLD, which takes
/// `--symbol-ordering-file` (GNU ld refuses it): rustc's own on
/// x86_64-unknown-linux-gnu from 1.90, unless the build chooses a linker.
/// Symbols the file names but the build lacks (another rustc or Cargo.lock)
/// are skipped: a stale order costs the packing, never the build.
/// `NHC_LINK_ORDER=0` turns it off; `NHC_LINK_MAP=FILE` writes the link map
/// the script reads.
fn link_order() {
    println!("cargo:rerun-if-env-changed=NHC_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=NHC_LINK_MAP");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    // A linker named in the Cargo config (RUSTC_LINKER, e.g. a zig or
    // distribution wrapper) or in RUSTFLAGS may not be LLD.
    let chosen_linker = std::env::var_os("RUSTC_LINKER").is_some()
        || ["linker", "fuse-ld", "link-self-contained"]
            .iter()
            .any(|f| flags.contains(f));
    if target != "x86_64-unknown-linux-gnu"
        || chosen_linker
        || rustc_minor().is_none_or(|minor| minor < 90)
    {
        return;
    }
    if let Ok(map) = std::env::var("NHC_LINK_MAP") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-Map={map}");
    }
    if std::env::var("NHC_LINK_ORDER").is_ok_and(|v| v == "0") {
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let order = manifest.join("link").join(format!("{target}.order"));
    println!("cargo:rerun-if-changed={}", order.display());
    if order.is_file() {
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-cdylib-link-arg=-Wl,--no-warn-symbol-ordering");
    }
}

/// The minor version of the compiler building us (`rustc 1.95.0 ...`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
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
