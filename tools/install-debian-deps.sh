#!/usr/bin/env bash
# Install the Debian packages the tests and the demo need, when running as root and they
# are missing. Without root it only reports what is missing (tests that need them skip
# with that reason). Used by `make test`, `make run` and `make bench`.
# (console-setup-linux: the Terminus console font the ISO's font tests read.)
set -euo pipefail
PKGS=(libzbar0 softhsm2 openssl opensc tmux python3-venv util-linux console-setup-linux)
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
