package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/backend"
	diskfsgpt "github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

// ErrBadPartition: Write's arguments cannot make a valid disk (bad name,
// missing GUID, duplicate UUID, empty or unreadable file).
var ErrBadPartition = errors.New("gpt: invalid partition")

// Partition is one partition to write.
type Partition struct {
	// Name is the GPT partition name: at most 36 UTF-16 code units, no NUL.
	Name string
	// Type is the partition type GUID, e.g. TypeRootX86_64.
	Type uuid.UUID
	// UUID is the unique partition GUID (see UUIDsFromRootHash).
	UUID uuid.UUID
	// Path is the regular file whose bytes fill the partition.
	Path string
}

// maxNameUnits is the size of the PartitionName field: 72 bytes of UTF-16LE
// (UEFI 2.10, Table 5.7 "GPT Partition Entry").
const maxNameUnits = 36

// Write creates the disk image out: protective MBR, primary GPT, partitions in
// the given order (each at the next 1 MiB boundary, sized to its file rounded
// up to 4096 bytes, the rest zero), backup GPT, the whole a multiple of 1 MiB.
// The bytes depend only on the arguments and the files' contents. The image is
// built in a temporary file next to out and renamed over it on success.
//
// The GPT headers and entry arrays come from go-diskfs's gpt.Table.Write.
// The protective MBR is written here because go-diskfs leaves its CHS fields
// zero, where UEFI 2.10 Table 5.4 asks for the CHS of LBA 1 and of the last
// LBA, and truncates the size field past 2 TiB instead of saturating it.
// Partition contents are copied here too, one io.Copy per partition (which
// Linux serves with copy_file_range): go-diskfs's WritePartitionContents
// writes one 512-byte sector per call, and returns
// *part.IncompletePartitionWriteError whenever the content is shorter than
// the partition, as ours is whenever a file is not a multiple of 4096.
func Write(out string, diskGUID uuid.UUID, parts []Partition) (err error) {
	sizes, err := checkPartitions(diskGUID, parts)
	if err != nil {
		return err
	}
	ext, total, err := layout(sizes)
	if err != nil {
		return err
	}

	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// A sparse file of zeros: gaps, padding and unused entries stay zero.
	if err := f.Truncate(int64(total * SectorSize)); err != nil {
		return fmt.Errorf("gpt: sizing %s: %w", f.Name(), err)
	}
	entries := make([]Entry, len(parts))
	for i, p := range parts {
		entries[i] = Entry{Number: i + 1, Name: p.Name, Type: p.Type, UUID: p.UUID, FirstLBA: ext[i].firstLBA, LastLBA: ext[i].lastLBA}
	}
	if err := writeTables(f, diskGUID, entries, total); err != nil {
		return err
	}
	for i, p := range parts {
		if err := copyContent(f, p.Path, int64(ext[i].firstLBA*SectorSize), sizes[i]); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	// CreateTemp makes 0600; the image is not secret, and its mode should
	// not depend on the umask.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	return nil
}

// checkPartitions validates Write's arguments and returns each file's size.
func checkPartitions(diskGUID uuid.UUID, parts []Partition) ([]int64, error) {
	if diskGUID == uuid.Nil {
		return nil, fmt.Errorf("%w: disk GUID is nil", ErrBadPartition)
	}
	if len(parts) == 0 || len(parts) > entryCount {
		return nil, fmt.Errorf("%w: %d partitions, want 1 to %d", ErrBadPartition, len(parts), entryCount)
	}
	seen := map[uuid.UUID]int{diskGUID: 0}
	sizes := make([]int64, len(parts))
	for i, p := range parts {
		n := i + 1
		if units := len(utf16.Encode([]rune(p.Name))); units > maxNameUnits {
			return nil, fmt.Errorf("%w: partition %d name %q is %d UTF-16 code units, want at most %d", ErrBadPartition, n, p.Name, units, maxNameUnits)
		}
		if strings.ContainsRune(p.Name, 0) {
			return nil, fmt.Errorf("%w: partition %d name %q contains NUL", ErrBadPartition, n, p.Name)
		}
		if p.Type == uuid.Nil {
			return nil, fmt.Errorf("%w: partition %d (%q) has the nil type GUID, which marks an unused entry", ErrBadPartition, n, p.Name)
		}
		if p.UUID == uuid.Nil {
			return nil, fmt.Errorf("%w: partition %d (%q) has a nil UUID", ErrBadPartition, n, p.Name)
		}
		if j, dup := seen[p.UUID]; dup {
			what := "the disk GUID"
			if j > 0 {
				what = fmt.Sprintf("partition %d", j)
			}
			return nil, fmt.Errorf("%w: partition %d (%q) UUID %s is also %s", ErrBadPartition, n, p.Name, p.UUID, what)
		}
		seen[p.UUID] = n
		st, err := os.Stat(p.Path)
		if err != nil {
			return nil, fmt.Errorf("%w: partition %d (%q): %w", ErrBadPartition, n, p.Name, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: partition %d (%q): %s has mode %v, want a regular file", ErrBadPartition, n, p.Name, p.Path, st.Mode())
		}
		if st.Size() == 0 {
			return nil, fmt.Errorf("%w: partition %d (%q): %s is empty", ErrBadPartition, n, p.Name, p.Path)
		}
		sizes[i] = st.Size()
	}
	return sizes, nil
}

// writeTables writes the protective MBR and, through go-diskfs, both GPT
// headers and entry arrays for a disk of total sectors.
func writeTables(f backend.WritableFile, diskGUID uuid.UUID, entries []Entry, total uint64) error {
	if _, err := f.WriteAt(protectiveMBR(total), 0); err != nil {
		return fmt.Errorf("gpt: writing protective MBR: %w", err)
	}
	t := &diskfsgpt.Table{
		LogicalSectorSize:  SectorSize,
		PhysicalSectorSize: SectorSize,
		GUID:               diskGUID.String(), // set, so go-diskfs draws no random one
		ProtectiveMBR:      false,             // ours, above
	}
	for _, e := range entries {
		t.Partitions = append(t.Partitions, &diskfsgpt.Partition{
			Index:      e.Number,
			Start:      e.FirstLBA,
			End:        e.LastLBA,
			Type:       diskfsgpt.Type(e.Type.String()),
			Name:       e.Name,
			GUID:       e.UUID.String(), // set, so go-diskfs draws no random one
			Attributes: e.Attributes,
		})
	}
	if err := t.Write(f, int64(total*SectorSize)); err != nil {
		return fmt.Errorf("gpt: writing GPT: %w", err)
	}
	return nil
}

// protectiveMBR returns LBA 0 as UEFI 2.10 section 5.2.3 (Table 5.4) defines
// it: no boot code, disk signature 0, one record of type 0xEE from LBA 1 to
// the end of the disk (size saturated at 0xFFFFFFFF), and the 0xAA55
// signature. The CHS fields are what sgdisk writes: 0x000200 for LBA 1, the
// last LBA in the 255-head, 63-sector geometry, or 0xFFFFFF past cylinder 1023.
func protectiveMBR(totalSectors uint64) []byte {
	b := make([]byte, SectorSize)
	r := b[446 : 446+16]
	r[0] = 0x00 // BootIndicator: not bootable
	copy(r[1:4], chs(1))
	r[4] = 0xEE // OSType: GPT protective
	copy(r[5:8], chs(totalSectors-1))
	binary.LittleEndian.PutUint32(r[8:], 1) // StartingLBA
	binary.LittleEndian.PutUint32(r[12:], uint32(min(totalSectors-1, 0xFFFFFFFF)))
	b[510], b[511] = 0x55, 0xAA
	return b
}

// chs encodes lba as an MBR cylinder-head-sector triple.
func chs(lba uint64) []byte {
	const heads, sectors = 255, 63
	c := lba / (heads * sectors)
	if c > 1023 {
		return []byte{0xFF, 0xFF, 0xFF}
	}
	h, s := lba/sectors%heads, lba%sectors+1
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// copyContent copies the whole file at path to f at offset off. io.Copy from
// an *os.File into an *os.File uses copy_file_range on Linux.
func copyContent(f *os.File, path string, off, size int64) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	defer src.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("gpt: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err != nil {
		return fmt.Errorf("gpt: copying %s into the image: %w", path, err)
	}
	if extra, _ := src.Read(make([]byte, 1)); n != size || extra != 0 {
		return fmt.Errorf("%w: %s changed size while the image was written: read %d bytes, want %d", ErrBadPartition, path, n+int64(extra), size)
	}
	return nil
}
