// Package gpt writes and reads the appliance's GUID Partition Table disk
// image: a protective MBR, the primary GPT header and entry array, the
// partitions, and the backup entry array and header at the end of the disk
// (UEFI Specification 2.10, section 5.3 "GUID Partition Table (GPT) Disk
// Layout"). Sectors are 512 bytes.
//
// Write is a pure function of its inputs, so the disk image is reproducible:
// every GUID is passed in (DiskGUID and UUIDsFromRootHash derive them from
// the dm-verity root hash), partitions follow each other in the given order
// at 1 MiB boundaries, and nothing depends on the clock, randomness or the
// machine. The GPT headers and entry arrays are encoded by go-diskfs
// (partition/gpt), which is deterministic once the disk GUID and every
// partition GUID are set; the protective MBR and the partition contents are
// written here (see Write for why).
//
// Partition types and the root/verity UUID convention follow the UAPI Group's
// Discoverable Partitions Specification, so systemd-gpt-auto-generator and
// systemd-dissect find the root and its hash partition from the root hash
// alone: https://uapi-group.org/specifications/specs/discoverable_partitions_specification/
package gpt
