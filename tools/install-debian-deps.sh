#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, when running as root and they
# are missing. Without root it only reports what is missing (tests that need them skip
# with that reason). Used by `make test`, `make run` and `make bench`. poppler-utils renders the
# printed PDFs to PNG in the tests; fonts-dejavu-core is the Unicode font they are set in.
set -euo pipefail
PKGS=(libzbar0 softhsm2 openssl opensc tmux python3-venv util-linux poppler-utils fonts-dejavu-core)
# age: the age/ssh-ed25519 envelope interop tests; console-setup-linux: the console fonts
# the QR glyph and ISO font tests read; live-build: the ISO config test checks build.sh's
# `lb config` options against the installed live-build.
PKGS+=(age console-setup-linux live-build)
# initramfs-tools-core: the ISO config test rewrites a copy of its /init as the image's
# initramfs hook does (the switch to the real root without deleting the initramfs).
PKGS+=(initramfs-tools-core)
# libseccomp's Python bindings: the sandbox of the image decoder (linked into the venv by
# tools/venv-system-modules.sh)
PKGS+=(python3-seccomp)
# The Go reference reader of the envelope format (interop/go), built offline from these
# (golang-filippo-age-dev needs edwards25519 but does not depend on it).
PKGS+=(golang-go golang-golang-x-crypto-dev golang-filippo-age-dev golang-filippo-edwards25519-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
