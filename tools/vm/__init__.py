"""The vm test lane: run a command as root under Debian's stock kernel in QEMU (see `run`).

Standard library only, so it works before and outside the project's virtualenv. Modules:
`run` (the CLI), `kernel` (fetch and cache), `vmlinux` and `elf` (fast PVH boot),
`initramfs` with `init.sh`, `modules` and `cpio` (the guest's first userspace), `qemu`
(the command line) and `console` (the job's output and exit status on the serial line).
"""
