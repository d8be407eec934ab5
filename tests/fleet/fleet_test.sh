#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Many machines, one download (issue 15): the recipe examples/fleet/nginx-hub-mirror.conf,
# run by Debian's nginx in front of the emulated Hub, with N provision
# processes started at once through it.
#
#   bash tests/fleet/fleet_test.sh BUILD_DIR [--machines N] [--model-mib M] [--keep]
#
# What it proves, each with a check that fails if it breaks:
#   1. cold cache: N machines at once, each with its own WORKSPACE and
#      HF_ENDPOINT at the mirror, install byte-exact files (compared with the
#      bytes the emulator serves), and the origin's CDN sends at most 1.1x the
#      model bytes. Counted twice: by nginx ($upstream_bytes_received in the
#      recipe's log) and by the emulated CDN itself.
#   2. warm cache: N fresh machines with --locked (the lock a cold machine
#      wrote) install the same files, and the CDN sends no byte.
#   3. what the mirror must not hide: a machine without HF_TOKEN is still
#      refused the gated file, a URL that needs a credential is passed through
#      (and refused with a wrong one), not served from the cache.
#   4. a mirror that answers Range requests with the whole file (200), fresh
#      and when resuming a .part another mirror left: the file installs intact.
#   5. a mirror whose slices come from two versions of a file (two ETags):
#      provision restarts and finally fails the entry; it never installs the
#      spliced bytes, even for a plain URL without a sha256.
# Everything runs on 127.0.0.1: the machines' --connect-to rules send every
# origin name (huggingface.co, the CDN hosts, example.com) to a closed port, and
# the rendered nginx config must name no upstream but 127.0.0.1. Exit status 0
# when every check passed; 1, with "fleet test FAILED: <why>", otherwise (a
# missing nginx, or one without the slice module, included: tools/install-deps.sh
# installs Debian's).
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR [--machines N] [--model-mib M] [--keep]" >&2
  exit 2
}
(( $# >= 1 )) || usage
build=$(cd "$1" && pwd) || usage
shift
machines=5
model_mib=64
keep=0
while (( $# )); do
  case $1 in
    --machines) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; machines=$2; shift 2 ;;
    --model-mib) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; model_mib=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done

source_dir=$(cd "$(dirname "$0")/../.." && pwd)
recipe=$source_dir/examples/fleet/nginx-hub-mirror.conf
provision=$build/examples/provision
services=$build/tests/emulated_services

fail() {
  echo "fleet test FAILED: $*" >&2
  exit 1
}
say() { echo "fleet: $*"; }

nginx_bin=$(command -v nginx || true)
[[ -n $nginx_bin ]] || nginx_bin=/usr/sbin/nginx
[[ -x $nginx_bin ]] || fail "nginx is not installed: run bash tools/install-deps.sh (Debian's nginx package)"
"$nginx_bin" -V 2>&1 | grep -q -- '--with-http_slice_module' ||
  fail "$nginx_bin was built without ngx_http_slice_module, which the recipe needs (Debian's nginx has it)"
for tool in openssl python3 sha256sum awk; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done
[[ -x $provision ]] || fail "$provision is not built (ninja -C $build examples/provision)"
[[ -x $services ]] || fail "$services is not built (ninja -C $build tests/emulated_services)"
[[ -f $recipe ]] || fail "$recipe is missing"

work=$(mktemp -d /tmp/provision-fleet-XXXXXX)
services_pid=
nginx_pid=
machine_pids=()
cleanup() {
  local status=$?
  for pid in "${machine_pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [[ -n $nginx_pid ]]; then
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$nginx_pid" 2>/dev/null || true
  fi
  if [[ -n $services_pid ]]; then
    kill -TERM "$services_pid" 2>/dev/null || true
    wait "$services_pid" 2>/dev/null || true
  fi
  if (( status != 0 )) && [[ -f $work/nginx/error.log ]]; then
    echo "---- last lines of nginx's error log" >&2
    tail -n 15 "$work/nginx/error.log" >&2 || true
  fi
  if (( keep )); then echo "fleet: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work"/{nginx,cache,tls,models,machines,mixed/a/files,mixed/b/files}

now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- the origin: the emulated Hub and its CDN, plus example.com -------------
model_bytes_big=$(( model_mib * 1024 * 1024 ))
"$services" --options-file "$work/services.options" --env-file "$work/services.env" \
  --hub-file "fleet/base-model:model.safetensors:$model_bytes_big" \
  --example-file "/fleet/public.safetensors:20000000" \
  --tree-page-size 1 --models-out "$work/models" --stats-file "$work/services.stats" \
  2>"$work/services.log" &
services_pid=$!
for _ in $(seq 300); do [[ -s $work/services.options ]] && break; sleep 0.1; done
[[ -s $work/services.options ]] || fail "the emulated services did not start: $(cat "$work/services.log")"
origin_ca=$(sed -n '/^--cacert$/{n;p;q}' "$work/services.options")
origin_port() { # the port the emulator serves HOST on
  sed -n "s/^$1::127\.0\.0\.1:\([0-9]*\)$/\1/p" "$work/services.options" | head -n 1
}
hub_port=$(origin_port 'huggingface\.co')
cdn_port=$(origin_port 'cdn-lfs\.hf\.co')
example_port=$(origin_port 'example\.com')
[[ -n $origin_ca && -n $hub_port && -n $cdn_port && -n $example_port ]] ||
  fail "cannot read the emulator's CA and ports from $work/services.options"
hf_token=$(sed -n 's/^HF_TOKEN=//p' "$work/services.env")
example_token=$(sed -n 's/^EXAMPLE_TOKEN=//p' "$work/services.env")

# What the origin's hosts have sent and been asked so far, by their own count:
# fills origin[cdn_bytes], origin[cdn_requests], origin[hub_requests],
# origin[example_bytes], origin[example_requests].
declare -A origin=()
read_origin() {
  rm -f "$work/services.stats"
  kill -USR1 "$services_pid" 2>/dev/null || fail "the emulated services died: $(cat "$work/services.log")"
  for _ in $(seq 100); do [[ -s $work/services.stats ]] && break; sleep 0.05; done
  [[ -s $work/services.stats ]] || fail "the emulated services wrote no counts to $work/services.stats"
  local name value
  while read -r name value; do origin[$name]=$value; done <"$work/services.stats"
}

# The files the fleet installs: where each lands in a workspace, and the
# emulator's own bytes for it (written by --models-out).
declare -A reference=(
  [sdnext/models/Stable-diffusion/model.safetensors]=fleet/base-model/model.safetensors
  [sdnext/models/VAE/ae.safetensors]=black-forest-labs/FLUX.1-dev/ae.safetensors
  [sdnext/models/text_encoder/clip_l.safetensors]=comfyanonymous/flux_text_encoders/clip_l.safetensors
  [sdnext/models/text_encoder/t5xxl_fp8_e4m3fn.safetensors]=comfyanonymous/flux_text_encoders/t5xxl_fp8_e4m3fn.safetensors
  [sdnext/models/Lora/public.safetensors]=example.com/fleet/public.safetensors
  [sdnext/models/ControlNet/canny.safetensors]=example/canny
)
declare -A reference_sha=()
for installed in "${!reference[@]}"; do
  file=$work/models/${reference[$installed]}
  [[ -s $file ]] || fail "the emulator did not write $file"
  reference_sha[$installed]=$(sha256sum "$file" | cut -d' ' -f1)
done
size_of() { stat -c %s "$work/models/$1"; }
# The Hub's files come from its CDN: these are the bytes the cache is for.
hub_model_bytes=$(( $(size_of fleet/base-model/model.safetensors) + $(size_of black-forest-labs/FLUX.1-dev/ae.safetensors) +
  $(size_of comfyanonymous/flux_text_encoders/clip_l.safetensors) +
  $(size_of comfyanonymous/flux_text_encoders/t5xxl_fp8_e4m3fn.safetensors) ))
public_url_bytes=$(size_of example.com/fleet/public.safetensors)
credential_url_bytes=$(size_of example/canny)

# ---- the mirror's certificate, from a CA of the fleet's own ----------------
mirror_name=hf-mirror.fleet.test
tls=$work/tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=fleet test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>"$tls/openssl.log" || fail "openssl: $(cat "$tls/openssl.log")"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$mirror_name" \
  -keyout "$tls/mirror.key" -out "$tls/mirror.csr" 2>>"$tls/openssl.log" || fail "openssl: $(cat "$tls/openssl.log")"
printf '%s\n' "subjectAltName=DNS:$mirror_name" "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$tls/leaf.ext"
openssl x509 -req -in "$tls/mirror.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/leaf.ext" -out "$tls/mirror.crt" 2>>"$tls/openssl.log" || fail "openssl: $(cat "$tls/openssl.log")"

# ---- the recipe, rendered: only addresses and paths change ------------------
mirror_port=$(free_port)
whole_port=$(free_port)
slow_port=$(free_port)
mixed_port=$(free_port)
rendered=$work/nginx/hub-mirror.conf
cp "$recipe" "$rendered"
substitute() { # FROM TO: FROM must occur in the recipe, or the rendering is out of date
  local count
  count=$(grep -cF -- "$1" "$rendered" || true)
  (( count >= 1 )) || fail "the recipe no longer contains '$1'; update the rendering in $0"
  FROM=$1 TO=$2 python3 -c '
import os, sys
path = sys.argv[1]
text = open(path).read().replace(os.environ["FROM"], os.environ["TO"])
open(path, "w").write(text)' "$rendered"
}
substitute 'server huggingface.co:443;' "server 127.0.0.1:$hub_port;"
substitute 'server cdn-lfs.hf.co:443;' "server 127.0.0.1:$cdn_port;"
substitute 'server cdn-lfs-us-1.hf.co:443;' "server 127.0.0.1:$cdn_port;"
substitute 'server cas-bridge.xethub.hf.co:443;' "server 127.0.0.1:$cdn_port;"
substitute 'server example.com:443;' "server 127.0.0.1:$example_port;"
substitute 'listen 443 ssl;' "listen 127.0.0.1:$mirror_port ssl;"
substitute 'server_name hf-mirror.example.internal;' "server_name $mirror_name;"
substitute '/etc/nginx/tls/hf-mirror.crt' "$tls/mirror.crt"
substitute '/etc/nginx/tls/hf-mirror.key' "$tls/mirror.key"
substitute '/var/cache/nginx/hf-mirror' "$work/cache"
substitute '/var/log/nginx/hf-mirror.access.log' "$work/nginx/mirror.log"
substitute '/etc/ssl/certs/ca-certificates.crt' "$origin_ca"
# Nothing but loopback may be left to reach.
if grep -nE '^\s*server\s+[^ ;]+;' "$rendered" | grep -vE 'server\s+127\.0\.0\.1:[0-9]+;' >&2; then
  fail "the rendered recipe still names an upstream that is not 127.0.0.1 (above)"
fi
if grep -nE '^\s*resolver\s' "$rendered" >&2; then fail "the rendered recipe configures a DNS resolver"; fi

# Test-only mirrors, in front of the recipe's: each forwards the Hub's routes to
# it (whose redirects then point back at the front, from its Host header) and
# breaks the downloads in one way.
front_common() { # PORT LOG
  cat <<NGINX
    listen 127.0.0.1:$1 ssl;
    server_name $mirror_name;
    ssl_certificate $tls/mirror.crt;
    ssl_certificate_key $tls/mirror.key;
    access_log $work/nginx/$2 fleet_front;
    default_type application/octet-stream;
    proxy_http_version 1.1;
    proxy_ssl_server_name on;
    proxy_ssl_name $mirror_name;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate $tls/ca.pem;
    location / {
        proxy_pass https://127.0.0.1:$mirror_port;
        proxy_set_header Host \$http_host;
    }
NGINX
}
{
  echo "# Generated by $0: the test-only mirrors."
  echo "log_format fleet_front 'status=\$status uri=\$uri range=\"\$http_range\" variant=\$fleet_variant sent=\$body_bytes_sent';"
  # shellcheck disable=SC2016  # nginx's variables, not the shell's
  echo 'map $http_range $fleet_variant { "~^bytes=0-" a; default b; }'
  echo "server {  # answers every request, Range or not, with the whole file"
  front_common "$whole_port" whole.log
  cat <<NGINX
    location /_cdn/ {
        proxy_pass https://127.0.0.1:$mirror_port;
        proxy_set_header Host \$http_host;
        proxy_set_header Range "";
        proxy_hide_header Accept-Ranges;
        max_ranges 0;
    }
}
NGINX
  echo "server {  # honours Range, slowly: 1 MiB/s per connection, so a download can be cut mid-way"
  front_common "$slow_port" slow.log
  cat <<NGINX
    location /_cdn/ {
        proxy_pass https://127.0.0.1:$mirror_port;
        proxy_set_header Host \$http_host;
        limit_rate 1m;
    }
}
NGINX
  echo "server {  # a cache holding two versions of each file: a request from byte 0 gets one, any other the other"
  front_common "$mixed_port" mixed.log
  # Slow, so that a first connection cannot fetch a whole file of unknown size
  # from one version before the others have asked for their pieces.
  cat <<NGINX
    limit_rate 2m;
    location ~ "^/_cdn/lfs/repos/[0-9a-f]{2}/[0-9a-f]{2}/(?<fleet_blob>[0-9a-f]{64})\$" {
        root $work/mixed/\$fleet_variant;
        try_files /\$fleet_blob =404;
    }
    location /files/ {
        root $work/mixed/\$fleet_variant;
    }
}
NGINX
} >"$work/nginx/test-mirrors.conf"

