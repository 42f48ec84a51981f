#!/usr/bin/env bash
# Install the Debian packages the tests need, only those missing: `make test` runs this first, so a fresh
# machine needs nothing but `make test`. Needs root (or passwordless sudo) only when something is missing.
#   chromium           Playwright browser tests (the pages run in Debian's Chromium, not a downloaded build)
#   wordnet-base       rebuilds the shipped WordNet data file and checks it byte for byte
#   postgresql-client  pg_isready; store tests also run against PostgreSQL at 127.0.0.1:5432
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/wordnet/data.noun ] || need+=(wordnet-base)
command -v pg_isready >/dev/null || need+=(postgresql-client)
[ ${#need[@]} -eq 0 ] && exit 0

as_root=()
if [ "$EUID" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "error: the tests need the Debian packages ${need[*]}; install them as root:" \
      "apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null; then
  echo "error: the tests need ${need[*]} (Debian package names) and this system has no apt-get;" \
    "install their equivalents" >&2
  exit 1
fi
echo "installing Debian packages the tests need: ${need[*]}"
${as_root[@]+"${as_root[@]}"} apt-get update -qq
${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
