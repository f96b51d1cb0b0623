#!/usr/bin/env bash
# Build the OpenKCM Ceremony live ISO (Debian 12 bookworm, amd64, hybrid BIOS+UEFI,
# USB+optical) from a clean state, every time. Run as root: `make iso`.
#
#   iso_build/out/kcm-ceremony-<version>-amd64.iso           the image
#   iso_build/out/kcm-ceremony-<version>-amd64.iso.sha256    sha256sum format
#   iso_build/out/kcm-ceremony-<version>-amd64.packages.txt  Debian packages, exact versions
#   iso_build/out/kcm-ceremony-<version>-amd64.wheels.sha256 the wheelhouse, SHA-256 each
#   iso_build/out/kcm-ceremony-<version>-amd64.build-info.txt inputs (epoch, mirror, tools)
#
# Environment knobs:
#   SOURCE_DATE_EPOCH  fixed time for every timestamp (default: the commit time of HEAD)
#   KCM_MIRROR         Debian mirror (default http://deb.debian.org/debian); point it at a
#                      snapshot.debian.org date to rebuild bit-for-bit later
#   KCM_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
#   KCM_SKIP_APT=1     do not apt-get install the build tools
#   KCM_SRC=DIR        build the project from DIR (e.g. a `git archive` export) instead of
#                      the working tree
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="$HERE/build"
OUT="$HERE/out"
LB="$BUILD/lb"
T0=$(date +%s)

log() { printf '\n=== [kcm-iso %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'kcm-iso: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (live-build needs it): sudo make iso"

# --- build tools --------------------------------------------------------------------------
APT_DEPS=(live-build debootstrap xorriso squashfs-tools isolinux syslinux-common syslinux-utils
	grub-efi-amd64-bin grub-pc-bin mtools dosfstools python3 python3-venv rsync util-linux
	ca-certificates)
if [ "${KCM_SKIP_APT:-0}" != 1 ]; then
	missing=()
	for p in "${APT_DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing build tools: ${missing[*]}"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	fi
fi

# --- inputs -------------------------------------------------------------------------------
VERSION=$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")
NAME="kcm-ceremony-$VERSION-amd64"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 1767225600)
fi
export SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C.UTF-8 LANG=C.UTF-8
umask 022
MIRROR="${KCM_MIRROR:-http://deb.debian.org/debian}"
SECMIRROR="${KCM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# Everything the kernel command line carries (docs/iso.md explains each flag). The same
# list is in core/selftest.py (HARDENING_FLAGS) and tests/iso check they agree.
HARDENING="init_on_alloc=1 init_on_free=1 slab_nomerge page_alloc.shuffle=1 randomize_kstack_offset=on vsyscall=none lockdown=confidentiality ipv6.disable=1 secretmem.enable=1"
APPEND="boot=live nopersistence quiet loglevel=3 $HARDENING"

log "version $VERSION, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%F))"

