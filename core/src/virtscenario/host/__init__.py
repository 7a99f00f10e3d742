"""The host: its files (through a HostRoot, so --host-root works), its facts, its hypervisor."""
