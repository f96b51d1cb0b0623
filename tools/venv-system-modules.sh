#!/usr/bin/env bash
# Make Debian's libseccomp bindings (python3-seccomp: one extension module, seccomp.*.so)
# importable in the project's venv, and nothing else from /usr/lib/python3/dist-packages:
# a symlink to that one file in the venv's site-packages. (--system-site-packages would put
# every Debian Python package on the path and change other imports.)
# Usage: tools/venv-system-modules.sh VENV   (idempotent; used by make test/run/bench)
set -euo pipefail
VENV=${1:?usage: $0 VENV}
PY="$VENV/bin/python"
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
SRC="/usr/lib/python3/dist-packages/seccomp${SUFFIX}"
DST="$SITE/seccomp${SUFFIX}"
if [ ! -e "$SRC" ]; then
  echo "note: $SRC is missing (Debian package python3-seccomp for this Python):" \
       "images are decoded without the seccomp filter only in demo mode" >&2
  rm -f "$DST"
  exit 0
fi
if [ "$(readlink "$DST" 2>/dev/null || true)" != "$SRC" ]; then
  ln -sfn "$SRC" "$DST"
fi
"$PY" -I -c 'import seccomp' || { echo "error: $DST does not import" >&2; exit 1; }
