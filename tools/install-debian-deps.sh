#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, when running as root and they
# are missing. Without root it only reports what is missing (tests that need them skip
# with that reason). Used by `make test`, `make run` and `make bench`.
set -euo pipefail
PKGS=(libzbar0 softhsm2 openssl opensc tmux python3-venv util-linux)
# age: the age/ssh-ed25519 envelope interop tests; console-setup-linux: the console fonts
# the QR glyph test reads; live-build: the ISO config test checks build.sh's `lb config`
# options against the installed live-build.
PKGS+=(age console-setup-linux live-build)
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
