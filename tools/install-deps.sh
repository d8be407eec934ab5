#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages provision needs to build, test and benchmark,
# and taplo (the TOML validator tools/check-schema.sh runs) from npm.
# Does nothing when they are all present (so it is cheap to run every time).
set -euo pipefail
packages=(meson ninja-build pkg-config g++ python3 libssl-dev openssl libcpp-httplib-dev libtomlplusplus-dev squid nginx
          nlohmann-json3-dev doctest-dev libcli11-dev clang-format-14 man-db)
if [[ "${1:-}" == "--bench" ]]; then packages+=(curl wget aria2); fi
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# Node.js runs taplo. Judged by the commands, not the packages: a Node.js from
# elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's) is fine.
for tool in node:nodejs npm:npm; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if (( ${#missing[@]} )); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# taplo, the validator of the config schema test (tools/check-schema.sh): the
# npm package at a fixed version, inside the tree (tools/.taplo/, ignored by git).
taplo_dir="$(cd "$(dirname "$0")" && pwd)/.taplo"
taplo_version=0.7.0
if [[ ! -x "$taplo_dir/node_modules/.bin/taplo" ]] ||
  ! grep -q "\"version\": \"$taplo_version\"" "$taplo_dir/node_modules/@taplo/cli/package.json" 2>/dev/null; then
  echo "installing: taplo (npm @taplo/cli@$taplo_version into tools/.taplo)"
  npm install --prefix "$taplo_dir" --no-audit --no-fund --loglevel=error "@taplo/cli@$taplo_version" >/dev/null
fi
