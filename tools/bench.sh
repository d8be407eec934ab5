#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmarks provision's download engine against curl, wget and aria2c, in one
# run, on a loopback nginx started here (its own config and prefix in a temp
# folder, an unprivileged port; nothing outside that folder is touched).
#
#   bash tools/bench.sh                 # all cases, medians of 3
#   REPEAT=5 CASES="a c" bash tools/bench.sh
#
# Cases (targets from issue 4 in brackets):
#   a  one 1 GiB file, unthrottled            [no slower than curl -o, verification included]
#   b  the same file, nginx limit_rate 20m per connection  [no slower than aria2c -x16 -s16]
#   c  200 files of 256 KiB                   [no slower than aria2c -j5]
#   d  re-run with 10 GiB already in place, as 100 entries of 100 MiB
#                                             [under 0.5 s; no model bytes fetched]
#   every case: peak RSS under 64 MiB
#
# Settings (environment): REPEAT (3), REPEAT_SLOW (1: runs of the single-
# connection tools in case b, about 50 s each), BIG_MIB (1024), CASES ("a b c d"),
# BENCH_DIR (a new folder under TMPDIR; the downloads are written there, so it
# measures that filesystem: provision syncs every file before it is installed,
# curl/wget/aria2c do not), PROVISION (the binary; default: a release build in
# build-release, configured and built if missing), KEEP=1 keeps BENCH_DIR.
#
# Needs nginx, curl, wget, aria2 and GNU time: bash tools/install-deps.sh --bench
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPEAT="${REPEAT:-3}"
REPEAT_SLOW="${REPEAT_SLOW:-1}"
BIG_MIB="${BIG_MIB:-1024}"
CASES="${CASES:-a b c d e}"

for tool in nginx curl wget aria2c python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run: bash tools/install-deps.sh --bench" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "bench: GNU time (/usr/bin/time) is missing: apt-get install time" >&2; exit 2; }

if [[ -z "${PROVISION:-}" ]]; then
  if [[ ! -d "$here/build-release" ]]; then meson setup "$here/build-release" --buildtype=release >/dev/null; fi
  ninja -C "$here/build-release" examples/provision >/dev/null
  PROVISION="$here/build-release/examples/provision"
fi

work="${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/provision-bench.XXXXXX")}"
mkdir -p "$work"
chmod 755 "$work"  # started as root, nginx's workers run as nobody and must read the files
root="$work/www"
mkdir -p "$root/many" "$work/nginx/logs" "$work/nginx/tmp" "$work/out" "$work/results"

cleanup() {
  if [[ -f "$work/nginx/nginx.pid" ]]; then kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# Disk: the source file, one copy being downloaded, the small files; case d
# uses sparse files (about no space). Shrink the big file when space is short.
avail_mib=$(( $(df -P -k "$work" | awk 'NR == 2 {print $4}') / 1024 ))
need_mib=$(( 2 * BIG_MIB + 200 ))
if (( avail_mib < need_mib + 512 )); then
  BIG_MIB=$(( (avail_mib - 712) / 2 ))
  (( BIG_MIB >= 64 )) || { echo "bench: only ${avail_mib} MiB free in $work; need at least 900" >&2; exit 2; }
  echo "bench: only ${avail_mib} MiB free in $work: the big file is shrunk to ${BIG_MIB} MiB" >&2
fi
echo "bench: ${work} ($(df -h -P "$work" | awk 'NR == 2 {print $4 " free on " $6}')), big file ${BIG_MIB} MiB, medians of ${REPEAT}"

# ---------------------------------------------------------------------------
# Test data
head -c "$(( BIG_MIB * 1024 * 1024 ))" /dev/urandom > "$root/big.safetensors"
big_sha=$(sha256sum "$root/big.safetensors" | cut -c1-64)
for i in $(seq -w 1 200); do head -c 262144 /dev/urandom > "$root/many/f$i.safetensors"; done
# Case d: a hundred 100 MiB files of zeros (10 GiB in all), sparse on both
# sides (no disk used).
mkdir -p "$root/inplace"
for i in $(seq -w 1 100); do truncate -s 100M "$root/inplace/z$i.safetensors"; done
zero_sha=$(head -c 104857600 /dev/zero | sha256sum | cut -c1-64)

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tls_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
tls_base="https://127.0.0.1:$tls_port"
# Case e: the same file over TLS, with a throw-away CA the clients are told to trust.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/tls.ext" -out "$work/tls.pem" 2>/dev/null
cat > "$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$port;
    root $root;
    location /slow/ { alias $root/; limit_rate 20m; }
  }
  server {
    listen 127.0.0.1:$tls_port ssl;
    ssl_certificate $work/tls.pem;
    ssl_certificate_key $work/tls.key;
    root $root;
  }
}
EOF
nginx -e "$work/nginx/logs/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
for _ in $(seq 50); do curl -s -o /dev/null "$base/many/f001.safetensors" && break; sleep 0.1; done