worker_user=
(( EUID == 0 )) && worker_user="user root root;"  # workers stay the invoking user, as they do when unprivileged
cat >"$work/nginx/nginx.conf" <<NGINX
# Generated by $0: Debian's nginx, unprivileged, everything inside $work.
$worker_user
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    access_log off;
    include $rendered;
    include $work/nginx/test-mirrors.conf;
}
NGINX
"$nginx_bin" -t -q -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" 2>"$work/nginx/test.log" ||
  fail "nginx refuses the rendered recipe: $(cat "$work/nginx/test.log")"
"$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' \
  2>"$work/nginx/stderr.log" &
nginx_pid=$!
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 100); do
  port_open "$mirror_port" && port_open "$mixed_port" && break
  kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited at start"
  sleep 0.1
done
port_open "$mirror_port" || fail "nginx does not listen on 127.0.0.1:$mirror_port"
say "origin: emulated Hub on 127.0.0.1:$hub_port, CDN on :$cdn_port; mirror (the recipe) on :$mirror_port"

# ---- the machines ------------------------------------------------------------
# Every origin name leads to a closed port: a machine that went around the
# mirror would fail, and nothing can reach the internet.
tripwires=()
for host in huggingface.co hf.co cdn-lfs.hf.co cdn-lfs-us-1.hf.co cas-bridge.xethub.hf.co example.com; do
  tripwires+=(--connect-to "$host::127.0.0.1:1")
