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
ninja -C "$build" examples/provision examples/file_server tests/emulated_services >/dev/null

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
services_pid=
trap 'kill $server_pid $services_pid 2>/dev/null || true' EXIT
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
# served file : where the config puts it (ae.safetensors is the flux-vae entry's filename)
for pair in sdxl-base:Stable-diffusion/sdxl-base detail-tweaker:Lora/detail-tweaker \
            flux-ae:VAE/ae clip_l:text_encoder/clip_l; do
  if cmp -s "$served/models/${pair%%:*}.safetensors" "$demo/workspace/sdnext/models/${pair##*:}.safetensors"; then
    echo "${pair##*:}.safetensors identical to the served ${pair%%:*}.safetensors"
  else
    echo "${pair##*:}.safetensors DIFFERS from the served ${pair%%:*}.safetensors (or is missing)"
  fi
done
echo "provision exited with $status"

# Part two: the seed's own example configs, with their real URLs
# (huggingface.co, civitai.com, drive.google.com, example.com), against local
# emulators of those services reached through --connect-to, over HTTPS with a
# throw-away CA. Nothing leaves this machine.
"$build/tests/emulated_services" --options-file "$demo/services.options" --env-file "$demo/services.env" 2>"$demo/services.log" &
services_pid=$!
for _ in $(seq 100); do [[ -s "$demo/services.options" ]] && break; sleep 0.1; done
readarray -t reach < "$demo/services.options"
set -a
# shellcheck disable=SC1091
. "$demo/services.env"  # HF_TOKEN, CIVITAI_TOKEN and EXAMPLE_TOKEN the emulators accept
set +a
for config in minimal.toml flux.toml; do
  echo
  echo "== provision tests/data/configs/$config --workspace $demo/seed-workspace (+ --cacert and --connect-to for the emulators)"
  sed -n '/^\[/,$p' "tests/data/configs/$config" | head -12
  echo "   ..."
  seed_status=0
  "$build/examples/provision" "tests/data/configs/$config" --workspace "$demo/seed-workspace" "${reach[@]}" || seed_status=$?
  (( seed_status == 0 )) || status=$seed_status
done
echo
echo "== the same FLUX config again: everything is in place, no model bytes are fetched"
"$build/examples/provision" tests/data/configs/flux.toml --workspace "$demo/seed-workspace" "${reach[@]}" -q || status=$?
echo
echo "== and without HF_TOKEN in a fresh workspace: the gated entries are named before any download"
HF_TOKEN= "$build/examples/provision" tests/data/configs/flux.toml --workspace "$demo/no-token-workspace" "${reach[@]}" -q && echo "(unexpected: exit 0)" || echo "provision exited with $? (3: authentication), as it should"
echo
echo "== resulting tree under $demo/seed-workspace"
(cd "$demo/seed-workspace" && find . -type f -printf '%p  %s bytes\n' | sort)
echo "demo finished; exit status $status"
exit $status
