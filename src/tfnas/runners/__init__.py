"""Latency runners: programs that time a model file on a device and print its latency as one
JSON line (the protocol of ``tfnas lut build --device external``, docs/latency-table.md)."""
