package gpt

import (
	"crypto/sha256"

	"github.com/google/uuid"
)

// Partition type GUIDs from the Discoverable Partitions Specification
// (https://uapi-group.org/specifications/specs/discoverable_partitions_specification/).
var (
	// TypeRootX86_64 is "Root Partition (x86-64)".
	TypeRootX86_64 = uuid.MustParse("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	// TypeRootVerityX86_64 is "Root Verity Partition (x86-64)": a dm-verity
	// superblock followed by hash data for the matching root partition.
	TypeRootVerityX86_64 = uuid.MustParse("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5")
)

// UUIDsFromRootHash returns the partition UUIDs of a verity-protected root
// and of its hash partition: the first and the last 128 bits of the root hash.
//
// The Discoverable Partitions Specification says the root partition's UUID
// "should be the first 128 bits of the root hash of the dm-verity hash data,
// and the partition UUID of this dm-verity partition should be the final 128
// bits of it". The bytes are used as they are, in UUID string order, WITHOUT
// setting RFC 4122 version or variant bits: systemd-repart copies them raw
// (partition_format_verity_hash in src/repart/repart.c) and systemd-dissect
// matches partitions by comparing the raw 128 bits (dissect_image in
// src/shared/dissect-image.c), so setting version bits would stop systemd
// from finding the partitions. The result is therefore usually not a valid
// version-4 UUID, which GPT does not require.
//
// A root hash shorter than 16 bytes has no such halves; both results are then
// uuid.Nil, which Write rejects.
func UUIDsFromRootHash(root []byte) (data, hash uuid.UUID) {
	if len(root) < len(uuid.UUID{}) {
		return uuid.Nil, uuid.Nil
	}
	copy(data[:], root[:16])
	copy(hash[:], root[len(root)-16:])
	return data, hash
}

// diskGUIDDomain separates DiskGUID's digests from other uses of the root hash.
const diskGUIDDomain = "cocoon disk guid v1\x00"

// DiskGUID derives the disk GUID from the content: the first 16 bytes of
// sha256("cocoon disk guid v1\x00" || rootHash), marked as an RFC 4122
// version-4, variant-1 UUID the way systemd's id128_make_v4_uuid does for the
// GUIDs systemd-repart derives. Unlike the partition UUIDs nothing looks the
// disk up by hash, so it can be a well-formed UUID.
func DiskGUID(rootHash []byte) uuid.UUID {
	h := sha256.New()
	h.Write([]byte(diskGUIDDomain))
	h.Write(rootHash)
	var id uuid.UUID
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // variant 10 (RFC 4122)
	return id
}

// guidFromDisk converts a GUID as stored on disk (EFI_GUID: the first three
// fields little endian, UEFI 2.10 Appendix A) to a uuid.UUID (RFC 4122 byte
// order, as it is written as text).
func guidFromDisk(b []byte) uuid.UUID {
	var u uuid.UUID
	copy(u[:], b[:16])
	u[0], u[1], u[2], u[3] = b[3], b[2], b[1], b[0]
	u[4], u[5] = b[5], b[4]
	u[6], u[7] = b[7], b[6]
	return u
}
