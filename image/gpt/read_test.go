package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf16"

	"github.com/google/uuid"
)

func TestReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	img := filepath.Join(dir, "disk.img")
	d.write(t, img)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Read(f)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := Disk{GUID: d.diskGUID, FirstUsableLBA: 34, LastUsableLBA: d.wantTotalSectors - 34, BackupLBA: d.wantTotalSectors - 1}
	for i, p := range d.parts {
		want.Partitions = append(want.Partitions, Entry{
			Number: i + 1, Name: p.Name, Type: p.Type, UUID: p.UUID,
			FirstLBA: d.wantStart[i], LastLBA: d.wantStart[i] + d.wantSize[i] - 1,
		})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read =\n%+v\nwant\n%+v", got, want)
	}
	// Offset and Size locate the content, as the guest will use them.
	for i, e := range got.Partitions {
		b := make([]byte, len(d.contents[i]))
		if _, err := f.ReadAt(b, e.Offset()); err != nil || !bytes.Equal(b, d.contents[i]) {
			t.Errorf("partition %d at offset %d does not hold its content (%v)", e.Number, e.Offset(), err)
		}
		if e.Size() != int64(d.wantSize[i]*SectorSize) {
			t.Errorf("partition %d size %d, want %d", e.Number, e.Size(), d.wantSize[i]*SectorSize)
		}
	}
}

// TestReadCorrupt damages one thing at a time in a written image.
func TestReadCorrupt(t *testing.T) {
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	good := d.write(t, filepath.Join(dir, "disk.img"))
	last := len(good) - SectorSize // backup header
	le := binary.LittleEndian
	flip := func(off int) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x40; return b }
	}
	// fixed applies a change and then recomputes the CRCs, to reach the
	// checks behind them.
	fixed := func(f func([]byte)) func([]byte) []byte {
		return func(b []byte) []byte { f(b); fixCRCs(b); return b }
	}
	entry := func(lba, i int) int { return lba*SectorSize + i*entrySize }
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"primary header CRC field", flip(SectorSize + 16)},
		{"primary header disk GUID", flip(SectorSize + 60)},
		{"primary header signature", flip(SectorSize + 0)},
		{"primary entry array", flip(entry(2, 0) + 20)},
		{"unused primary entry", flip(entry(2, 127) + 5)},
		{"backup header", flip(last + 60)},
		{"backup entry array", flip(last - 32*SectorSize + 3)},
		{"MBR signature", flip(511)},
		{"MBR type", flip(446 + 4)},
		{"truncated by 1 MiB", func(b []byte) []byte { return b[:len(b)-1<<20] }},
		{"truncated to the primary GPT", func(b []byte) []byte { return b[:34*SectorSize] }},
		{"empty", func([]byte) []byte { return nil }},
		{"overlapping partitions", fixed(func(b []byte) {
			for _, lba := range []int{2, last/SectorSize - 32} {
				le.PutUint64(b[entry(lba, 1)+32:], 2060) // partition 2 starts inside partition 1
			}
		})},
		{"partition before first usable LBA", fixed(func(b []byte) {
			for _, lba := range []int{2, last/SectorSize - 32} {
				le.PutUint64(b[entry(lba, 0)+32:], 33)
			}
		})},
		{"partition past last usable LBA", fixed(func(b []byte) {
			for _, lba := range []int{2, last/SectorSize - 32} {
				le.PutUint64(b[entry(lba, 1)+40:], uint64(len(b)/SectorSize-33)) // one past LastUsableLBA
			}
		})},
		{"first LBA after last LBA", fixed(func(b []byte) {
			for _, lba := range []int{2, last/SectorSize - 32} {
				le.PutUint64(b[entry(lba, 1)+32:], 4200)
			}
		})},
		{"backup disagrees on disk GUID", fixed(func(b []byte) { b[last+56] ^= 1 })},
		{"backup disagrees on usable LBAs", fixed(func(b []byte) { le.PutUint64(b[last+48:], 6000) })},
		{"backup entries differ", fixed(func(b []byte) { b[entry(last/SectorSize-32, 0)+60] ^= 1 })},
		{"primary MyLBA wrong", fixed(func(b []byte) { le.PutUint64(b[SectorSize+24:], 2) })},
		{"backup beyond the image", fixed(func(b []byte) { le.PutUint64(b[SectorSize+32:], 1<<40) })},
		{"backup LBA absurd", fixed(func(b []byte) { le.PutUint64(b[SectorSize+32:], 1<<62) })},
		{"entry array of 1 GiB", fixed(func(b []byte) { le.PutUint32(b[SectorSize+80:], 1<<23) })},
		{"entry size 100", fixed(func(b []byte) { le.PutUint32(b[SectorSize+84:], 100) })},
		{"entry array inside the usable LBAs", fixed(func(b []byte) { le.PutUint64(b[SectorSize+72:], 40) })},
		{"header size 600", fixed(func(b []byte) { le.PutUint32(b[SectorSize+12:], 600) })},
		{"revision 2.0", fixed(func(b []byte) { le.PutUint32(b[SectorSize+8:], 0x00020000) })},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.mutate(bytes.Clone(good))))
			if !errors.Is(err, ErrBadGPT) {
				t.Fatalf("Read: %v, want ErrBadGPT", err)
			}
			t.Log(err)
		})
	}
}

func TestReadIOError(t *testing.T) {
	_, err := Read(failingReader{})
	if !errors.Is(err, os.ErrPermission) || errors.Is(err, ErrBadGPT) {
		t.Fatalf("Read: %v, want the I/O error, not ErrBadGPT", err)
	}
}

