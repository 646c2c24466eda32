package gpt

import (
	"fmt"
	"math"
)

const (
	// SectorSize is the logical block size this package writes and reads.
	SectorSize = 512
	// alignSectors is the 1 MiB partition alignment that fdisk, sgdisk and
	// systemd-repart use, good for any physical block or erase size.
	alignSectors = 1 << 20 / SectorSize
	// partSizeAlign rounds partition sizes to 4096 bytes, the dm-verity and
	// filesystem block size (and a whole number of 4Kn sectors).
	partSizeAlign = 4096
	// entryCount and entrySize give the usual 16 KiB entry array: the minimum
	// the UEFI spec (5.3.1) reserves, and what go-diskfs writes.
	entryCount   = 128
	entrySize    = 128
	arraySectors = entryCount * entrySize / SectorSize // 32
	// firstUsableLBA follows the protective MBR (LBA 0), the primary header
	// (LBA 1) and the primary entry array (LBA 2-33).
	firstUsableLBA = 2 + arraySectors
	// backupSectors: the backup entry array and the backup header at the end.
	backupSectors = arraySectors + 1
	// maxDiskBytes keeps byte offsets within int64.
	maxDiskBytes = math.MaxInt64 / 2
)

// extent is where one partition lies, in sectors (LastLBA inclusive, as in GPT).
type extent struct {
	firstLBA, lastLBA uint64
}

// layout places partitions of the given byte sizes one after another: the
// first at 1 MiB, each next one at the following 1 MiB boundary, each
// size rounded up to 4096 bytes. The disk is the smallest multiple of 1 MiB
// that also holds the backup GPT (33 sectors) after the last partition,
// since many hypervisors and clouds want disk images in whole MiB.
func layout(sizes []int64) (ext []extent, totalSectors uint64, err error) {
	next := uint64(alignSectors)
	for i, size := range sizes {
		if size <= 0 || size > maxDiskBytes {
			return nil, 0, fmt.Errorf("%w: partition %d has %d bytes, want 1 to %d", ErrBadPartition, i+1, size, int64(maxDiskBytes))
		}
		sectors := alignUp(uint64(size), partSizeAlign) / SectorSize
		e := extent{firstLBA: next, lastLBA: next + sectors - 1}
		ext = append(ext, e)
		next = alignUp(e.lastLBA+1, alignSectors)
		if next > maxDiskBytes/SectorSize {
			return nil, 0, fmt.Errorf("%w: partitions add up to more than %d bytes", ErrBadPartition, int64(maxDiskBytes))
		}
	}
	last := ext[len(ext)-1].lastLBA
	totalSectors = alignUp(last+1+backupSectors, alignSectors)
	return ext, totalSectors, nil
}

// lastUsableLBA is the last sector before the backup entry array.
func lastUsableLBA(totalSectors uint64) uint64 { return totalSectors - backupSectors - 1 }

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }
