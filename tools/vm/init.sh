#!/bin/busybox sh
# netplex vm lane: the guest's init, run by static busybox in two stages.
#
# Stage 1 (PID 1 in the initramfs): load the modules listed in /netplex.env, mount the
# host's root (9p, read-only) under an overlay whose upper layer is tmpfs, mount the API
# filesystems inside it, bind the guest kernel's modules to /lib/modules/KVER, then
# switch_root into it and run this same script again as stage 2.
# Stage 2 (PID 1 in the new root): run /run/netplex/job.sh, print the exit marker the host
# waits for on the serial console, and reboot (qemu runs with -no-reboot, so it exits).
# Any failure before the job starts reboots without a marker: the host reports the
# console tail. Nothing here writes to the host: the 9p share is read-only.
set -u

if [ "${1:-}" != stage2 ]; then
    bb=/bin/busybox
    fail() {
        echo "netplex-vm init: $*"
        $bb reboot -f
        exit 1
    }
    $bb mkdir -p /proc /sys /lower /rw /newroot
    $bb mount -t proc proc /proc
    $bb mount -t sysfs sysfs /sys
    . /netplex.env
    for module in $NETPLEX_MODULES; do
        $bb insmod "/modules/$module" || fail "cannot load module $module"
    done
    $bb mount -t 9p -o "ro,trans=virtio,version=9p2000.L,cache=$NETPLEX_9P_CACHE,msize=$NETPLEX_9P_MSIZE" \
        "$NETPLEX_9P_TAG" /lower || fail "cannot mount the host root over 9p"
    $bb mount -t tmpfs -o mode=0755 overlay-rw /rw || fail "cannot mount tmpfs"
    $bb mkdir -p /rw/upper /rw/work
    $bb mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
        || fail "cannot mount the overlay root"
    new=/newroot
    # The kernel's module helper runs the host's /sbin/modprobe inside the new root: show
    # it the guest kernel's modules, cached on the host and so visible through the share.
    # Bound first, before a tmpfs may cover the cache's path (/tmp).
    $bb mkdir -p "$new/lib/modules/$NETPLEX_KVER"
    $bb mount --bind "$new$NETPLEX_MODULE_TREE" "$new/lib/modules/$NETPLEX_KVER" \
        || fail "cannot bind the kernel modules from $NETPLEX_MODULE_TREE"
    $bb mount -t proc proc $new/proc || fail "cannot mount /proc"
    $bb mount -t sysfs sysfs $new/sys || fail "cannot mount /sys"
    $bb mount -t devtmpfs devtmpfs $new/dev || fail "cannot mount /dev"
    $bb mkdir -p $new/dev/pts $new/dev/shm
    $bb mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts $new/dev/pts || fail "cannot mount /dev/pts"
    $bb mount -t tmpfs -o mode=1777 shm $new/dev/shm || fail "cannot mount /dev/shm"
    $bb mount -t tmpfs -o mode=0755 run $new/run || fail "cannot mount /run"
    if [ "$NETPLEX_TMPFS_TMP" = 1 ]; then
        $bb mount -t tmpfs -o mode=1777 tmp $new/tmp || fail "cannot mount /tmp"
    fi
    $bb mkdir -p $new/run/netplex
    $bb cp /bin/busybox /init /netplex.env /job.sh $new/run/netplex/ || fail "cannot stage the job"
    $bb umount /proc /sys
    exec $bb switch_root $new /run/netplex/busybox sh /run/netplex/init stage2
fi

bb=/run/netplex/busybox
. /run/netplex/netplex.env
$bb hostname netplex-vm
$bb ip link set lo up
$bb stty -onlcr </dev/console  # pass the job's "\n" through as is
echo "NETPLEX-VM-START-$NETPLEX_NONCE"
$bb sh /run/netplex/job.sh </dev/null
status=$?
echo "NETPLEX-VM-EXIT-$NETPLEX_NONCE=$status"
$bb stty -onlcr </dev/console  # tcsetattr(TCSADRAIN): wait until the marker is on the wire
$bb reboot -f
