#!/usr/bin/env bash
# Installs what netplex's demo and tests need on a fresh Debian machine:
# system tools (as root, only when missing) and a virtualenv with the package.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."

need=()
command -v nft >/dev/null || need+=(nftables)
command -v ping >/dev/null || need+=(iputils-ping)
command -v ip >/dev/null || need+=(iproute2)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v depmod >/dev/null || need+=(kmod)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v podman >/dev/null || need+=(podman)
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
command -v nsenter >/dev/null || need+=(util-linux)
command -v stress-ng >/dev/null || need+=(stress-ng)  # the suite under load (issue 12)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "setup: missing ${need[*]} (run as root to install them); continuing" >&2
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
