#!/usr/bin/env bash
# What `make iso-test` needs: qemu (x86, TCG), the OVMF UEFI firmware, mkfs.fat for the
# test disks. Installed when missing and running as root; otherwise a clear error.
set -euo pipefail
PKGS=(qemu-system-x86 ovmf dosfstools)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "make iso-test needs the Debian packages: ${missing[*]} (install them as root)" >&2
	exit 1
fi
echo "installing Debian packages for the boot test: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
