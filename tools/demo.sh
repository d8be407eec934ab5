#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The offline demo: builds provision, starts the bundled loopback file server
# with a few generated "models", provisions a demo config from it into a
# temporary workspace, and prints the resulting tree.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
bash tools/install-deps.sh
[[ -f "$build/build.ninja" ]] || meson setup "$build" >/dev/null
ninja -C "$build" examples/provision examples/file_server >/dev/null

demo=$(mktemp -d /tmp/provision-demo-XXXXXX)
served="$demo/served"
mkdir -p "$served/models"
# Small stand-ins for real model files (random bytes, so every byte is checkable).
head -c 3000000 /dev/urandom > "$served/models/sdxl-base.safetensors"
head -c 1500000 /dev/urandom > "$served/models/detail-tweaker.safetensors"
head -c 800000 /dev/urandom > "$served/models/flux-ae.safetensors"
head -c 400000 /dev/urandom > "$served/models/clip_l.safetensors"
vae_sha=$(sha256sum "$served/models/flux-ae.safetensors" | cut -d' ' -f1)

"$build/examples/file_server" "$served" --ready-file "$demo/port" 2>"$demo/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s "$demo/port" ]] && break; sleep 0.1; done
port=$(cat "$demo/port")
base="http://127.0.0.1:$port/models"

cat > "$served/demo.toml" <<TOML
# A demo config in the seed's syntax, served by the local file server.
[models.checkpoints.sdxl-base]
source = "url"
url = "$base/sdxl-base.safetensors"

[models.lora]
detail-tweaker = "$base/detail-tweaker.safetensors"

[models.vae.flux-vae]
url = "$base/flux-ae.safetensors"
filename = "ae.safetensors"
sha256 = "$vae_sha"

[models.clip.clip_l]
source = "url"
url = "$base/clip_l.safetensors"
TOML

echo "== provision http://127.0.0.1:$port/demo.toml --workspace $demo/workspace"
status=0
"$build/examples/provision" "http://127.0.0.1:$port/demo.toml" --workspace "$demo/workspace" || status=$?
echo
echo "== resulting tree under $demo/workspace"
(cd "$demo/workspace" && find . -type f -printf '%p  %s bytes\n' | sort)
echo
echo "== byte-exact check"
cmp "$served/models/sdxl-base.safetensors" "$demo/workspace/sdnext/models/Stable-diffusion/sdxl-base.safetensors" && echo "Stable-diffusion/sdxl-base.safetensors identical"
cmp "$served/models/flux-ae.safetensors" "$demo/workspace/sdnext/models/VAE/ae.safetensors" && echo "VAE/ae.safetensors identical"
echo "provision exited with $status"
exit $status
