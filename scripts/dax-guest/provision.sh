#!/bin/bash
# Runs in the guest before the job: loads the nvdimm modules and gives NVDIMM i (region i) one
# namespace of the i-th mode in DAX_NAMESPACES. With DAX_FRESH=1 (new, zeroed images) it creates
# the namespaces and the ext4 filesystem; otherwise the kernel finds them on the media and this
# checks the filesystem (a power cut leaves its journal to replay) and mounts it with dax=always.
# Writes what it set up to /run/dax-guest/env for the job:
#   DAX_FSDAX_DIR  the DAX mount (/mnt/pmem)    DAX_FSDAX_DEV  its block device
#   DAX_DEVDAX     the device DAX               DAX_EADR       1 if every region is cpu_cache
#   DAX_PAGECACHE_DIR  ext4 without DAX on a raw namespace (the page cache, for controls)
set -euo pipefail
modprobe --ignore-install -a libnvdimm nfit nd_pmem dax_pmem device_dax ext4
mkdir -p /run/dax-guest
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

for i in "${!kinds[@]}"; do
  kind=${kinds[$i]}
  wait_for "/sys/bus/nd/devices/region$i"
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
# eADR as libpmem2 sees it: every region's persistence_domain reads cpu_cache (the attribute
# is absent when the platform reports no domain, as QEMU does without nvdimm-persistence).
eadr=1
for r in /sys/bus/nd/devices/region*; do
  [ "$(cat "$r/persistence_domain" 2>/dev/null)" = cpu_cache ] || eadr=0
done
echo "export DAX_EADR=$eadr" >> "$env"
