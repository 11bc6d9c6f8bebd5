#!/bin/sh
# Builds the testbed's container images from Debian packages, as OCI archives in OUT_DIR:
#
#   testbed/images/build.sh OUT_DIR PAUSE_C
#
#   pause.tar    the pod sandbox, from Kubernetes' own pause.c (PAUSE_C), tagged 3.10
#   busybox.tar  Debian's busybox-static with a link per applet
#   nginx.tar    Debian's nginx, started as root like the official image (workers as
#                www-data), its welcome page on port 80, logging to stdout and stderr
#   python.tar   Debian's python3 (`python3 -m http.server` serves a folder)
#   debian-rootfs.tar  their root file system, the base of the service's own image (service.sh)
#
# Each archive holds one image tagged `latest` (pause: `3.10`); llp-testbed imports them into
# containerd under the names users write (`nginx` is `docker.io/library/nginx:latest`).
# There is no registry here: umoci makes the images from a root file system that mmdebstrap
# (nginx, python: one minimal Debian, shared) or a static binary provides.
set -eu
out=$1
pause_c=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image NAME TAG LAYER.tar CONFIG-FLAGS...: an OCI archive OUT_DIR/NAME.tar of one layer.
image() {
    name=$1 tag=$2 layer=$3
    shift 3
    rm -rf "$work/oci"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:$tag"
    umoci raw add-layer --image "$work/oci:$tag" "$layer"
    umoci config --image "$work/oci:$tag" --os=linux --architecture=amd64 "$@"
    umoci gc --layout "$work/oci"
    tar -C "$work/oci" -cf "$out/$name.tar.part" .
    mv "$out/$name.tar.part" "$out/$name.tar"
}

# A root file system with what every small image here has: passwd, group, a world-writable /tmp.
small_rootfs() {
    rootfs=$work/$1
    mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
    chmod 1777 "$rootfs/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
}

layer_of() {
    tar -C "$work/$1" --numeric-owner -cf "$work/$1.tar" .
    echo "$work/$1.tar"
}

mkdir -p "$out"

small_rootfs pause
gcc -static -O2 -o "$work/pause/pause" "$pause_c"
strip "$work/pause/pause"
image pause 3.10 "$(layer_of pause)" --config.entrypoint=/pause --config.user=65535:65535

small_rootfs busybox
mkdir -p "$work/busybox/bin"
cp /bin/busybox "$work/busybox/bin/busybox"
for applet in $("$work/busybox/bin/busybox" --list); do
    [ -e "$work/busybox/bin/$applet" ] || ln -s busybox "$work/busybox/bin/$applet"
done
image busybox latest "$(layer_of busybox)" --config.cmd=sh --config.env=PATH=/bin

mmdebstrap --quiet --variant=minbase --include=nginx-light,python3,ca-certificates \
    --customize-hook='ln -sf /dev/stdout "$1/var/log/nginx/access.log"' \
    --customize-hook='ln -sf /dev/stderr "$1/var/log/nginx/error.log"' \
    --customize-hook='rm -rf "$1/var/cache/apt"/* "$1/var/lib/apt/lists"/*' \
    bookworm "$work/debian.tar"
path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
image nginx latest "$work/debian.tar" --config.env=$path \
    --config.cmd=nginx --config.cmd=-g --config.cmd='daemon off;' \
    --config.exposedports=80/tcp --config.stopsignal=SIGQUIT
image python latest "$work/debian.tar" --config.env=$path --config.cmd=python3
mv "$work/debian.tar" "$out/debian-rootfs.tar"