# --- clean state --------------------------------------------------------------------------
# A build that was interrupted can leave /proc, /sys, /dev bind-mounted inside the chroot:
# unmount them before deleting anything (rm -rf through a /dev bind mount is a disaster).
if [ -d "$LB" ]; then
	log "lb clean --all (previous tree)"
	(cd "$LB" && lb clean --all) || true
	{ findmnt -rn -o TARGET | grep -F "$LB/" || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
	if findmnt -rn -o TARGET | grep -qF "$LB/"; then die "mounts remain under $LB"; fi
	rm -rf --one-file-system "$LB"
fi
rm -rf "$BUILD/wheelhouse" "$BUILD/src" "$BUILD/pyenv"
mkdir -p "$LB" "$OUT"
rm -f "$OUT/$NAME".*

# --- wheelhouse ---------------------------------------------------------------------------
# The project from the working tree (tracked and new files, not ignored ones), copied so the
# build never writes into the tree, then every dependency as a wheel. Nothing is fetched at
# run time and nothing inside the chroot: the venv is installed from these files only.
log "wheelhouse"
mkdir -p "$BUILD/src" "$BUILD/wheelhouse"
if [ -n "${KCM_SRC:-}" ]; then
	# An exported source tree (a release tag's `git archive`, or a frozen copy for a
	# reproducibility check) instead of the working tree.
	rsync -a --exclude .git --exclude .venv --exclude iso_build "$KCM_SRC/" "$BUILD/src/"
elif git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$ROOT" && git ls-files -z -co --exclude-standard) | \
		(cd "$ROOT" && rsync -a --from0 --files-from=- --no-links --ignore-missing-args ./ "$BUILD/src/")
	# keep only paths that exist (ls-files lists deleted files too); rsync already skipped them
else
	rsync -a --exclude .venv --exclude iso_build/build --exclude iso_build/out "$ROOT/" "$BUILD/src/"
fi
rm -rf "$BUILD/src/iso_build" "$BUILD/src/tests" "$BUILD/src"/*.egg-info
python3 -m venv "$BUILD/pyenv"
PIP=("$BUILD/pyenv/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade "pip>=24" "setuptools>=68" wheel
"${PIP[@]}" wheel --quiet --wheel-dir "$BUILD/wheelhouse" "$BUILD/src"
"${PIP[@]}" download --quiet --no-deps --only-binary=:all: --dest "$BUILD/wheelhouse" "pip>=24"
"$BUILD/pyenv/bin/python" - "$BUILD/wheelhouse" <<'PY'
import hashlib, pathlib, re, sys
wh = pathlib.Path(sys.argv[1])
lines = []
for whl in sorted(wh.glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    # pip is listed too: sqlite-utils depends on it (pip runs from its wheel to install).
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    lines.append(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version} --hash=sha256:{digest}")
(wh / "requirements.txt").write_text("\n".join(lines) + "\n")
PY
(cd "$BUILD/wheelhouse" && sha256sum ./*.whl | sed 's| \./| |') > "$OUT/$NAME.wheels.sha256"
ls "$BUILD/wheelhouse"

# --- live-build configuration -------------------------------------------------------------
log "lb config"
cd "$LB"
lb config \
	--mode debian --system live \
	--distribution bookworm --architectures amd64 \
	--archive-areas main --parent-archive-areas main \
	--mirror-bootstrap "$MIRROR" --mirror-chroot "$MIRROR" --mirror-binary "$MIRROR" \
	--parent-mirror-chroot "$MIRROR" --parent-mirror-binary "$MIRROR" \
	--mirror-chroot-security "$SECMIRROR" --mirror-binary-security "$SECMIRROR" \
	--parent-mirror-chroot-security "$SECMIRROR" --parent-mirror-binary-security "$SECMIRROR" \
	--security true --updates true --backports false \
	--debootstrap-options "--variant=minbase" \
	--apt-recommends false --apt-indices false --apt-source-archives false \
	--cache false --cache-packages false --cache-stages none \
	--binary-images iso-hybrid --bootloaders "syslinux,grub-efi" \
	--debian-installer none --memtest none --win32-loader false --loadlin false \
	--firmware-binary false --firmware-chroot false \
	--linux-flavours amd64 --linux-packages linux-image \
	--initramfs live-boot \
	--chroot-squashfs-compression-type xz \
	--bootappend-live "$APPEND" --bootappend-live-failsafe none \
	--iso-volume "KCM_CEREMONY_$VERSION" --iso-application "OpenKCM Ceremony" \
	--iso-publisher "OpenKCM" --iso-preparer "iso_build/build.sh" \
	--image-name kcm-ceremony \
	--checksums sha256 --zsync false --source false \
	--utc-time true

# live-build's sample hook that deletes every *.pyc under /usr (Python then starts slowly
# on every boot): not wanted, the venv hook compiles hash-based .pyc files instead.
rm -f config/hooks/normal/9010-remove-python-pyc.hook.chroot
cp -a "$HERE/config/." config/
mkdir -p config/includes.chroot/opt/kcm/wheelhouse config/includes.chroot/usr/local/share/doc/kcm
cp -a "$BUILD/wheelhouse/." config/includes.chroot/opt/kcm/wheelhouse/
# Everything of the project comes from the one source copy (working tree or KCM_SRC).
cp "$BUILD/src/docs/iso.md" config/includes.chroot/usr/local/share/doc/kcm/iso.md 2>/dev/null || true
# The ceremony scripts are data, not in the wheel: the console session passes this folder.
if [ -d "$BUILD/src/ceremony_scripts" ]; then
	mkdir -p config/includes.chroot/opt/kcm/ceremony_scripts
	cp -a "$BUILD/src/ceremony_scripts/." config/includes.chroot/opt/kcm/ceremony_scripts/
fi
# Build hosts differ in umask and checkout mode bits: normalise what goes into the image.
find config/includes.chroot -type d -exec chmod 0755 {} +
find config/includes.chroot -type f -exec chmod 0644 {} +
chmod 0755 config/includes.chroot/usr/local/sbin/*
chmod 0755 config/hooks/normal/*.hook.* 2>/dev/null || true

# --- build, stage by stage ----------------------------------------------------------------
log "lb bootstrap"
lb bootstrap
log "lb chroot"
lb chroot
# Caches that differ from one build to the next (FINDINGS section 7): apt's binary caches
# are regenerated by live-build after our hooks, so they are removed here, after the chroot
# stage and before the binary stage copies the tree into the squashfs.
rm -f chroot/var/cache/apt/*.bin
rm -rf chroot/var/lib/apt/lists/* chroot/var/cache/apt/archives/*.deb
# No network userland may be in the image, whatever pulled it in.
FORBIDDEN='^(network-manager|ifupdown|isc-dhcp-client|dhcpcd-base|dhcpcd5|udhcpc|wpasupplicant|iw|wireless-tools|bluez|connman|netplan\.io|ppp|openssh-server|openssh-client|avahi-daemon|systemd-resolved|curl|wget)\b'
if grep -E "$FORBIDDEN" chroot.packages.live; then die "network packages in the image (above)"; fi
if [ -n "$(find chroot/lib/modules \( -path '*/kernel/drivers/net/*' -o -path '*/kernel/net/*' \) -name '*.ko*' -print -quit)" ]; then
	die "network driver modules are still in the image"
fi

log "lb binary"
lb binary
ISO_LB="$LB/kcm-ceremony-amd64.hybrid.iso"
[ -f "$ISO_LB" ] || die "live-build produced no ISO"

# --- checks on the product ----------------------------------------------------------------
log "checks"
xorriso -osirrox on -indev "$ISO_LB" -extract /live/filesystem.squashfs "$BUILD/check.squashfs" >/dev/null 2>&1
t=$(blkid -p -o value -s TYPE "$BUILD/check.squashfs" || true)
rm -f "$BUILD/check.squashfs"
[ "$t" = squashfs ] || die "blkid sees the squashfs in the ISO as '$t' (the blkid trap)"
xorriso -indev "$ISO_LB" -report_el_torito plain 2>/dev/null | grep -E "El Torito (boot img|hide)|^El Torito" | head -5 || true

# --- outputs ------------------------------------------------------------------------------
cp "$ISO_LB" "$OUT/$NAME.iso"
touch -d "@$SOURCE_DATE_EPOCH" "$OUT/$NAME.iso"
cp chroot.packages.live "$OUT/$NAME.packages.txt"
(cd "$OUT" && sha256sum "$NAME.iso" > "$NAME.iso.sha256")
SHA=$(cut -d' ' -f1 "$OUT/$NAME.iso.sha256")
SIZE=$(stat -c %s "$OUT/$NAME.iso")
{
	echo "name: $NAME.iso"
	echo "sha256: $SHA"
	echo "size_bytes: $SIZE"
	echo "source_date_epoch: $SOURCE_DATE_EPOCH"
	echo "git_head: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo none)"
	echo "git_dirty: $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths"
	echo "project_source: ${KCM_SRC:-working tree}"
	echo "mirror: $MIRROR"
	echo "security_mirror: $SECMIRROR"
	echo "live_build: $(dpkg-query -W -f='${Version}' live-build)"
	echo "kernel_cmdline: $APPEND"
	echo "build_seconds: $(( $(date +%s) - T0 ))"
} > "$OUT/$NAME.build-info.txt"

log "done in $(( $(date +%s) - T0 )) s"
echo
echo "ISO:     $OUT/$NAME.iso"
echo "size:    $SIZE bytes ($(( SIZE / 1048576 )) MiB)"
echo "SHA-256: $SHA"
echo "as words (read aloud; iso_build/words.py --decode maps them back):"
python3 "$HERE/words.py" "$SHA"
