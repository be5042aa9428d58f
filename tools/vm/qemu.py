"""The qemu command line: a q35 machine with a serial console and the host's "/" over 9p.

KVM only when a real kvm_intel/kvm_amd module is loaded: a nested paravirtual /dev/kvm
(kvm_pvm) cannot run a stock kernel, so anything else gets TCG. No disk. `nics` adds
virtio-net PCI NICs (the NFV tests' real devices) at fixed PCI slots (`NIC_SLOT` on),
all plugged into one QEMU-internal hub and nothing else: no user/slirp, tap or socket
backend, so they reach each other and nothing outside the guest. The console goes to qemu's
stdout; `-no-reboot` turns the guest's `reboot -f` (and a panic, with `panic=-1`) into
qemu exiting.
"""

from __future__ import annotations

import os
from pathlib import Path

from tools.vm.initramfs import ROOT_TAG
from tools.vm.kernel import Kernel

KVM_MODULES = ("kvm_intel", "kvm_amd")
CMDLINE = (
    "console=ttyS0",
    "quiet",
    "loglevel=3",  # errors and worse only: keep the console for the job's output
    "panic=-1",  # a panic (init died) reboots at once, so qemu exits instead of hanging
    "random.trust_cpu=on",
    "mitigations=off",  # a throwaway guest; saves time under emulation
)
NIC_SLOT = 0x10  # the first extra NIC is 0000:00:10.0, the next 0000:00:11.0, ...
NIC_HUB = 0


def choose_accel(
    requested: str = "auto", *, sys_module: Path = Path("/sys/module"), kvm: Path = Path("/dev/kvm")
) -> str:
    """`kvm` or `tcg`: `auto` picks KVM only with a hardware KVM module and a usable /dev/kvm."""
    if requested != "auto":
        return requested
    hardware = any((sys_module / name).is_dir() for name in KVM_MODULES)
    return "kvm" if hardware and os.access(kvm, os.R_OK | os.W_OK) else "tcg"


def command(
    kernel: Kernel, initrd: Path, *, accel: str, memory: str, cpus: int, qemu: str = "qemu-system-x86_64",
    nics: int = 0,
) -> list[str]:
    """argv for qemu booting `kernel` with `initrd`, console on stdio, "/" shared read-only,
    and `nics` hub-only virtio-net NICs."""
    cpu = "host" if accel == "kvm" else "max"
    return [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-machine", f"q35,accel={accel}",
        "-cpu", cpu,
        "-smp", str(cpus),
        "-m", memory,
        "-display", "none",
        "-monitor", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", str(kernel.image),
        "-initrd", str(initrd),
        "-append", " ".join(CMDLINE),
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", f"virtio-9p-pci,fsdev=root,mount_tag={ROOT_TAG}",
        *nic_args(nics),
    ]  # fmt: skip


def nic_args(count: int) -> list[str]:
    """qemu arguments for `count` virtio-net NICs on the internal hub, at fixed slots."""
    args: list[str] = []
    for index in range(count):
        netdev = f"nic{index}"
        args += ["-netdev", f"hubport,id={netdev},hubid={NIC_HUB}"]
        mac = f"52:54:00:00:10:{index:02x}"
        args += ["-device", f"virtio-net-pci,netdev={netdev},mac={mac},addr={NIC_SLOT + index:#x}"]
    return args