done

write_config() { # FILE PORT
  cat >"$1" <<TOML
# The fleet's config: three Hub entries (a large LFS file, a gated Xet file, a
# two-file listing in pages of one) and two plain URLs through the mirror.
[models.checkpoints.fleet-base]
repo = "fleet/base-model"
file = "model.safetensors"

[models.vae.flux-vae]
repo = "black-forest-labs/FLUX.1-dev"
file = "ae.safetensors"

[models.text_encoder.flux-encoders]
repo = "comfyanonymous/flux_text_encoders"
include = ["*.safetensors"]

[models.lora.public]
url = "https://$mirror_name:$2/_url/example.com/fleet/public.safetensors"

[models.controlnet.canny]
url = "https://$mirror_name:$2/_url/example.com/control/canny.safetensors"
auth_header = "Bearer \${EXAMPLE_TOKEN}"
TOML
}
config=$work/fleet.toml
write_config "$config" "$mirror_port"

start_machine() { # NAME PORT CONFIG [provision options...]: starts it, appends its pid to machine_pids
  local name=$1 port=$2 machine_config=$3
  shift 3
  mkdir -p "$work/machines/$name"
  env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u NO_PROXY -u no_proxy -u PROVISION_URL \
    WORKSPACE="$work/machines/$name" HF_ENDPOINT="https://$mirror_name:$port" SSL_CERT_FILE="$tls/ca.pem" \
    HF_TOKEN="${MACHINE_HF_TOKEN-$hf_token}" EXAMPLE_TOKEN="${MACHINE_EXAMPLE_TOKEN-$example_token}" NO_COLOR=1 \
    "$provision" "$machine_config" --connect-to "$mirror_name:$port:127.0.0.1:$port" "${tripwires[@]}" "$@" \
    >"$work/machines/$name.out" 2>&1 &
  machine_pids+=($!)
}
# Waits for every started machine; sets machine_status[name] from their order.
wait_machines() { # NAME...
  local index=0 name
  for name in "$@"; do
    local status=0
    wait "${machine_pids[$index]}" || status=$?
    machine_status[$name]=$status
    index=$((index + 1))
  done
  machine_pids=()
}
declare -A machine_status=()
show_output() { echo "---- $1's output (last lines)" >&2; tail -n 20 "$work/machines/$1.out" >&2 || true; }
check_installed() { # NAME: every file byte-exact
  local name=$1 installed
  for installed in "${!reference[@]}"; do
    local path=$work/machines/$name/$installed
    [[ -f $path ]] || { show_output "$name"; fail "$name did not install $installed"; }
    local sha
    sha=$(sha256sum "$path" | cut -d' ' -f1)
    [[ $sha == "${reference_sha[$installed]}" ]] ||
      fail "$name installed $installed with SHA-256 $sha, the origin serves ${reference_sha[$installed]}"
  done
}

