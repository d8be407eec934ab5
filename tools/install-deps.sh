#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages provision needs to build, test and benchmark.
# Does nothing when they are all present (so it is cheap to run every time).
set -euo pipefail
packages=(meson ninja-build pkg-config g++ python3 libssl-dev openssl libcpp-httplib-dev libtomlplusplus-dev squid
          nlohmann-json3-dev doctest-dev libcli11-dev clang-format-14 man-db)
if [[ "${1:-}" == "--bench" ]]; then packages+=(nginx curl wget aria2); fi
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
