SUMMARY = "NervesHub device client: C library"
DESCRIPTION = "libnerves_hub_channel connects a device to NervesHub over Phoenix \
               channels: firmware updates, console and extensions. A Rust core behind a C ABI; \
               installs the header, the shared and static library, a pkg-config file and a CMake package."
SECTION = "libs"

require nerves-hub-channel.inc

# cargo builds the library (the cargo class: Yocto's rust, target and
# linker); CMake installs it from NHC_PREBUILT_DIR without running cargo
# (docs/c.md), so that the header, .pc and CMake package are the project's.
inherit cargo cmake

EXTRA_OECMAKE = "-DNHC_PREBUILT_DIR=${B}/target/${CARGO_TARGET_SUBDIR} \
                 -DNHC_BUILD_TESTS=OFF \
                 -DNHC_BUILD_EXAMPLES=OFF"

# Shell: two bare function names also parse as Python, which misleads the
# linter's heuristic.
# nooelint: oelint.task.pythonprefix
do_configure () {
    cargo_common_do_configure
    cmake_do_configure
}

do_compile () {
    oe_cargo_build -p nerves_hub_channel_ffi
    cmake_do_compile
}

do_install () {
    cmake_do_install
}

# Packages by the defaults: the versioned .so in ${PN}; header, .so link,
# .pc and CMake package in -dev; the .a in -staticdev.