# Sums a field of the mirror log's lines after line FROM whose uri starts with PREFIX.
log_sum() { # LOG FROM PREFIX FIELD
  awk -v from="$2" -v prefix="$3" -v field="$4=" '
    NR > from {
      line = $0
      gsub(/, /, ",", line); gsub(/ : /, ":", line)   # several upstream tries: "a, b" and "a : b"
      n = split(line, f, " "); uri = ""; value = ""
      for (i = 1; i <= n; i++) {
        if (index(f[i], "uri=") == 1) uri = substr(f[i], 5)
        if (index(f[i], field) == 1) value = substr(f[i], length(field) + 1)
      }
      if (index(uri, prefix) != 1) next
      m = split(value, parts, /[,:]/)
      for (j = 1; j <= m; j++) if (parts[j] ~ /^[0-9]+$/) total += parts[j]
    }
    END { printf "%d\n", total }' "$1"
}
log_lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mirror_log=$work/nginx/mirror.log

run_fleet() { # PHASE [provision options...]: N machines at once; sets fleet_seconds
  local phase=$1
  shift
  local names=() i
  for i in $(seq "$machines"); do names+=("$phase-$i"); done
  local started
  started=$(now)
  for name in "${names[@]}"; do start_machine "$name" "$mirror_port" "$config" "$@"; done
  wait_machines "${names[@]}"
  fleet_seconds=$(seconds_since "$started")
  for name in "${names[@]}"; do
    (( machine_status[$name] == 0 )) || { show_output "$name"; fail "$name exited with ${machine_status[$name]}"; }
    check_installed "$name"
  done
  sleep 0.2  # nginx writes a request's log line once it is done
}

