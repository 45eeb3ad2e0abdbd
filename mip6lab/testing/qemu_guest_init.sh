#!/bin/bash
# mip6lab QEMU guest, stage 2: PID 1 on the host's root (read-only 9p), run by stage 1
# from the job directory, which mip6lab.testing.qemu_kernel fills before the boot:
#
#   /run/mip6lab/config.sh   variables from the host (modules root, extra shares)
#   /run/mip6lab/env.sh      the environment of the user's script (export lines)
#   /run/mip6lab/script.sh   the user's script, run with bash
#
# and reads back after the power-off:
#
#   /run/mip6lab/output      the script's stdout and stderr, merged
#   /run/mip6lab/status      its exit status (written last, only when the script ended)
#   /run/mip6lab/started     guest uptime (s) when the script started
#   /run/mip6lab/out/        files the script left for the host ($MIP6LAB_OUT)
JOB=/run/mip6lab
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

power_off() {
    sync
    echo o > /proc/sysrq-trigger
    sleep 30
    exit 1  # init exiting panics; with panic=-1 and -no-reboot QEMU exits anyway
}

log() { echo "mip6lab-stage2: $*" > /dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null || true
ln -sf /proc/self/fd /dev/fd 2>/dev/null
ln -sf /proc/self/fd/0 /dev/stdin 2>/dev/null
ln -sf /proc/self/fd/1 /dev/stdout 2>/dev/null
ln -sf /proc/self/fd/2 /dev/stderr 2>/dev/null

# shellcheck source=/dev/null
. "$JOB/config.sh" || { log "cannot read config.sh"; power_off; }

# Extra host directories (those under /tmp or /run, which the fresh tmpfs hides),
# each shared read-only at its own path: lines "tag<TAB>path" in shares.
if [ -s "$JOB/shares" ]; then
    while IFS=$'\t' read -r tag path; do
        [ -n "$tag" ] || continue
        mkdir -p "$path"
        mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro" \
            "$tag" "$path" || { log "cannot mount share $tag on $path"; power_off; }
    done < "$JOB/shares"
fi

# modprobe for the unpacked kernel package: the host has no /lib/modules/<version>, and
# its root is read-only here, so a wrapper passes --dirname. It serves both the kernel's
# own requests (/proc/sys/kernel/modprobe: xfrm_user, esp6, gcm, ... load on demand)
# and the script's (first on PATH).
mkdir -p /run/mip6lab-bin
cat > /run/mip6lab-bin/modprobe <<EOF
#!/bin/sh
exec /sbin/modprobe --dirname "$MIP6LAB_MODULES_ROOT" "\$@"
EOF
chmod 755 /run/mip6lab-bin/modprobe
echo /run/mip6lab-bin/modprobe > /proc/sys/kernel/modprobe

# Network cards (KernelVM(nics=N)): virtio-net, eth0..eth<N-1>, host end a unix socket.
# Without udev nothing loads the driver for the PCI devices, so load it here.
if [ "${MIP6LAB_NICS:-0}" -gt 0 ]; then
    /run/mip6lab-bin/modprobe virtio_net || { log "cannot load virtio_net"; power_off; }
fi

ip link set lo up 2>/dev/null || true
hostname mip6lab-vm 2>/dev/null || true
mkdir -p "$JOB/out"
read -r uptime _ < /proc/uptime
echo "$uptime" > "$JOB/started"

(
    export PATH=/run/mip6lab-bin:$PATH
    export HOME=/root TERM=dumb
    export MIP6LAB_JOB=$JOB MIP6LAB_OUT=$JOB/out
    # shellcheck source=/dev/null
    . "$JOB/env.sh"
    cd /tmp || exit 125
    exec /bin/bash "$JOB/script.sh"
) < /dev/null > "$JOB/output" 2>&1
status=$?
echo "$status" > "$JOB/status.part" && mv "$JOB/status.part" "$JOB/status"
power_off
