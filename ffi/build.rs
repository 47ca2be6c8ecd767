//! Gives the shared library the SONAME it is installed under. CMake renames
//! `libnerves_hub_channel_ffi.so` to `libnerves_hub_channel.so`; without this
//! the dynamic linker would look for the cargo file name at run time.

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
}