# ---- 1. cold cache -------------------------------------------------------------
read_origin
cdn_before=${origin[cdn_bytes]}
cdn_requests_before=${origin[cdn_requests]}
hub_requests_before=${origin[hub_requests]}
example_before=${origin[example_bytes]}
log_from=$(log_lines "$mirror_log")
run_fleet cold
cold_seconds=$fleet_seconds
cold_cdn_nginx=$(log_sum "$mirror_log" "$log_from" /_cdn/ upstream_bytes)
read_origin
cold_cdn_origin=$(( origin[cdn_bytes] - cdn_before ))
cold_public=$(log_sum "$mirror_log" "$log_from" /_url/example.com/fleet/ upstream_bytes)
cold_credential=$(log_sum "$mirror_log" "$log_from" /_url/example.com/control/ upstream_bytes)
cold_example_origin=$(( origin[example_bytes] - example_before ))
cold_cdn_requests=$(( origin[cdn_requests] - cdn_requests_before ))
cold_hub_requests=$(( origin[hub_requests] - hub_requests_before ))
# One request per slice: the big file's, and one each for the three small files.
slices=$(( (model_bytes_big + 1048575) / 1048576 + 3 ))
limit=$(( hub_model_bytes * 11 / 10 ))
(( cold_cdn_nginx > 0 )) || fail "nginx's log counts no byte from the CDN: the downloads did not go through the recipe's cache"
(( cold_cdn_nginx <= limit )) ||
  fail "cold cache: the CDN sent $cold_cdn_nginx bytes by nginx's count, over 1.1x the $hub_model_bytes model bytes"
