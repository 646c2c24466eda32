// Package verity computes and checks dm-verity hash trees in the on-disk format
// that `veritysetup format` writes, so the guest's read-only root can be
// protected by the kernel's dm-verity target with nothing but Go at build time.
//
// The output is byte-identical to cryptsetup 2.6's `veritysetup format
// --salt=HEX --uuid=UUID data hash` for hash type 1 with sha256:
//
//   - offset 0 of the hash file holds the 512-byte verity superblock
//     (cryptsetup lib/verity/verity.c, struct verity_sb; described on the
//     cryptsetup wiki page "DMVerity", section "Verity superblock format"),
//     zero-padded to one hash block;
//   - the hash tree follows at HashOffset = align_up(512, HashBlockSize),
//     levels laid out top level first (cryptsetup lib/verity/verity_hash.c,
//     VERITY_create_or_verify_hash);
//   - each digest is H(salt || block): for hash type 1 the salt is
//     prepended, and each digest is zero-padded to a power of two (Linux
//     Documentation/admin-guide/device-mapper/verity.rst, "<version>");
//     with sha256 a 4096-byte hash block holds 128 digests;
//   - the tail of the last block of every level is zero-filled;
//   - the root hash is H(salt || top hash block), or H(salt || data block 0)
//     when the data is a single block and the tree is empty.
//
// The tree is built in memory (about dataSize/128 bytes with sha256 and
// 4096-byte blocks, 8 MiB per GiB of data) and the leaf level is hashed in
// parallel across GOMAXPROCS workers reading large chunks, which is what makes
// it faster than veritysetup, which reads and hashes one block at a time.
package verity
