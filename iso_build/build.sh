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
#   KCM_BUILD_DIR, KCM_OUT_DIR  where to build and where the outputs go (defaults
#                      iso_build/build and iso_build/out); two builds can run side by side
#   KCM_PIP_INDEX_URL  another Python package index (a PyPI mirror); the wheels are checked
#                      against requirements/runtime.lock's hashes whatever the index
#
# Python packages: exactly requirements/runtime.lock (and build.lock for the tools that
# build the project's wheel), wheels only (--only-binary=:all:), every file checked against
# the lock's SHA-256 (--require-hashes), with the host's pip configuration ignored
# (tools/pip-locked: PIP_CONFIG_FILE=/dev/null, no PIP_* variable). `make lock` regenerates
# the locks from pyproject.toml.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BUILD="${KCM_BUILD_DIR:-$HERE/build}"
OUT="${KCM_OUT_DIR:-$HERE/out}"
mkdir -p "$BUILD" "$OUT"
BUILD="$(cd "$BUILD" && pwd)"
OUT="$(cd "$OUT" && pwd)"
LB="$BUILD/lb"
T0=$(date +%s)
# Image size budget (docs/iso.md): the build reports it, `make iso-test` enforces it.
SIZE_BUDGET_MIB=220

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
		apt-get -o DPkg::Lock::Timeout=600 update
		DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=600 \
			--no-install-recommends "${missing[@]}"
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
# toram=filesystem.squashfs: live-boot copies the root image to RAM and unmounts the boot
# medium, which can then be removed (the first screen says so). nonetworking: live-boot
# writes no /etc/network/interfaces (there is no network, and no /etc/network either).
APPEND="boot=live toram=filesystem.squashfs nonetworking nopersistence quiet loglevel=3 $HARDENING"

log "version $VERSION, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" +%F))"