(( cold_cdn_origin <= limit )) ||
  fail "cold cache: the CDN sent $cold_cdn_origin bytes by its own count, over 1.1x the $hub_model_bytes model bytes"
(( cold_cdn_origin >= hub_model_bytes )) ||
  fail "cold cache: the CDN counts only $cold_cdn_origin bytes for $hub_model_bytes model bytes: not a cold cache"
(( cold_public <= public_url_bytes * 11 / 10 )) ||
  fail "cold cache: example.com sent $cold_public bytes for the $public_url_bytes-byte public file"
(( cold_example_origin <= public_url_bytes * 11 / 10 + machines * credential_url_bytes )) ||
  fail "cold cache: example.com counts $cold_example_origin bytes sent, more than the public file once and the protected one $machines times"
(( cold_credential >= machines * credential_url_bytes )) ||
  fail "a URL with credentials was served from the cache: the origin sent $cold_credential bytes for $machines machines"
# Every machine pinned the same files.
first_lock=$work/machines/cold-1/provision.lock
[[ -f $first_lock ]] || fail "cold-1 wrote no provision.lock"
lock_digest() { grep -v '^created' "$1" | sha256sum | cut -d' ' -f1; }
for i in $(seq 2 "$machines"); do
  [[ $(lock_digest "$work/machines/cold-$i/provision.lock") == $(lock_digest "$first_lock") ]] ||
    fail "cold-$i's provision.lock pins other files than cold-1's"
done
say "cold cache, $machines machines: byte-exact; CDN sent $cold_cdn_nginx bytes by nginx's count, $cold_cdn_origin by" \
  "its own, for $hub_model_bytes model bytes ($(ratio "$cold_cdn_origin" "$hub_model_bytes")x), in" \
  "$cold_cdn_requests requests for $slices slices; wall ${cold_seconds} s"

# ---- 2. warm cache, locked ---------------------------------------------------------
read_origin
cdn_before=${origin[cdn_bytes]}
hub_requests_before=${origin[hub_requests]}
log_from=$(log_lines "$mirror_log")
run_fleet warm --locked "$first_lock"
warm_seconds=$fleet_seconds
warm_cdn_nginx=$(log_sum "$mirror_log" "$log_from" /_cdn/ upstream_bytes)
read_origin
warm_cdn_origin=$(( origin[cdn_bytes] - cdn_before ))
warm_hub_requests=$(( origin[hub_requests] - hub_requests_before ))
warm_public=$(log_sum "$mirror_log" "$log_from" /_url/example.com/fleet/ upstream_bytes)
(( warm_cdn_nginx == 0 && warm_cdn_origin == 0 )) ||
  fail "warm cache: the CDN still sent bytes ($warm_cdn_nginx by nginx's count, $warm_cdn_origin by its own)"
(( warm_public == 0 )) || fail "warm cache: example.com still sent $warm_public bytes of the public file"
say "warm cache, $machines machines, --locked: byte-exact; CDN sent 0 bytes; wall ${warm_seconds} s"

# ---- 3. what the cache must not give away ---------------------------------------
# Both files are known to the mirror: the gated one's bytes are in its cache.
# The Hub must still refuse the gated file to a machine without HF_TOKEN, and
# the origin must judge the protected URL's token itself.
sole_config=$work/credentials.toml
sed -n '/^\[models.vae.flux-vae\]/,/^file/p; /^\[models.controlnet.canny\]/,/^auth_header/p' "$config" >"$sole_config"
log_from=$(log_lines "$mirror_log")
MACHINE_HF_TOKEN="" MACHINE_EXAMPLE_TOKEN="wrong-token" start_machine no-credentials "$mirror_port" "$sole_config"
wait_machines no-credentials
(( machine_status[no-credentials] == 3 )) ||
  { show_output no-credentials; fail "without HF_TOKEN and with a wrong URL token the exit code is ${machine_status[no-credentials]}, not 3"; }
