SUMMARY = "NervesHub device agent (nhc agent)"
DESCRIPTION = "nhc connects the device to NervesHub, applies firmware updates \
               with fwup and serves the console; run as a systemd service configured by \
               /etc/nerves-hub/agent.toml."
SECTION = "net"

require nerves-hub-channel.inc

# The agent is the nhc binary of the same source; it links the Rust core
# statically and needs no libnerves_hub_channel at run time.
inherit cargo systemd

SYSTEMD_SERVICE:${PN} = "nerves-hub-agent.service"
# Starts at boot. The installed agent.toml is the commented example: the
# image gives the board its own (docs/yocto.md); ExecStartPre checks it and
# a bad configuration stops the unit instead of restarting it.
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_compile () {
    oe_cargo_build -p nhc-cli
}

do_install () {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/nhc ${D}${bindir}/nhc
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/examples/agent/nerves-hub-agent.service ${D}${systemd_system_unitdir}/
    sed -i -e 's,/usr/bin/,${bindir}/,g' -e 's,/etc/,${sysconfdir}/,g' \
        ${D}${systemd_system_unitdir}/nerves-hub-agent.service
    # The configuration holds the server, identity and secrets: root only.
    install -d -m 0700 ${D}${sysconfdir}/nerves-hub
    install -m 0600 ${S}/examples/agent/agent.toml ${D}${sysconfdir}/nerves-hub/agent.toml
}

CONFFILES:${PN} = "${sysconfdir}/nerves-hub/agent.toml"
# fwup applies the firmware the agent downloads (the default sink).
RRECOMMENDS:${PN} = "fwup"
