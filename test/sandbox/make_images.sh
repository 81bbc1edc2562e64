#!/usr/bin/env bash
# Builds the image fixtures for the sandbox's image tests in WORK_DIR, from a root filesystem
# directory BASE (its bin/ and etc/ become the first layer):
#   layer1.tar.gz  BASE + data/keep.txt, data/gone.txt, opq/old.txt
#   layer2.tar     a whiteout of data/gone.txt, an opaque opq/ with new.txt, added.txt
#   oci/           an OCI image layout of the two layers;  oci-archive.tar  the same, as a tar
#   docker-save.tar  the same layers as `docker save` writes them (manifest.json)
#   evil-dotdot.tar  an entry "../../escaped.txt"
#   evil-link.tar    etc -> WORK_DIR/host-target (a directory outside the image)
#   evil-write.tar   etc/pwned  (a write through that symlink)
#   evil-whiteout.tar etc/.wh.victim (a whiteout through it; WORK_DIR/host-target/victim exists)
# Usage: make_images.sh WORK_DIR BASE
set -euo pipefail
W=$1
BASE=$2
mkdir -p $W/l1/data $W/l1/opq $W/l2/data $W/l2/opq
cp -a $BASE/bin $BASE/etc $W/l1/
echo keep > $W/l1/data/keep.txt; echo gone > $W/l1/data/gone.txt; echo old > $W/l1/opq/old.txt
touch $W/l2/data/.wh.gone.txt $W/l2/opq/.wh..wh..opq; echo new > $W/l2/opq/new.txt; echo added > $W/l2/added.txt
(cd $W/l1 && tar -czf ../layer1.tar.gz .)
(cd $W/l2 && tar -cf ../layer2.tar .)
mkdir -p $W/oci/blobs/sha256
d1=$(sha256sum $W/layer1.tar.gz | cut -d' ' -f1); cp $W/layer1.tar.gz $W/oci/blobs/sha256/$d1
d2=$(sha256sum $W/layer2.tar | cut -d' ' -f1); cp $W/layer2.tar $W/oci/blobs/sha256/$d2
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > $W/config.json
dc=$(sha256sum $W/config.json | cut -d' ' -f1); cp $W/config.json $W/oci/blobs/sha256/$dc
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
  $dc $(stat -c%s $W/config.json) $d1 $(stat -c%s $W/layer1.tar.gz) $d2 $(stat -c%s $W/layer2.tar) > $W/manifest.json
dm=$(sha256sum $W/manifest.json | cut -d' ' -f1); cp $W/manifest.json $W/oci/blobs/sha256/$dm
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}' $dm $(stat -c%s $W/manifest.json) > $W/oci/index.json
printf '{"imageLayoutVersion":"1.0.0"}' > $W/oci/oci-layout
(cd $W/oci && tar -cf ../oci-archive.tar .)
mkdir -p $W/docker/l1 $W/docker/l2
cp $W/layer1.tar.gz $W/docker/l1/layer.tar; cp $W/layer2.tar $W/docker/l2/layer.tar; cp $W/config.json $W/docker/config.json
printf '[{"Config":"config.json","RepoTags":["tools:1"],"Layers":["l1/layer.tar","l2/layer.tar"]}]' > $W/docker/manifest.json
(cd $W/docker && tar -cf ../docker-save.tar .)
# Hostile layers: a path leaving the root; a symlink to a host directory, then writes and a
# whiteout through it.
mkdir -p $W/evil && echo x > $W/evil/f
tar -cf $W/evil-dotdot.tar -P --transform 's|^.*/evil/f$|../../escaped.txt|' $W/evil/f
mkdir -p $W/e1 $W/e2/etc && ln -s $W/host-target $W/e1/etc && echo pwned > $W/e2/etc/pwned && touch $W/e2/etc/.wh.victim
(cd $W/e1 && tar -cf ../evil-link.tar .)
(cd $W/e2 && tar -cf ../evil-write.tar etc/pwned) && (cd $W/e2 && tar -cf ../evil-whiteout.tar etc/.wh.victim)
mkdir -p $W/host-target && echo victim > $W/host-target/victim
