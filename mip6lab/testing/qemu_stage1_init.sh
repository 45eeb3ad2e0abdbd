#!/bin/sh
# mip6lab QEMU guest, stage 1: the /init of the small initramfs that
# mip6lab.testing.qemu_kernel builds (busybox-static + the few modules below).
#
# Debian's kernel has virtio-pci and 9p as modules, so the host's root cannot be the
# kernel's root= directly. This stage loads them, mounts the host's / read-only over 9p
# (tag "hostroot"), puts fresh tmpfs on /tmp and /run, mounts the per-run job directory
# (tag "job", writable) on /run/mip6lab and hands over to stage 2, a bash script from the
# job directory, as PID 1 of the new root. Any failure powers the VM off at once; the
# host then finds no status file and reports the console.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "mip6lab-stage1: FAILED: $*"
    echo o > /proc/sysrq-trigger
    sleep 10
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# One module file name per line, in dependency order (written by the host).
while read -r module; do
    [ -n "$module" ] || continue
    insmod "/lib/modules/$module" || fail "insmod $module"
done < /etc/mip6lab-modules

MSIZE=262144
mkdir -p /newroot
# cache=loose: the host's root is read-only for us and does not change during a run;
# caching makes reading the host's Python and its packages several times faster.
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE,cache=loose,ro" hostroot /newroot \
    || fail "mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=755 tmpfs /newroot/run || fail "tmpfs on /run"
mkdir -p /newroot/run/mip6lab
# The job directory: no cache, so the host sees the output as it is written.
mount -t 9p -o "trans=virtio,version=9p2000.L,msize=$MSIZE" job /newroot/run/mip6lab \
    || fail "mount the job directory (9p tag job)"
[ -r /newroot/run/mip6lab/stage2.sh ] || fail "no stage2.sh in the job directory"

mount --move /dev /newroot/dev || fail "move /dev"
umount /sys
umount /proc
exec switch_root /newroot /bin/bash /run/mip6lab/stage2.sh
