################################################################################
#
# nerves-hub-channel-agent
#
################################################################################

# The nhc binary of the nerves-hub-channel source: keep the version and
# source in sync with package/nerves-hub-channel.
NERVES_HUB_CHANNEL_AGENT_VERSION = 0.1.0
NERVES_HUB_CHANNEL_AGENT_SOURCE = nerves-hub-channel-$(NERVES_HUB_CHANNEL_AGENT_VERSION).tar.xz
NERVES_HUB_CHANNEL_AGENT_SITE = file://$(BR2_EXTERNAL_NERVES_HUB_CHANNEL_PATH)/../target/dist
NERVES_HUB_CHANNEL_AGENT_DL_SUBDIR = nerves-hub-channel
NERVES_HUB_CHANNEL_AGENT_LICENSE = Apache-2.0, MIT, ISC, BSD-3-Clause
NERVES_HUB_CHANNEL_AGENT_LICENSE_FILES = \
	VENDOR/tokio-1.54.1/LICENSE \
	VENDOR/ring-0.17.14/LICENSE \
	VENDOR/subtle-2.6.1/LICENSE

BR_NO_CHECK_HASH_FOR += $(NERVES_HUB_CHANNEL_AGENT_SOURCE)

# The workspace's root package is the library: build the CLI package.
NERVES_HUB_CHANNEL_AGENT_CARGO_BUILD_OPTS = -p nhc-cli
NERVES_HUB_CHANNEL_AGENT_PROFILE_DIR = $(if $(BR2_ENABLE_DEBUG),debug,release)

# cargo install would look for binaries in the root package: copy nhc.
# The example configuration holds the server, identity and secrets:
# root only (a rootfs overlay replaces it with the board's).
define NERVES_HUB_CHANNEL_AGENT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(NERVES_HUB_CHANNEL_AGENT_PROFILE_DIR)/nhc \
		$(TARGET_DIR)/usr/bin/nhc
	$(INSTALL) -D -m 0600 $(@D)/examples/agent/agent.toml \
		$(TARGET_DIR)/etc/nerves-hub/agent.toml
endef

define NERVES_HUB_CHANNEL_AGENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/examples/agent/nerves-hub-agent.service \
		$(TARGET_DIR)/usr/lib/systemd/system/nerves-hub-agent.service
endef

$(eval $(cargo-package))