for installed in sdnext/models/VAE/ae.safetensors sdnext/models/ControlNet/canny.safetensors; do
  [[ ! -e $work/machines/no-credentials/$installed ]] || fail "a machine without the credentials got $installed from the mirror"
done
sleep 0.2
awk -v from="$log_from" 'NR > from && /status=401 / && /uri=\/black-forest-labs\/FLUX.1-dev\/resolve\// && /upstream_status=401/ { found = 1 }
  END { exit !found }' "$mirror_log" || fail "the Hub's refusal of the gated file did not come through the mirror"
awk -v from="$log_from" 'NR > from && /status=401 / && /uri=\/_url\/example.com\/control\// && /cache=BYPASS/ { found = 1 }
  END { exit !found }' "$mirror_log" || fail "the protected URL was not passed to its origin (no BYPASS line with 401)"
say "without credentials: the Hub refuses the gated file though its bytes are cached, the origin the wrong token (exit 3)"

# Not an open proxy: hosts the recipe does not list get a 404, and no request leaves.
cat >"$work/elsewhere.toml" <<TOML
[models.checkpoints.metadata]
url = "https://$mirror_name:$mirror_port/_url/169.254.169.254/latest/meta-data/model.safetensors"
[models.checkpoints.other-cdn]
url = "https://$mirror_name:$mirror_port/_cdn/cdn.elsewhere.example/other.safetensors"
TOML
log_from=$(log_lines "$mirror_log")
start_machine elsewhere "$mirror_port" "$work/elsewhere.toml" --retries 0
wait_machines elsewhere
(( machine_status[elsewhere] == 4 )) ||
  { show_output elsewhere; fail "unlisted hosts through /_url/ and /_cdn/: exit ${machine_status[elsewhere]}, not 4 (not found)"; }
sleep 0.2
awk -v from="$log_from" 'NR > from && (/uri=\/_url\// || /uri=\/_cdn\//) { lines++; if (!/status=404 / || !/upstream_status=- /) bad = 1 }
  END { exit !(lines >= 2 && !bad) }' "$mirror_log" ||
  fail "the mirror forwarded a request for a host it does not list (or did not answer 404)"
say "unlisted hosts: 404 from the mirror itself, nothing forwarded"

# ---- 4. a mirror that ignores Range ---------------------------------------------------
big=sdnext/models/Stable-diffusion/model.safetensors
big_config=$work/big.toml
sed -n '/^\[models.checkpoints.fleet-base\]/,/^file/p' "$config" >"$big_config"
check_big() { # NAME
  [[ -f $work/machines/$1/$big ]] || { show_output "$1"; fail "$1 did not install $big"; }
  [[ $(sha256sum "$work/machines/$1/$big" | cut -d' ' -f1) == "${reference_sha[$big]}" ]] ||
    fail "$1 installed $big with other bytes than the origin's"
}
whole_from=$(log_lines "$work/nginx/whole.log")
start_machine whole "$whole_port" "$big_config"
wait_machines whole
(( machine_status[whole] == 0 )) || { show_output whole; fail "through a mirror without Range support, exit ${machine_status[whole]}"; }
check_big whole
awk -v from="$whole_from" 'NR > from && /status=200 uri=\/_cdn\// && /range="bytes=/ { found = 1 } END { exit !found }' \
  "$work/nginx/whole.log" || fail "the Range-ignoring mirror never answered a Range request with 200: nothing was tested"

# A download cut off mid-way at a mirror that honours Range, resumed at one that does not.
start_machine resumed "$slow_port" "$big_config"
# (its output is kept as resumed-cut.out)
state=$work/machines/resumed/$big.part.state
for _ in $(seq 300); do [[ -s $state ]] && break; sleep 0.1; done
sleep 1.5
kill -9 "${machine_pids[0]}" 2>/dev/null || true
wait_machines resumed 2>/dev/null  # (bash would report the kill)
mv "$work/machines/resumed.out" "$work/machines/resumed-cut.out"
[[ -s $state && ! -e $work/machines/resumed/$big ]] ||
  fail "could not leave a partial download behind (resume state: $(ls -l "$state" 2>&1))"
