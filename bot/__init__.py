"""The 创业威海 founder assistant: app wiring, configuration, channels and the command line."""
