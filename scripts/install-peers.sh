#!/usr/bin/env bash
# Installs the Debian packages of the real peers the tests talk to (ARCHITECTURE.md §7):
# python3-pykmip (upstream KMIP server and benchmark baseline), mosquitto (MQTT broker),
# socat (pty pairs standing in for serial lines). Needs root; does nothing when all are present.
set -euo pipefail
packages=(python3-pykmip mosquitto socat)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: ${packages[*]} already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: need root to apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-upgrade --no-install-recommends "${missing[@]}" >/dev/null
echo "install-peers: installed ${missing[*]}"
