#!/bin/sh
# Regenerates the ELF objects in this directory; see README.md.
# Needs gcc, xz, zstd and gzip (Debian 12: gcc-12, xz-utils, zstd, gzip).
set -eu
cd "$(dirname "$0")"
CFLAGS="-c -O2 -fno-asynchronous-unwind-tables -fno-ident"
gcc $CFLAGS -o dm_demo.ko modinfo.c
gcc $CFLAGS -o nomodinfo.o nomodinfo.c
# The kernel compresses modules with these xz options (scripts/Makefile.modinst).
xz --check=crc32 --lzma2=dict=1MiB -k -f dm_demo.ko
zstd -q -f -k dm_demo.ko -o dm_demo.ko.zst
gzip -n -k -f dm_demo.ko
