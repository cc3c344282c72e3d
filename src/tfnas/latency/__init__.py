"""Latency lookup tables: measure a space's blocks on the device at hand, predict, check."""
