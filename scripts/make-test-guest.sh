#!/usr/bin/env bash
# Builds a tiny bootable guest for the tests that need a VM that really boots and talks on the
# network: a BIOS-bootable hybrid ISO (a raw disk image too) holding Debian's kernel and an
# initramfs of busybox and dropbear. Its init does what cloud-init would do for these tests:
#   - loads the virtio, SATA and ISO 9660 modules, brings eth0 up with DHCP (udhcpc);
#   - mounts the NoCloud seed (volume label `cidata`), copies every SSH public key in its
#     user-data to /root/.ssh/authorized_keys and sets the hostname from its meta-data;
#   - prints `quantix-guest: ready <address>` on the serial console and runs dropbear on port 22.
# Everything comes from Debian packages on this machine (scripts/test-packages.txt lists them):
# linux-image-amd64, busybox-static, dropbear-bin, isolinux, syslinux-common, xorriso, cpio.
#   bash scripts/make-test-guest.sh OUT.img
set -euo pipefail

out=${1:?usage: make-test-guest.sh OUT.img}
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
[ -n "$kernel" ] || { echo 'make-test-guest: no kernel in /boot (install linux-image-amd64)' >&2; exit 1; }
version=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$version
for needed in /bin/busybox /usr/sbin/dropbear /usr/lib/ISOLINUX/isolinux.bin /usr/lib/ISOLINUX/isohdpfx.bin \
  /usr/lib/syslinux/modules/bios/ldlinux.c32 "$modules/modules.dep"; do
  [ -e "$needed" ] || { echo "make-test-guest: $needed is missing (see scripts/test-packages.txt)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
root=$work/initramfs
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,mnt/seed,root,run,var/log,usr/share/udhcpc} "$root$modules"

cp /bin/busybox "$root/bin/busybox"
cp /usr/sbin/dropbear "$root/sbin/dropbear"
# dropbear is linked dynamically: its libraries and the loader go along.
for lib in $(ldd /usr/sbin/dropbear | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# The modules for virtio NICs and disks, the SATA CD-ROM holding the seed, and ISO 9660, with
# what they depend on (from modules.dep).
wanted='virtio_pci virtio_net virtio_blk ahci sr_mod isofs'
declare -A picked=()
pick() {
  local name=$1 line path dep
  line=$(grep -E "/${name}\.ko(\.[a-z]+)?:" "$modules/modules.dep" | head -1) || true
  [ -n "$line" ] || return 0
  path=${line%%:*}
  [ -z "${picked[$path]:-}" ] || return 0
  picked[$path]=1
  for dep in ${line#*:}; do pick "$(basename "${dep%%.ko*}")"; done
}
for name in $wanted; do pick "$name"; done
: >"$root$modules/modules.dep"
for path in "${!picked[@]}"; do
  mkdir -p "$root$modules/$(dirname "$path")"
  cp "$modules/$path" "$root$modules/$path"
  grep -E "^${path}:" "$modules/modules.dep" >>"$root$modules/modules.dep"
done

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '/bin/sh\n' >"$root/etc/shells"

cat >"$root/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/sh
# udhcpc's hook: configure the interface from the lease.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for gw in $router; do ip route add default via "$gw" dev "$interface"; break; done
    echo "$ip" >/run/address ;;
esac
exit 0
SCRIPT
chmod 755 "$root/usr/share/udhcpc/default.script"

cat >"$root/init" <<'SCRIPT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
for module in virtio_pci virtio_net virtio_blk ahci sr_mod isofs; do modprobe "$module"; done
ip link set lo up
for _ in $(seq 1 50); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
# The NoCloud seed: the CD-ROM labelled cidata.
for _ in $(seq 1 50); do
  for dev in /dev/sr*; do
    [ -b "$dev" ] && mount -t iso9660 -o ro "$dev" /mnt/seed 2>/dev/null && [ -f /mnt/seed/user-data ] && break 2
    umount /mnt/seed 2>/dev/null
  done
  sleep 0.1
done
mkdir -p /root/.ssh
chmod 700 /root /root/.ssh
if [ -f /mnt/seed/user-data ]; then
  # Quantix writes its user-data as JSON (which is YAML): every key is a quoted string.
  grep -o '"\(ssh-\|ecdsa-\|sk-\)[^"]*"' /mnt/seed/user-data | tr -d '"' >/root/.ssh/authorized_keys
  name=$(grep -o '"local-hostname": *"[^"]*"' /mnt/seed/meta-data | sed 's/.*: *"\(.*\)"/\1/')
  [ -n "$name" ] && hostname "$name"
  echo "quantix-guest: $(wc -l </root/.ssh/authorized_keys) ssh keys from the seed"
else
  echo 'quantix-guest: no NoCloud seed found'
fi
chmod 600 /root/.ssh/authorized_keys 2>/dev/null
udhcpc -i eth0 -t 20 -T 1 -b -s /usr/share/udhcpc/default.script
mkdir -p /etc/dropbear
dropbear -R -E -p 22
echo "quantix-guest: ready $(cat /run/address 2>/dev/null)"
# A guest named fill-disk-*: writes 48 MiB to its disk, for a test of a pool that runs out of room
# (QEMU pauses the guest until there is room; the write then ends).
case "$(hostname)" in
  fill-disk*) dd if=/dev/zero of=/dev/vda bs=1M seek=256 count=48 2>/dev/null && sync && echo 'quantix-guest: wrote 48 MiB to its disk' ;;
esac
while true; do sleep 3600; done
SCRIPT
chmod 755 "$root/init"

iso=$work/iso
mkdir -p "$iso/isolinux"
cp "$kernel" "$iso/vmlinuz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$iso/initrd.gz"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cat >"$iso/isolinux/isolinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT guest
TIMEOUT 1
PROMPT 0
LABEL guest
  KERNEL /vmlinuz
  APPEND initrd=/initrd.gz console=ttyS0 quiet panic=5
CFG
# A hybrid ISO: bootable as a CD and, through its MBR, as a hard disk (how Quantix attaches a
# cloud image's overlay). Under the nested KVM of the test machines ISOLINUX stops with "KVM
# internal error: emulation failure" (so does OVMF, and GRUB takes minutes to read the kernel):
# the test runs this guest under TCG, where it boots in about 30 s.
xorriso -as mkisofs -quiet -V QUANTIX_GUEST -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  -o "$out.partial" "$iso"
mv -- "$out.partial" "$out"