type failingReader struct{}

func (failingReader) ReadAt([]byte, int64) (int, error) { return 0, os.ErrPermission }

// smallDisk is a valid 69-sector GPT (partitions at LBA 34 and 35) built
// with writeTables, compact enough to mutate in FuzzRead.
func smallDisk(t testing.TB) []byte {
	t.Helper()
	const total = 34 + 2 + 33
	m := &memDisk{b: make([]byte, total*SectorSize)}
	rh := bytes.Repeat([]byte{7}, 32)
	data, hash := UUIDsFromRootHash(rh)
	err := writeTables(m, DiskGUID(rh), []Entry{
		{Number: 1, Name: "root-x86-64", Type: TypeRootX86_64, UUID: data, FirstLBA: 34, LastLBA: 34},
		{Number: 3, Name: "verity 😀", Type: TypeRootVerityX86_64, UUID: hash, FirstLBA: 35, LastLBA: 35, Attributes: 1 << 60},
	}, total)
	if err != nil {
		t.Fatal(err)
	}
	return m.b
}

func TestReadSmallDisk(t *testing.T) {
	d, err := Read(bytes.NewReader(smallDisk(t)))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(d.Partitions) != 2 || d.Partitions[1].Number != 3 || d.Partitions[1].Name != "verity 😀" || d.Partitions[1].Attributes != 1<<60 {
		t.Errorf("Read = %+v", d)
	}
}

// FuzzRead: Read must not panic on any input, must fail only with ErrBadGPT,
// and what it accepts must be self-consistent and, for tables of the shape
// go-diskfs writes, survive a write-read round trip. With fix set, the
// header and entry-array CRCs are recomputed first, so mutations reach the
// checks behind them. Inputs are 35 KiB: pass -fuzzminimizetime=2s or so, or
// the fuzzer spends its time minimizing.
func FuzzRead(f *testing.F) {
	small := smallDisk(f)
	f.Add(small, false)
	f.Add(small[:34*SectorSize], false)
	broken := bytes.Clone(small)
	broken[SectorSize+16] ^= 1
	f.Add(broken, false)
	overlap := bytes.Clone(small)
	binary.LittleEndian.PutUint64(overlap[2*SectorSize+2*entrySize+32:], 34)
	f.Add(overlap, true)
	f.Fuzz(func(t *testing.T, img []byte, fix bool) {
		if fix {
			img = bytes.Clone(img)
			fixCRCsLoose(img)
		}
		checkRead(t, img)
	})
}

// fixCRCsLoose is fixCRCs for arbitrary input: it recomputes whatever CRCs
// the (possibly nonsensical) header fields let it reach.
func fixCRCsLoose(img []byte) {
	le := binary.LittleEndian
	lbas := []uint64{1}
	if len(img) >= 2*SectorSize {
		lbas = append(lbas, le.Uint64(img[SectorSize+32:]))
	}
	for _, lba := range lbas {
		if lba >= uint64(len(img)/SectorSize) {
			continue
		}
		h := img[lba*SectorSize:][:SectorSize]
		arrLBA, n := le.Uint64(h[72:]), uint64(le.Uint32(h[80:]))*uint64(le.Uint32(h[84:]))
		if arrLBA < uint64(len(img)/SectorSize) && n <= uint64(len(img))-arrLBA*SectorSize {
			le.PutUint32(h[88:], crc32.ChecksumIEEE(img[arrLBA*SectorSize:][:n]))
		}
		size := min(max(le.Uint32(h[12:]), 92), SectorSize)
		clear(h[16:20])
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
	}
}

// checkRead is FuzzRead's property: no panic, only ErrBadGPT, accepted
// entries within the usable LBAs, and a lossless write-read round trip.
func checkRead(t *testing.T, img []byte) {
	d, err := Read(bytes.NewReader(img))
	if err != nil {
		if !errors.Is(err, ErrBadGPT) {
			t.Fatalf("Read: %v, want ErrBadGPT", err)
		}
		return
	}
	for _, e := range d.Partitions {
		if e.FirstLBA < d.FirstUsableLBA || e.LastLBA > d.LastUsableLBA || e.FirstLBA > e.LastLBA || e.Type == uuid.Nil {
			t.Fatalf("accepted entry %+v outside usable LBAs %d-%d", e, d.FirstUsableLBA, d.LastUsableLBA)
		}
		if len(utf16.Encode([]rune(e.Name))) > maxNameUnits {
			t.Fatalf("name %q longer than %d units", e.Name, maxNameUnits)
		}
	}
	le := binary.LittleEndian
	h := img[SectorSize:]
	if le.Uint64(h[72:]) != 2 || le.Uint32(h[80:]) != entryCount || le.Uint32(h[84:]) != entrySize ||
		d.FirstUsableLBA != firstUsableLBA || d.LastUsableLBA != lastUsableLBA(d.BackupLBA+1) {
		return // a valid table, but not one go-diskfs can reproduce
	}
	m := &memDisk{b: make([]byte, (d.BackupLBA+1)*SectorSize)}
	if err := writeTables(m, d.GUID, d.Partitions, d.BackupLBA+1); err != nil {
		t.Fatalf("writeTables of an accepted table: %v", err)
	}
	d2, err := Read(bytes.NewReader(m.b))
	if err != nil {
		t.Fatalf("Read of the rewritten table: %v", err)
	}
	if !reflect.DeepEqual(d, d2) {
		t.Fatalf("round trip changed the table:\n%+v\n%+v", d, d2)
	}
}
