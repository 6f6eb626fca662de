"""Contract tests: the emulator against Microsoft's published REST API examples, via the SDKs."""
