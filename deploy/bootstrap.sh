#!/usr/bin/env bash
# What `make up` needs before the venv exists: system packages (only when absent) and the venv
# (created, or re-installed when setup.cfg is newer than its stamp). Idempotent and quiet when
# there is nothing to do. As non-root, missing system packages are reported, not installed.
# BOOTSTRAP_VENV_ONLY=1 (make venv): only Python and the venv, none of the stack's packages
# (PostgreSQL, Redis, a JDK, Maven): what the unit tests and lint need.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

missing=()
if [[ ${BOOTSTRAP_VENV_ONLY:-0} != 1 ]]; then
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
fi
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# for the tests only (make test sets BOOTSTRAP_FOR_TESTS=1): Debian's Chromium and its driver,
# for the storefront page's browser test (tests/e2e/test_shop.py)
if [[ ${BOOTSTRAP_FOR_TESTS:-0} == 1 ]]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "bootstrap: apt-get install ${missing[*]}"
  # Keep the packages' own services (system postgres on 5432, redis on 6379) from starting:
  # the stack runs its own instances under supervisord.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((own_policy)) && rm -f "$policy"
fi

stamp=.venv/.orderstream-installed
if [[ ! -x .venv/bin/python ]]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [[ ! -f $stamp || setup.cfg -nt $stamp || pyproject.toml -nt $stamp ]]; then
  echo "bootstrap: pip install -e '.[dev,bench,stack,traces]' (log: .venv/pip.log)"
  .venv/bin/python -m pip install -q --upgrade pip >.venv/pip.log 2>&1
  # compat mode: the repo root goes on sys.path, so packages added later (streams, sinks, ...)
  # import without re-installing.
  if ! .venv/bin/python -m pip install -e '.[dev,bench,stack,traces]' --config-settings editable_mode=compat \
      >>.venv/pip.log 2>&1; then
    tail -30 .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi
