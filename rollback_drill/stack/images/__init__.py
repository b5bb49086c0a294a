"""Build and cache the Docker images of the reference stack, without any registry.

Nothing can be pulled here, so every image is made locally:

* the base ``rollback-drill/debian:bookworm`` is a Debian rootfs made by ``mmdebstrap
  --variant=minbase`` from the host's own apt sources, written to a file and ``docker import``-ed;
* every other image is built by ``DOCKER_BUILDKIT=1 /usr/bin/docker build`` ``FROM`` that base,
  from a Dockerfile in ``fixtures/safepsy/docker/`` and an assembled build context (the host's
  local CA certificates, the anvil binary, the host's Node binary with mongosh's npm packages,
  and per release listed in the stack file: the app or the frontend page from that release's
  build - the base sources with its patches applied, rollback_drill.stack.releases - with the
  release filled in, and the release env).

Caching, in two levels:

* each image carries the label ``rollback-drill.inputs``: a hash of everything it was made from
  (rendered Dockerfile, every context file, the CA certificates, the base image id, build args).
  An image whose label matches the inputs of this run is kept ("cached"). File hashes are
  remembered by (size, mtime, inode) in ``.cache/images/file-hashes.json``, so a run with
  nothing to do takes about a second;
* the whole set is saved as one zstd-compressed ``docker save`` bundle under ``.cache/images/``
  with an index of the input hashes it holds. A machine that has the cache directory but not the
  images loads the bundle ("loaded") instead of building; only images whose inputs changed since
  are then built.

One module per part, each importing only those below it in this list:

* ``layout``: where inputs and cache are, the error every step raises, the assembly's version;
* ``dockercli``: running a step's command, and what Docker knows about local images;
* ``filehash``: which files a build reads, and their content hashes;
* ``releasebuilds``: each release's build of a service, kept on disk by content;
* ``specs``: which images the stack needs and what each is made from;
* ``baseimage`` / ``derivedimage``: the Debian base, and every image built FROM it;
* ``bundles``: the cache directory's ``docker save`` bundles and its lock;
* ``build``: the run (`build_all`) and :func:`~rollback_drill.stack.images.build.main`, which
  ``scripts/build-images.sh`` runs (``python -m rollback_drill.stack.images``); it prints one line
  per image (built / cached / loaded, seconds) and the total.

This package's ``__init__`` imports nothing, so asking whether Docker answers
(``dockercli.docker_available``) does not load the stack file's parser.
"""