start_machine resumed "$whole_port" "$big_config"
wait_machines resumed
(( machine_status[resumed] == 0 )) || { show_output resumed; fail "resuming at a mirror without Range support: exit ${machine_status[resumed]}"; }
grep -q 'ignores Range requests' "$work/machines/resumed.out" ||
  { show_output resumed; fail "the resumed run did not meet the 200 to its Range request: nothing was tested"; }
check_big resumed
say "a mirror answering Range with the whole file: installed intact, fresh and when resuming a .part"

# ---- 5. slices of two versions ---------------------------------------------------------
# Version a is the origin's file, b the same size with one byte changed in the
# second half; their mtimes differ, so nginx gives each its own ETag.
blob=${reference_sha[$big]}
cp "$work/models/fleet/base-model/model.safetensors" "$work/mixed/a/$blob"
plain_size=$(( 24 * 1024 * 1024 ))
head -c "$plain_size" /dev/urandom >"$work/mixed/a/files/plain.safetensors"
for file in "$blob" files/plain.safetensors; do
  cp "$work/mixed/a/$file" "$work/mixed/b/$file"
  python3 -c '
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) - 4096)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 0xFF]))' "$work/mixed/b/$file"
done
touch -d '2026-01-01 00:00:00' "$work/mixed/a/$blob" "$work/mixed/a/files/plain.safetensors"
touch -d '2026-02-01 00:00:00' "$work/mixed/b/$blob" "$work/mixed/b/files/plain.safetensors"
mixed_config=$work/mixed.toml
{
  cat "$big_config"
  echo
  echo "[models.checkpoints.plain]  # no sha256: only the ETags can tell the versions apart"
  echo "url = \"https://$mirror_name:$mixed_port/files/plain.safetensors\""
} >"$mixed_config"
mixed_from=$(log_lines "$work/nginx/mixed.log")
start_machine mixed "$mixed_port" "$mixed_config"
wait_machines mixed
(( machine_status[mixed] != 0 )) || fail "spliced slices of two versions were accepted (exit 0)"
for installed in "$big:$blob" sdnext/models/Stable-diffusion/plain.safetensors:files/plain.safetensors; do
  path=$work/machines/mixed/${installed%%:*}
  [[ -e $path ]] || continue
  sha=$(sha256sum "$path" | cut -d' ' -f1)
  for version in a b; do
    [[ $sha == "$(sha256sum "$work/mixed/$version/${installed#*:}" | cut -d' ' -f1)" ]] &&
      fail "${installed%%:*} was installed whole from version $version while the mirror served the other: the mismatch was not tested"
  done
  fail "a file spliced from two versions was installed: ${installed%%:*}"
done
grep -q 'changed on the server' "$work/machines/mixed.out" ||
  { show_output mixed; fail "provision did not notice the second version"; }
awk -v from="$mixed_from" 'NR > from && /status=206/ && /variant=b/ { found = 1 } END { exit !found }' \
  "$work/nginx/mixed.log" || fail "the two-version mirror never served its second version: nothing was tested"
say "slices of two versions (two ETags): both entries failed (exit ${machine_status[mixed]}), nothing spliced was installed"

echo
echo "fleet figures: N=$machines machines, model $model_mib MiB (+ small files), Hub model bytes $hub_model_bytes"
echo "  cold cache: origin CDN sent $cold_cdn_origin bytes ($(ratio "$cold_cdn_origin" "$hub_model_bytes")x the model bytes; nginx counted $cold_cdn_nginx with headers) in $cold_cdn_requests requests for $slices slices, wall ${cold_seconds} s"
echo "  warm cache: origin CDN sent $warm_cdn_origin bytes (--locked), wall ${warm_seconds} s"
echo "  Hub metadata requests passed through (resolve, listings, whoami; never cached): $cold_hub_requests cold, $warm_hub_requests warm"
echo "  plain URL, public:          origin sent $cold_public bytes cold ($(ratio "$cold_public" "$public_url_bytes")x), $warm_public warm"
echo "  plain URL, with credential: origin sent $cold_credential bytes cold ($machines x $credential_url_bytes: passed through, by design)"
echo "fleet test passed"
