#!/usr/bin/env bash
# Builds the test images from Debian's busybox-static, byte-for-byte reproducibly (node-recipes.md §1):
#   OUTDIR/busybox.oci.tar     OCI image layout tar, named docker.io/library/busybox:latest
#   OUTDIR/busybox.docker.tar  the same image in `docker save` format (manifest.json, <diffid>/layer.tar)
# Usage: scripts/build-images.sh OUTDIR. Does nothing if both outputs are newer than /bin/busybox and this script.
set -euo pipefail

out=${1:?usage: $0 OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
"$here/install-packages.sh" busybox-static

mkdir -p "$out"
out=$(cd "$out" && pwd)
oci_tar=$out/busybox.oci.tar
docker_tar=$out/busybox.docker.tar
fresh() { [ -f "$1" ] && [ "$1" -nt /bin/busybox ] && [ "$1" -nt "$0" ]; }
if fresh "$oci_tar" && fresh "$docker_tar"; then
  exit 0
fi

work=$(mktemp -d "$out/.build-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022

# Deterministic tar: sorted names, root-owned, epoch mtimes, no atime/ctime, no pid in pax header names.
det_tar() {
  local dir=$1 file=$2
  shift 2
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$dir" -cf "$file" "$@"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Root filesystem.
root=$work/rootfs
mkdir -p "$root"/{bin,etc,proc,sys,dev,www,tmp}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

# Layer, config, manifest, index.
layout=$work/oci
mkdir -p "$layout/blobs/sha256"
det_tar "$root" "$work/layer.tar" .
diff_id=$(sha "$work/layer.tar")
gzip -n -9 -c "$work/layer.tar" >"$work/layer.tar.gz"
layer_digest=$(sha "$work/layer.tar.gz")
layer_size=$(size "$work/layer.tar.gz")
cp "$work/layer.tar.gz" "$layout/blobs/sha256/$layer_digest"

printf '%s' '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}' >"$work/config.json"
config_digest=$(sha "$work/config.json")
config_size=$(size "$work/config.json")
cp "$work/config.json" "$layout/blobs/sha256/$config_digest"

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config_digest"'","size":'"$config_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer_digest"'","size":'"$layer_size"'}]}' >"$work/manifest.json"
manifest_digest=$(sha "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")
cp "$work/manifest.json" "$layout/blobs/sha256/$manifest_digest"

# containerd and docker name images by io.containerd.image.name; the OCI ref.name is the tag alone, which is what
# `skopeo copy oci-archive:busybox.oci.tar:latest` and `ctr import` expect.
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest_digest"'","size":'"$manifest_size"',"annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"latest"}}]}' >"$layout/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
find "$layout" -exec chmod u=rwX,go=rX {} +
det_tar "$layout" "$work/busybox.oci.tar" oci-layout index.json blobs

# docker save layout: uncompressed layer under <diff_id>/layer.tar, config as <digest>.json.
save=$work/docker
mkdir -p "$save/$diff_id"
cp "$work/layer.tar" "$save/$diff_id/layer.tar"
cp "$work/config.json" "$save/$config_digest.json"
printf '%s' '[{"Config":"'"$config_digest"'.json","RepoTags":["busybox:latest"],"Layers":["'"$diff_id"'/layer.tar"]}]' >"$save/manifest.json"
printf '%s' '{"busybox":{"latest":"'"$diff_id"'"}}' >"$save/repositories"
find "$save" -exec chmod u=rwX,go=rX {} +
det_tar "$save" "$work/busybox.docker.tar" manifest.json repositories "$config_digest.json" "$diff_id"

mv "$work/busybox.oci.tar" "$oci_tar"
mv "$work/busybox.docker.tar" "$docker_tar"
echo "built $oci_tar (manifest sha256:$manifest_digest) and $docker_tar"
