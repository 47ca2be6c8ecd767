include $(sort $(wildcard $(BR2_EXTERNAL_NERVES_HUB_CHANNEL_PATH)/package/*/*.mk))
