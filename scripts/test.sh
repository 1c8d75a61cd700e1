#!/usr/bin/env bash
# Installs everything the tests need and runs the whole suite:
#   system packages (as root, via apt-get): skopeo, umoci, docker-registry (distribution
#   2.8 with its Swift driver), openssh-server, memcached (for OpenStack Swift), nginx-light
#   (a TLS proxy in front of serve), chromium and chromium-driver (the web UI's tests);
#   Python packages in .venv: regtool with its test extras (pytest, swift, mypy, ...).
# Then lint (ruff), formatting (ruff format --check) and types (mypy) before the tests.
# Arguments are passed to pytest (`-n 0` runs the tests in one process).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(skopeo umoci docker-registry openssh-server memcached nginx-light chromium chromium-driver)
commands=(skopeo umoci docker-registry sshd memcached nginx chromium chromedriver)
missing=()
for i in "${!commands[@]}"; do
    command -v "${commands[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${commands[$i]}" ] \
        || missing+=("${packages[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "missing system packages (install as root): ${missing[*]}" >&2
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check regtool tests benchmarks
.venv/bin/ruff format --check regtool tests benchmarks
.venv/bin/mypy regtool
# Two workers, each taking whole test files (their services and fixtures stay together):
# most tests wait on Swift, sshd or distribution, so two halve the wall time.
exec .venv/bin/pytest -n 2 --dist loadfile "$@"
