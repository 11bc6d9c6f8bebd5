#!/bin/sh
# Builds the service's own image from the repository's Containerfile, without a registry:
#
#   testbed/images/service.sh ROOTFS.tar BINARY OUT.tar
#
# ROOTFS.tar is a Debian root file system (build.sh leaves one, debian-rootfs.tar), BINARY the
# llp-k8s binary built on this machine (a path inside the repository). Debian's docker.io
# runs a throwaway dockerd (own data and exec folders, no bridge, no iptables), imports the
# root file system as the base image, builds the Containerfile's `from-host` stage with the
# classic builder (which pulls nothing) and saves the image `llp-k8s:testbed` to OUT.tar, which
# containerd imports as docker.io/library/llp-k8s:testbed.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
rootfs=$1
binary=$2
out=$3
work=$(mktemp -d /tmp/llp-docker-XXXXXX)
sock=$work/docker.sock
dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    -H "unix://$sock" --iptables=false --ip-masq=false --ip-forward=false --bridge=none \
    >"$work/dockerd.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
tries=0
until [ -S "$sock" ]; do
    tries=$((tries + 1))
    if [ $tries -gt 300 ]; then
        echo "service.sh: dockerd did not start in 30 s:" >&2
        tail -20 "$work/dockerd.log" >&2
        exit 1
    fi
    sleep 0.1
done
export DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=0
/usr/bin/docker import "$rootfs" llp-testbed/debian:bookworm >/dev/null
/usr/bin/docker build -q --target from-host --build-arg RUNTIME=llp-testbed/debian:bookworm \
    --build-arg BINARY="$binary" -t llp-k8s:testbed -f "$root/Containerfile" "$root" >/dev/null
/usr/bin/docker save llp-k8s:testbed -o "$out.part"
mv "$out.part" "$out"
