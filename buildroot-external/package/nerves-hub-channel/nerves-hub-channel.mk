################################################################################
#
# nerves-hub-channel
#
################################################################################

NERVES_HUB_CHANNEL_VERSION = 0.1.0
NERVES_HUB_CHANNEL_SOURCE = nerves-hub-channel-$(NERVES_HUB_CHANNEL_VERSION).tar.xz
# The tarball scripts/vendor-tarball.sh writes in the checkout this tree
# belongs to (docs/buildroot.md); give a release's URL on the make command
# line instead: make NERVES_HUB_CHANNEL_SITE=https://...
NERVES_HUB_CHANNEL_SITE = file://$(BR2_EXTERNAL_NERVES_HUB_CHANNEL_PATH)/../target/dist
# The project is Apache-2.0 (Cargo.toml); the crates linked in are
# Apache-2.0 or MIT, ring adds ISC and subtle BSD-3-Clause.
NERVES_HUB_CHANNEL_LICENSE = Apache-2.0, MIT, ISC, BSD-3-Clause
NERVES_HUB_CHANNEL_LICENSE_FILES = \
	VENDOR/tokio-1.54.1/LICENSE \
	VENDOR/ring-0.17.14/LICENSE \
	VENDOR/subtle-2.6.1/LICENSE
NERVES_HUB_CHANNEL_INSTALL_STAGING = YES

# A tarball made at any commit has no fixed hash; a release's goes into
# nerves-hub-channel.hash.
BR_NO_CHECK_HASH_FOR += $(NERVES_HUB_CHANNEL_SOURCE)

# The Rust core is built by cargo, run by the project's CMake: the
# cargo-package infrastructure's download step (a tarball with VENDOR/ is
# left as it is), its toolchain and its environment, with the
# cmake-package infrastructure on top.
NERVES_HUB_CHANNEL_DEPENDENCIES = host-rustc
NERVES_HUB_CHANNEL_DOWNLOAD_DEPENDENCIES = host-rustc
NERVES_HUB_CHANNEL_DOWNLOAD_POST_PROCESS = cargo
NERVES_HUB_CHANNEL_DL_ENV = $(PKG_CARGO_ENV)
NERVES_HUB_CHANNEL_BUILD_ENV = $(PKG_CARGO_ENV)
NERVES_HUB_CHANNEL_CONF_OPTS = \
	-DNHC_RUST_TARGET=$(RUSTC_TARGET_NAME) \
	-DNHC_CARGO_FLAGS=--offline \
	-DNHC_BUILD_TESTS=OFF \
	-DNHC_BUILD_EXAMPLES=OFF

$(eval $(cmake-package))
