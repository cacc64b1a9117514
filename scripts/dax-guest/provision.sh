#!/bin/bash
# Runs in the guest before the job: loads the nvdimm modules and finds on NVDIMM i the namespace
# of the i-th mode in DAX_NAMESPACES. NVDIMM i is the region with the i-th lowest address (QEMU
# places them in command-line order; the kernel numbers regions in the order it probes them). The images are copies of provisioned templates,
# so the kernel finds the namespaces on the media; this checks each filesystem (a power cut
# leaves its journal to replay) and mounts it. DAX_FRESH=1 (zeroed images: the templates
# themselves) creates the namespaces and the filesystems first. DAX_VIRTIO=1 also loads
# virtio_pmem for the virtio-pmem device and makes it a device DAX.
# Writes what it set up to /run/dax-guest/env for the job:
#   DAX_FSDAX_DIR  the DAX mount (/mnt/pmem)    DAX_FSDAX_DEV  its block device
#   DAX_DEVDAX     the device DAX               DAX_EADR       1 if every region is cpu_cache
#   DAX_PAGECACHE_DIR  ext4 without DAX on a raw namespace (the page cache, for controls)
#   DAX_VIRTIO_REGION  the virtio-pmem device's region (regionN)
#   DAX_VIRTIO_DEVDAX  the device DAX on it
set -euo pipefail
# libkmod reads the module indexes once per lookup, and libndctl (libpmem2's device DAX
# queries) looks up every device it visits: serve the indexes from memory rather than over 9p,
# with the modules themselves still on the host.
modules=/lib/modules/$(uname -r)
mkdir -p /run/dax-guest/modules
mount --bind "$modules" /run/dax-guest/modules
mount -t tmpfs -o mode=755 tmpfs "$modules"
cp /run/dax-guest/modules/modules.* "$modules/"
for f in /run/dax-guest/modules/*; do
  [ -e "$modules/${f##*/}" ] || ln -s "$f" "$modules/"
done
modprobe --ignore-install -a libnvdimm nfit nd_pmem dax_pmem device_dax ext4
env=/run/dax-guest/env
: > "$env"
IFS=, read -ra kinds <<< "$DAX_NAMESPACES"

wait_for() { # the kernel probes namespaces asynchronously
  for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "provision: $1 did not appear" >&2
  return 1
}

filesystem() { # DEVICE MOUNTPOINT DAX-OPTION
  wait_for "$1"
  if [ "$DAX_FRESH" = 1 ]; then
    mkfs.ext4 -q -F -b 4096 "$1"
  else
    local rc=0
    e2fsck -p "$1" || rc=$?
    if [ "$rc" -gt 1 ]; then
      echo "provision: e2fsck $1 exited with $rc" >&2
      exit 1
    fi
  fi
  mkdir -p "$2"
  mount -o "$3" "$1" "$2"
}

regions=()
for _ in $(seq 100); do
  regions=(/sys/bus/nd/devices/region*)
  [ -e "${regions[0]}" ] && [ ${#regions[@]} -ge ${#kinds[@]} ] && break
  sleep 0.1
done
if [ ! -e "${regions[0]}" ] || [ ${#regions[@]} -ne ${#kinds[@]} ]; then
  echo "provision: ${#kinds[@]} NVDIMM regions expected, found: ${regions[*]}" >&2
  exit 1
fi
# Region numbers by address.
ids=($(for r in "${regions[@]}"; do
  echo "$(($(cat "$r/resource"))) ${r##*/region}"
done | sort -n | cut -d' ' -f2))

for k in "${!kinds[@]}"; do
  kind=${kinds[$k]}
  i=${ids[$k]}
  if [ "$DAX_FRESH" = 1 ]; then
    ndctl create-namespace --force --reconfig="namespace$i.0" --mode="$kind" > /dev/null
  fi
  case $kind in
    fsdax)
      filesystem "/dev/pmem$i" /mnt/pmem dax=always
      echo "export DAX_FSDAX_DIR=/mnt/pmem DAX_FSDAX_DEV=/dev/pmem$i" >> "$env"
      ;;
    raw)
      filesystem "/dev/pmem$i" /mnt/pagecache dax=never
      echo "export DAX_PAGECACHE_DIR=/mnt/pagecache" >> "$env"
      ;;
    devdax)
      dev=/dev/dax$i.0
      wait_for "$dev"
      echo "export DAX_DEVDAX=$dev" >> "$env"
      ;;
    *)
      echo "provision: unknown namespace mode $kind" >&2
      exit 1
      ;;
  esac
done
if [ "${DAX_VIRTIO:-0}" = 1 ]; then
  # After the NVDIMM regions, so that those keep the numbers 0..n-1.
  modprobe --ignore-install virtio_pmem
  region=
  for _ in $(seq 100); do
    for r in /sys/bus/nd/devices/region*; do
      [ "$(cat "$(dirname "$(readlink -f "$r")")/provider")" = virtio-pmem ] && region=$(basename "$r")
    done
    [ -n "$region" ] && break
    sleep 0.1
  done
  [ -n "$region" ] || { echo "provision: no virtio-pmem region" >&2; exit 1; }
  # A device DAX on it (the image is new for every guest that has one).
  n=${region#region}
  ndctl create-namespace --force --reconfig="namespace$n.0" --mode=devdax > /dev/null
  wait_for "/dev/dax$n.0"
  echo "export DAX_VIRTIO_REGION=$region DAX_VIRTIO_DEVDAX=/dev/dax$n.0" >> "$env"
fi
# eADR as libpmem2 sees it: every region's persistence_domain reads cpu_cache (the attribute
# is absent when the platform reports no domain, as QEMU does without nvdimm-persistence).
eadr=1
for r in /sys/bus/nd/devices/region*; do
  [ "$(cat "$r/persistence_domain" 2>/dev/null)" = cpu_cache ] || eadr=0
done
echo "export DAX_EADR=$eadr" >> "$env"
