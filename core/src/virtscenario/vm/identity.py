"""What must stay stable across regenerations of one VM (kept in its vm.yaml): uuid, MACs,
the uuids of its disks' libvirt secrets."""

from __future__ import annotations

import os
from dataclasses import field

from ..records import Record, record


def new_uuid() -> str:
    """A random (version 4) UUID; ``os.urandom`` instead of the uuid module, whose import costs ~10 ms."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@record
class Identity(Record):
    uuid: str = ""
    macs: list[str] = field(default_factory=list)
    secret_uuids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls) -> Identity:
        return cls(uuid=new_uuid())

    def mac(self, index: int) -> str:
        while len(self.macs) <= index:
            # 52:54:00 is the prefix libvirt and QEMU use for KVM guests (locally administered range).
            self.macs.append("52:54:00:" + ":".join(f"{o:02x}" for o in os.urandom(3)))
        return self.macs[index]

    def secret_uuid(self, image_path: str) -> str:
        if image_path not in self.secret_uuids:
            self.secret_uuids[image_path] = new_uuid()
        return self.secret_uuids[image_path]