# Configs
printf '[models.checkpoints.big]\nurl = "%s/big.safetensors"\nsha256 = "%s"\n' "$base" "$big_sha" > "$work/a.toml"
printf '[models.checkpoints.big]\nurl = "%s/big.safetensors"\nsha256 = "%s"\n' "$tls_base" "$big_sha" > "$work/e.toml"
printf '[models.checkpoints.big]\nurl = "%s/slow/big.safetensors"\nsha256 = "%s"\n' "$base" "$big_sha" > "$work/b.toml"
{
  echo "[models.lora]"
  for f in "$root"/many/*.safetensors; do
    name=$(basename "$f" .safetensors)
    printf '%s = { url = "%s/many/%s.safetensors", sha256 = "%s" }\n' "$name" "$base" "$name" "$(sha256sum "$f" | cut -c1-64)"
  done
} > "$work/c.toml"
for f in "$root"/many/*.safetensors; do echo "$base/many/$(basename "$f")"; done > "$work/c.list"
{
  echo "[models.checkpoints]"
  for i in $(seq -w 1 100); do printf 'z%s = { url = "%s/inplace/z%s.safetensors", sha256 = "%s" }\n' "$i" "$base" "$i" "$zero_sha"; done
} > "$work/d.toml"
for i in $(seq -w 1 100); do echo "$base/inplace/z$i.safetensors"; done > "$work/d.list"

# ---------------------------------------------------------------------------
# Measurement: run a command TIMES times with a fresh output folder each time
# (unless told to keep it), record wall, user+sys CPU and peak RSS. The cases
# call it once per tool and round, the tools taking turns, so that a change in
# the machine's load falls on all of them alike. Each run starts after `sync`:
# the previous run's unwritten gigabyte must not be flushed on the next one's
# time (provision syncs its files before installing them; the others do not).
out="$work/out"
measure() {  # measure CASE TOOL TIMES KEEP_OUTPUT -- command...
  local case_name=$1 tool=$2 times=$3 keep=$4
  shift 5
  for run in $(seq "$times"); do
    if [[ "$keep" != keep ]]; then rm -rf "$out"; mkdir -p "$out"; fi
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$work/results/time" "$@" >"$work/results/stdout" 2>"$work/results/stderr" || {
      echo "bench: $tool failed in case $case_name:" >&2; tail -5 "$work/results/stderr" >&2; exit 1; }
    echo "$case_name|$tool|$(tail -1 "$work/results/time")" >> "$work/results/all"
  done
  printf '  %-3s %-38s done (%s s)\n' "$case_name" "$tool" "$(cut -d' ' -f1 "$work/results/time" | tail -1)"
}

for c in $CASES; do
  case "$c" in
  a)
    for _ in $(seq "$REPEAT"); do
      measure a "provision (default 16 connections, SHA-256)" 1 fresh -- "$PROVISION" "$work/a.toml" --workspace "$out/ws" -q
      measure a "curl -o" 1 fresh -- curl -s -o "$out/big.safetensors" "$base/big.safetensors"
      measure a "curl -o, then sha256sum" 1 fresh -- sh -c "curl -s -o '$out/big.safetensors' '$base/big.safetensors' && sha256sum '$out/big.safetensors' >/dev/null"
      measure a "wget -O" 1 fresh -- wget -q -O "$out/big.safetensors" "$base/big.safetensors"
      measure a "aria2c -x16 -s16" 1 fresh -- aria2c -q -x16 -s16 --file-allocation=none -d "$out" -o big.safetensors "$base/big.safetensors"
    done
    ;;
  b)
    for _ in $(seq "$REPEAT"); do
      measure b "provision (default 16 connections)" 1 fresh -- "$PROVISION" "$work/b.toml" --workspace "$out/ws" -q
      measure b "provision --connections 8" 1 fresh -- "$PROVISION" "$work/b.toml" --workspace "$out/ws" -q --connections 8
      measure b "aria2c -x16 -s16" 1 fresh -- aria2c -q -x16 -s16 --file-allocation=none -d "$out" -o big.safetensors "$base/slow/big.safetensors"
    done
    measure b "curl -o" "$REPEAT_SLOW" fresh -- curl -s -o "$out/big.safetensors" "$base/slow/big.safetensors"
    measure b "wget -O" "$REPEAT_SLOW" fresh -- wget -q -O "$out/big.safetensors" "$base/slow/big.safetensors"
    ;;
  c)
    for _ in $(seq "$REPEAT"); do
      measure c "provision (--jobs 5, SHA-256)" 1 fresh -- "$PROVISION" "$work/c.toml" --workspace "$out/ws" -q
      measure c "aria2c -j5" 1 fresh -- aria2c -q -j5 --file-allocation=none -d "$out" -i "$work/c.list"
      measure c "curl -Z (5 parallel)" 1 fresh -- sh -c "cd '$out' && curl -s -Z --parallel-max 5 --remote-name-all \$(cat '$work/c.list')"
      measure c "wget -i" 1 fresh -- wget -q -P "$out" -i "$work/c.list"
    done
    ;;
  e)
    for _ in $(seq "$REPEAT"); do
      measure e "provision (default 16 connections, SHA-256)" 1 fresh -- "$PROVISION" "$work/e.toml" --workspace "$out/ws" -q --cacert "$work/ca.pem"
      measure e "curl -o" 1 fresh -- curl -s --cacert "$work/ca.pem" -o "$out/big.safetensors" "$tls_base/big.safetensors"
      measure e "aria2c -x16 -s16" 1 fresh -- aria2c -q -x16 -s16 --ca-certificate="$work/ca.pem" --file-allocation=none -d "$out" -o big.safetensors "$tls_base/big.safetensors"
    done
    ;;
  d)
    # In place: sparse copies of the hundred files. provision's first run hashes
    # them once (they match the config's digests) and records them: not timed.
    rm -rf "$out"; mkdir -p "$out/ws/sdnext/models/Stable-diffusion" "$out/aria"
    for i in $(seq -w 1 100); do
      truncate -s 100M "$out/ws/sdnext/models/Stable-diffusion/z$i.safetensors"
      truncate -s 100M "$out/aria/z$i.safetensors"
    done
    "$PROVISION" "$work/d.toml" --workspace "$out/ws" -q >/dev/null
    measure d "provision re-run (100 x 100 MiB in place)" "$REPEAT" keep -- "$PROVISION" "$work/d.toml" --workspace "$out/ws" -q
    measure d "aria2c -c re-run (asks the server)" "$REPEAT" keep -- aria2c -q -c -j5 --auto-file-renaming=false --file-allocation=none -d "$out/aria" -i "$work/d.list"
    measure d "provision --verify (re-hashes 10 GiB)" 1 keep -- "$PROVISION" "$work/d.toml" --workspace "$out/ws" -q --verify
    ;;
  esac
done

# ---------------------------------------------------------------------------
# Report: medians, ratios against provision, the targets.
python3 - "$work/results/all" "$BIG_MIB" <<'EOF'
import statistics, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    case, tool, figures = line.rstrip("\n").split("|")
    wall, user, system, rss = figures.split()
    key = (case, tool)
    if key not in rows:
        rows[key] = []
        order.append(key)
    rows[key].append((float(wall), float(user) + float(system), int(rss) / 1024))
titles = {"a": "one %s MiB file, unthrottled" % sys.argv[2], "b": "the same behind limit_rate 20m per connection",
          "c": "200 files of 256 KiB", "d": "re-run with 10 GiB in place (100 entries)",
          "e": "one %s MiB file over HTTPS (nginx TLS)" % sys.argv[2]}
targets = {"a": "curl -o", "b": "aria2c -x16 -s16", "c": "aria2c -j5", "e": "curl -o"}
print()
print("| case | tool | runs | median wall (s) | median CPU (s) | peak RSS (MiB) | wall vs provision |")
print("|---|---|---|---|---|---|---|")
verdicts = []
for case in "abcde":
    keys = [k for k in order if k[0] == case]
    if not keys:
        continue
    ours = next((k for k in keys if k[1].startswith("provision")), None)
    ours_wall = statistics.median(r[0] for r in rows[ours]) if ours else None
    for key in keys:
        runs = rows[key]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        ratio = "%.2fx" % (wall / ours_wall) if ours_wall else ""
        print("| %s: %s | %s | %d | %.2f | %.2f | %.1f | %s |" % (case, titles[case], key[1], len(runs), wall, cpu, rss, ratio))
    if case in targets and ours:
        target = next((k for k in keys if k[1] == targets[case]), None)
        if target:
            theirs = statistics.median(r[0] for r in rows[target])
            verdicts.append("%s: provision %.2f s vs %s %.2f s: provision/target = %.2f (%s)" % (
                case, ours_wall, targets[case], theirs, ours_wall / theirs, "met" if ours_wall <= theirs else "NOT met"))
    if case == "d" and ours:
        verdicts.append("d: provision re-run %.3f s (%s)" % (ours_wall, "met" if ours_wall < 0.5 else "NOT met"))
peak = max((r[2] for k in order if k[1].startswith("provision") for r in rows[k]), default=0)
verdicts.append("peak RSS of provision: %.1f MiB (%s)" % (peak, "met" if peak < 64 else "NOT met"))
print()
for verdict in verdicts:
    print("- " + verdict)
EOF
echo
echo "bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(uname -sr)"
