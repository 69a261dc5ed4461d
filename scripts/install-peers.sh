#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (ARCHITECTURE.md §7), so that a fresh machine
# with only Node and npm can run `npm test`:
#   real peers   python3-pykmip (upstream KMIP server, benchmark baseline), mosquitto (MQTT broker),
#                socat (pty pairs standing in for serial lines), prometheus (a real scraper)
#   device side  cmake, clang + libclang-rt (sanitizers, libFuzzer), libcmocka-dev, libmbedtls-dev
#                (PSA Crypto), libmosquitto-dev; armhf cross compiler + qemu-user, arm-none-eabi
# Needs root; does nothing when all are present. scripts/peers.mjs lists the same packages for the
# test runner's preflight check.
set -euo pipefail
cd "$(dirname "$0")"
mapfile -t packages < <(node peers.mjs --packages)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: all ${#packages[@]} packages already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The armhf packages (cross-built firmware-bridge tests under qemu-arm) need the architecture.
if printf '%s\n' "${missing[@]}" | grep -q ':armhf$' && ! dpkg --print-foreign-architectures | grep -qx armhf; then
  dpkg --add-architecture armhf
fi
echo "install-peers: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-upgrade --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
echo "install-peers: installed ${#missing[@]} packages"
