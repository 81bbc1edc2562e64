#!/usr/bin/env bash
# Image pulls from a loopback registry, and what a stored image adds to a run's start.
#   1. A ~100 MiB image (4 gzip layers of incompressible data, 25 MiB each) in Debian's
#      docker-registry (TLS, htpasswd), pulled ROUNDS times into an empty store by
#        sandbox-agent image pull   (fetch, verify every digest, store blobs, unpack the root)
#        skopeo copy docker://… oci:DIR   (fetch, verify, write an OCI layout; no unpacking)
#        sandbox-agent image import of skopeo's layout   (the unpacking alone, for the split)
#      interleaved (one of each in turn); wall time and CPU time (user+sys of the process tree).
#   2. `sandbox-agent run -- true` with that image from the store (a registry reference) against
#      the same root given as a directory, interleaved by spawn_bench.
# Needs root, docker-registry, skopeo, htpasswd, openssl. Loopback only.
# Usage: [ROUNDS=5] [RUNS=100] bench/image_pull_bench.sh   (after scripts/setup and scripts/build)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
runs=${RUNS:-100}
work=$(mktemp -d)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
reg=127.0.0.1:$port

# TLS and a user for the registry.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
echo "subjectAltName=IP:127.0.0.1" > "$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/ext.cnf" -out "$work/server.pem" 2>/dev/null
mkdir -p "$work/certs.d" && cp "$work/ca.pem" "$work/certs.d/ca.crt"
htpasswd -Bbc "$work/htpasswd" bench bench-password 2>/dev/null
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/storage}}
http: {addr: "$reg", tls: {certificate: $work/server.pem, key: $work/server.key}}
auth: {htpasswd: {realm: bench, path: $work/htpasswd}}
YAML
docker-registry serve "$work/registry.yml" 2>/dev/null & reg_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

# The image: busybox for `true`, and four 25 MiB layers of random bytes (gzip, as pushed).
mkdir -p "$work/oci/blobs/sha256" "$work/root/bin"
cp /bin/busybox "$work/root/bin/busybox"; ln -s busybox "$work/root/bin/sh"; ln -s busybox "$work/root/bin/true"
layers=""
add_layer() {  # DIR
  tar -C "$1" -czf "$work/layer.tgz" .
  local d; d=$(sha256sum "$work/layer.tgz" | cut -d' ' -f1)
  mv "$work/layer.tgz" "$work/oci/blobs/sha256/$d"
  layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c%s "$work/oci/blobs/sha256/$d")}"
}
add_layer "$work/root"
for i in 1 2 3 4; do
  mkdir -p "$work/l$i/data"; head -c $((25 << 20)) /dev/urandom > "$work/l$i/data/blob$i"
  add_layer "$work/l$i"
done
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config.json"
dc=$(sha256sum "$work/config.json" | cut -d' ' -f1); cp "$work/config.json" "$work/oci/blobs/sha256/$dc"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s]}' \
  "$dc" "$(stat -c%s "$work/config.json")" "$layers" > "$work/manifest.json"
dm=$(sha256sum "$work/manifest.json" | cut -d' ' -f1); cp "$work/manifest.json" "$work/oci/blobs/sha256/$dm"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d}]}' \
  "$dm" "$(stat -c%s "$work/manifest.json")" > "$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
skopeo copy --quiet --dest-creds bench:bench-password --dest-cert-dir "$work/certs.d" "oci:$work/oci" "docker://$reg/bench/big:1"
size=$(du -sb "$work/oci/blobs" | cut -f1)

auth=$(printf bench:bench-password | base64)
echo "{\"auths\":{\"$reg\":{\"auth\":\"$auth\"}}}" > "$work/regcred.json"
cat > "$work/sandbox.yaml" <<YAML
secrets: [{name: regcred, from: "file:$work/regcred.json"}]
registries: [{host: "$reg", ca_file: "$work/ca.pem"}]
sandbox: {name: bench, image: "$reg/bench/big:1", image_pull_secret: regcred}
YAML

# CPU seconds (user+sys) and wall seconds of one command, children included.
measure() {  # LABEL CMD...
  local t0 t1 c0 c1
  c0=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  t0=$(date +%s.%N)
  "${@:2}" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  t1=$(date +%s.%N)
  c1=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  printf '| %s | %s | %.0f | %.0f |\n' "$1" "$round" "$(echo "($t1-$t0)*1000" | bc)" \
    "$(echo "($c1-$c0)*1000/$(getconf CLK_TCK)" | bc)"
}
echo "## pull of a $((size >> 20)) MiB image ($((size)) bytes of blobs), $rounds rounds, interleaved"
echo "| client | round | wall ms | CPU ms |"
echo "|---|---:|---:|---:|"
for round in $(seq "$rounds"); do
  rm -rf "$work/store" "$work/skopeo-out" "$work/store-import"
  measure "sandbox-agent image pull (+unpack)" build/sandbox-agent image pull "$reg/bench/big:1" \
    --config "$work/sandbox.yaml" --image-store "$work/store"
  measure "skopeo copy → oci:" skopeo copy --quiet --src-creds bench:bench-password \
    --src-cert-dir "$work/certs.d" "docker://$reg/bench/big:1" "oci:$work/skopeo-out"
  measure "(unpacking alone: image import of that layout)" build/sandbox-agent image import \
    "$work/skopeo-out" --tag bench/big:1 --image-store "$work/store-import"
done

echo
echo "## a run's start: the image from the store (a registry reference) vs the same root as a directory"
root=$(ls -d "$work"/store/rootfs/*/ | head -1)
# The same file but for the image, so that both load the same secret (the registry credentials).
sed "s|image: \"$reg/bench/big:1\"|image: \"${root%/}\"|" "$work/sandbox.yaml" > "$work/dir.yaml"
grep -q "image: \"/" "$work/dir.yaml"
build/spawn_bench "$runs" -- build/sandbox-agent run --config "$work/sandbox.yaml" --image-store "$work/store" -- true \
  :: build/sandbox-agent run --config "$work/dir.yaml" --image-store "$work/store" -- true