# --- clean state --------------------------------------------------------------------------
# A build that was interrupted can leave processes running inside the chroot and /proc,
# /sys, /dev bind-mounted in it: stop those processes (only ones whose root is this build's
# chroot), unmount everything under the build directory, deepest first, retrying while busy,
# and only then delete (rm -rf through a /dev bind mount is a disaster).
cleanup_build_tree() {
	local pid r tries m
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		r=$(readlink "$p/root" 2>/dev/null || true)
		case "$r" in "$BUILD"/*)
			echo "kcm-iso: stopping leftover process $pid ($(tr '\0' ' ' < "$p/cmdline" 2>/dev/null | cut -c1-60))"
			kill -s TERM "$pid" 2>/dev/null || true ;;
		esac
	done
	if [ -d "$LB" ]; then
		(cd "$LB" && PATH="$HERE/bin:$PATH" KCM_LB_DIR="$LB" lb clean --all) || true
	fi
	for tries in 1 2 3 4 5 6 7 8 9 10; do
		mapfile -t mounts < <(findmnt -rn -o TARGET | grep -F "$BUILD/" | sort -r || true)
		[ ${#mounts[@]} -eq 0 ] && break
		for m in "${mounts[@]}"; do
			umount "$m" 2>/dev/null || { [ "$tries" -ge 5 ] && umount -l "$m" 2>/dev/null; } || true
		done
		sleep 1
	done
	if findmnt -rn -o TARGET | grep -qF "$BUILD/"; then
		findmnt -rn -o TARGET | grep -F "$BUILD/" >&2
		die "mounts remain under $BUILD (above); unmount them by hand"
	fi
	rm -rf --one-file-system "$LB" "$BUILD/wheelhouse" "$BUILD/src" "$BUILD/pyenv" "$BUILD/check.squashfs"
}
cleanup_build_tree
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
for lock in runtime.lock build.lock; do
	[ -f "$BUILD/src/requirements/$lock" ] || die "requirements/$lock missing (make lock)"
done
cp "$HERE/forbidden.toml" "$BUILD/forbidden.toml"
cp "$BUILD/src/core/offline_audit.py" "$BUILD/offline_audit.py"
cp "$BUILD/src/core/consolefont.py" "$BUILD/consolefont.py"
rm -rf "$BUILD/src/iso_build" "$BUILD/src/tests" "$BUILD/src"/*.egg-info
python3 -m venv "$BUILD/pyenv"
PIP=("$ROOT/tools/pip-locked" "$BUILD/pyenv/bin/python")
# pip itself at the locked version (runtime.lock has it: sqlite-utils declares it), so the
# host's pip version does not choose the wheels; then the build backend, hash-locked, and the
# project's wheel built offline with it.
awk '/^pip==/{p=1} p{print} p&&!/\\$/{exit}' "$BUILD/src/requirements/runtime.lock" > "$BUILD/pip.lock"
[ -s "$BUILD/pip.lock" ] || die "requirements/runtime.lock has no pip entry"
"${PIP[@]}" install --quiet --require-hashes --only-binary=:all: -r "$BUILD/pip.lock"
"${PIP[@]}" install --quiet --require-hashes --only-binary=:all: -r "$BUILD/src/requirements/build.lock"
"${PIP[@]}" wheel --quiet --no-deps --no-build-isolation --no-index --wheel-dir "$BUILD/wheelhouse" "$BUILD/src"
# Every runtime dependency as the wheel for the image's interpreter (CPython 3.11, glibc
# 2.36, x86_64), whatever the host is; pip refuses any file whose hash is not in the lock.
# pip does not widen a given --platform to older manylinux levels: list every tag the image's
# glibc accepts, newest first (the order pip would prefer them in on that system).
PLATFORMS=()
for v in $(seq 36 -1 17); do PLATFORMS+=(--platform "manylinux_2_${v}_x86_64"); done
PLATFORMS+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
"${PIP[@]}" download --quiet --no-deps --require-hashes --only-binary=:all: \
	--implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none "${PLATFORMS[@]}" \
	--dest "$BUILD/wheelhouse" -r "$BUILD/src/requirements/runtime.lock"
"$BUILD/pyenv/bin/python" - "$BUILD/wheelhouse" "$BUILD/src/requirements/runtime.lock" <<'PY'
import hashlib, pathlib, re, sys
wh, lock = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", lock.read_text(), re.M))
pins = {norm(k): v for k, v in pins.items()}
wheels = {}
for whl in sorted(wh.glob("*.whl")):
    name, version = whl.name.split("-")[:2]
    wheels.setdefault(norm(name), []).append((version, whl))
project = [n for n in wheels if n not in pins]
if len(project) != 1 or any(len(v) != 1 for v in wheels.values()):
    sys.exit(f"wheelhouse does not match the lock: {sorted(wheels)} vs {sorted(pins)}")
missing = sorted(set(pins) - set(wheels))
if missing:
    sys.exit(f"no wheel for {missing}")
for name, version in pins.items():
    if wheels[name][0][0] != version:
        sys.exit(f"{name}: wheel {wheels[name][0][0]} but lock {version}")
# The lock as it is (every published hash of each version), plus the project's own wheel.
version, whl = wheels[project[0]][0]
digest = hashlib.sha256(whl.read_bytes()).hexdigest()
text = lock.read_text() + f"{project[0]}=={version} --hash=sha256:{digest}\n"
(wh / "requirements.txt").write_text(text)
print(f"wheelhouse: {len(pins)} locked wheels + {whl.name}")
PY
(cd "$BUILD/wheelhouse" && sha256sum ./*.whl | sed 's| \./| |') > "$OUT/$NAME.wheels.sha256"

# --- live-build configuration -------------------------------------------------------------
# zstd decompresses several times faster than xz (it matters under emulation and on slow
# machines: every file the system and Python read is decompressed); KCM_SQUASHFS=xz trades
# boot time for a smaller image.
SQUASHFS_COMP="${KCM_SQUASHFS:-zstd}"
log "lb config"
cd "$LB"
# live-build calls a plain `umount`; ours retries while busy (iso_build/bin/umount).
export PATH="$HERE/bin:$PATH" KCM_LB_DIR="$LB"
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
	--chroot-squashfs-compression-type "$SQUASHFS_COMP" \
	--bootappend-live "$APPEND" --bootappend-live-failsafe none \
	--iso-volume "KCM_CEREMONY_$VERSION" --iso-application "OpenKCM Ceremony" \
	--iso-publisher "OpenKCM" --iso-preparer "iso_build/build.sh" \
	--image-name kcm-ceremony \
	--checksums sha256 --zsync false --source false \
	--utc-time true

if [ "$SQUASHFS_COMP" = zstd ]; then
	lb config --chroot-squashfs-compression-level 19
fi

# live-build's sample hook that deletes every *.pyc under /usr (Python then starts slowly
# on every boot): not wanted, the venv hook compiles hash-based .pyc files instead.
rm -f config/hooks/normal/9010-remove-python-pyc.hook.chroot
cp -a "$HERE/config/." config/
mkdir -p config/includes.chroot/opt/kcm/wheelhouse config/includes.chroot/usr/local/share/doc/kcm
# The forbidden-item list (read by the network hook and by the image's self test), the
# audit the hook runs and the console-font maker (hooks 0060 and 0100; the folder is removed
# afterwards: the image's program uses core.offline_audit and core.consolefont).
mkdir -p config/includes.chroot/usr/local/share/kcm config/includes.chroot/usr/local/lib/kcm
cp "$BUILD/forbidden.toml" config/includes.chroot/usr/local/share/kcm/forbidden.toml
cp "$BUILD/offline_audit.py" "$BUILD/consolefont.py" config/includes.chroot/usr/local/lib/kcm/
# What those two import from the project (core.errors: the error root), beside them: the
# hooks run them with python3 before the venv exists (tests/iso/test_iso_config.py checks).
mkdir -p config/includes.chroot/usr/local/lib/kcm/core
cp "$BUILD/src/core/__init__.py" "$BUILD/src/core/errors.py" config/includes.chroot/usr/local/lib/kcm/core/
# The kernel and initramfs are on the ISO beside the squashfs; not a second copy inside it.
mkdir -p config/rootfs
printf '%s\n' 'boot/vmlinuz*' 'boot/initrd.img*' 'boot/System.map*' 'boot/config-*' > config/rootfs/excludes
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
chmod 0755 config/includes.chroot/usr/local/sbin/* config/includes.chroot/etc/initramfs-tools/hooks/*
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
# No network code in the root file system, checked on files (iso_build/forbidden.toml,
# core/offline_audit.py): busybox (live-boot's /init runs on it inside the initramfs, which is
# built by now) and klibc's ipconfig/nfsmount are deleted from the root file system; then
# packages, programs, busybox applets and kernel modules, in the tree and in the initramfs,
# must all be clean.
log "no network code"
python3 "$BUILD/offline_audit.py" strip-programs chroot "$BUILD/forbidden.toml"
: > "$BUILD/initramfs.list"
for initrd in chroot/boot/initrd.img-*; do
	[ -e "$initrd" ] || continue
	chroot chroot lsinitramfs "/boot/$(basename "$initrd")" >> "$BUILD/initramfs.list"
done
[ -s "$BUILD/initramfs.list" ] || die "no initramfs to audit"
python3 "$BUILD/offline_audit.py" audit chroot "$BUILD/forbidden.toml" --initramfs-list "$BUILD/initramfs.list" \
	|| die "forbidden items in the image (above)"
du -sx --block-size=1M chroot/usr/share/locale chroot/usr/share/doc chroot/lib/modules chroot/opt/kcm \
	chroot/usr/lib/python3* 2>/dev/null | sed 's/^/  MiB /' || true

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
	echo "squashfs: $SQUASHFS_COMP"
	echo "python_locks: runtime.lock $(sha256sum "$BUILD/src/requirements/runtime.lock" | cut -c1-64)"
	echo "build_seconds: $(( $(date +%s) - T0 ))"
} > "$OUT/$NAME.build-info.txt"

log "done in $(( $(date +%s) - T0 )) s"
echo
echo "ISO:     $OUT/$NAME.iso"
echo "size:    $SIZE bytes ($(( SIZE / 1048576 )) MiB; budget $SIZE_BUDGET_MIB MiB)"
if [ "$SIZE" -gt $(( SIZE_BUDGET_MIB * 1048576 )) ]; then
	echo "WARNING: the image is larger than the $SIZE_BUDGET_MIB MiB budget (make iso-test fails on it)"
fi
echo "SHA-256: $SHA"
echo "as words (read aloud; iso_build/words.py --decode maps them back):"
python3 "$HERE/words.py" "$SHA"
