#!/usr/bin/env bash
# Make this machine ready for `memestream`: the Debian packages the local stack runs
# (installed only when missing) and the project's virtualenv (reinstalled only when
# pyproject.toml changed). Safe to run on every `make` call: a no-op takes ~1 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
APT_PACKAGES=(redis-server nats-server)
# Fonts the renderer uses (domain.rendering.fonts.FONT_PACKAGES).
APT_PACKAGES+=(fonts-dejavu-core fonts-dejavu-extra fonts-noto-core fonts-noto-extra fonts-noto-color-emoji fonts-bebas-neue fonts-comic-neue)

log() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
# Tools the stack needs that a fresh machine of this kind normally already has.
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || missing+=(postgresql-15)
command -v java >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)

if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [[ ! -x /usr/local/go/bin/go ]]; then
  log "warning: Go not found; MinIO can only start if its binary is already cached"
fi

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  [[ -n "$python" ]] || { echo "bootstrap: Python 3.11 is required" >&2; exit 1; }
  log "creating $VENV with $python"
  "$python" -m venv "$VENV"
fi

stamp="$VENV/.memestream-pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]] \
  || ! "$VENV/bin/python" -c 'import memestream.cli' 2>/dev/null \
  || [[ ! -x "$VENV/bin/memestream" ]]; then
  log "installing the project into $VENV (pip's cache makes repeats fast)"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev]' \
    >"$VENV/pip-install.log" 2>&1; then
    tail -n 40 "$VENV/pip-install.log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
