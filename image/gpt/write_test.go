package gpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// sfdiskJSON is the part of `sfdisk --json` output the tests look at.
type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestWriteSfdisk(t *testing.T) {
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		t.Skip("sfdisk not installed (Debian: fdisk)")
	}
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	img := filepath.Join(dir, "disk.img")
	d.write(t, img)

	out, err := exec.Command(sfdisk, "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var got sfdiskJSON
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parsing sfdisk --json: %v\n%s", err, out)
	}
	pt := got.PartitionTable
	if pt.Label != "gpt" || pt.SectorSize != 512 || !strings.EqualFold(pt.ID, d.diskGUID.String()) {
		t.Errorf("sfdisk sees label %q, sector size %d, id %s; want gpt, 512, %s", pt.Label, pt.SectorSize, pt.ID, d.diskGUID)
	}
	if pt.FirstLBA != 34 || pt.LastLBA != d.wantTotalSectors-34 {
		t.Errorf("sfdisk usable LBAs %d-%d, want 34-%d", pt.FirstLBA, pt.LastLBA, d.wantTotalSectors-34)
	}
	if len(pt.Partitions) != len(d.parts) {
		t.Fatalf("sfdisk sees %d partitions, want %d:\n%s", len(pt.Partitions), len(d.parts), out)
	}
	for i, p := range pt.Partitions {
		w := d.parts[i]
		if !strings.EqualFold(p.Type, w.Type.String()) || !strings.EqualFold(p.UUID, w.UUID.String()) || p.Name != w.Name {
			t.Errorf("partition %d: sfdisk sees type %s uuid %s name %q, want %s %s %q", i+1, p.Type, p.UUID, p.Name, w.Type, w.UUID, w.Name)
		}
		if p.Start != d.wantStart[i] || p.Size != d.wantSize[i] {
			t.Errorf("partition %d: sfdisk sees start %d size %d, want %d %d", i+1, p.Start, p.Size, d.wantStart[i], d.wantSize[i])
		}
	}
	if out, err := exec.Command(sfdisk, "--verify", img).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
}

// TestWriteSgdisk checks the image with gdisk's own verifier and compares our
// protective MBR with the one sgdisk writes for a disk of the same size.
func TestWriteSgdisk(t *testing.T) {
	sgdisk, err := exec.LookPath("sgdisk")
	if err != nil {
		t.Skip("sgdisk not installed (Debian: gdisk)")
	}
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	img := filepath.Join(dir, "disk.img")
	ours := d.write(t, img)
	if out, err := exec.Command(sgdisk, "--verify", img).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No problems found")) {
		t.Errorf("sgdisk --verify: %v\n%s", err, out)
	}

	blank := filepath.Join(dir, "blank.img")
	if err := os.WriteFile(blank, make([]byte, len(ours)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sgdisk, "--clear", blank).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk --clear: %v\n%s", err, out)
	}
	theirs, err := os.ReadFile(blank)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours[:512], theirs[:512]) {
		t.Errorf("protective MBR differs from sgdisk's:\nours   %x\nsgdisk %x", ours[446:512], theirs[446:512])
	}
}

func TestWriteContentsAndSize(t *testing.T) {
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	img := d.write(t, filepath.Join(dir, "disk.img"))
	if got := uint64(len(img)); got != d.wantTotalSectors*SectorSize || got%(1<<20) != 0 {
		t.Errorf("image is %d bytes, want %d (a multiple of 1 MiB)", got, d.wantTotalSectors*SectorSize)
	}
	for i, c := range d.contents {
		part := img[d.wantStart[i]*SectorSize:][:d.wantSize[i]*SectorSize]
		if !bytes.Equal(part[:len(c)], c) {
			t.Errorf("partition %d does not hold %s", i+1, d.parts[i].Path)
		}
		if !bytes.Equal(part[len(c):], make([]byte, len(part)-len(c))) {
			t.Errorf("partition %d is not zero after its %d bytes of content", i+1, len(c))
		}
	}
	st, err := os.Stat(filepath.Join(dir, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("image mode %v, want 0644", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".disk.img.*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestWriteReproducible writes the same disk twice, in different directories
// and over an existing file, and pins the image's digest: a change means the
// disk format changed (for example a go-diskfs upgrade) and must be deliberate.
func TestWriteReproducible(t *testing.T) {
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	a := d.write(t, filepath.Join(dir, "a.img"))
	other := t.TempDir()
	stale := filepath.Join(other, "b.img")
	if err := os.WriteFile(stale, bytes.Repeat([]byte{0xff}, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	b := d.write(t, stale)
	if !bytes.Equal(a, b) {
		t.Fatalf("two writes differ, first at byte %d", firstDiff(a, b))
	}
	const want = "5994117ec917ff1b5edc6a181d58110314f22dcb5660c88d2d2d5ea1e373f5c6"
	if got := sha256.Sum256(a); hex.EncodeToString(got[:]) != want {
		t.Errorf("image sha256 %x, want %s", got, want)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	d := newTestDisk(t, dir)
	empty := writeFile(t, dir, "empty", nil)
	good := d.parts[0]
	with := func(f func(*Partition)) []Partition { p := good; f(&p); return []Partition{p} }
	for _, c := range []struct {
		name  string
		guid  uuid.UUID
		parts []Partition
	}{
		{"nil disk GUID", uuid.Nil, d.parts},
		{"no partitions", d.diskGUID, nil},
		{"129 partitions", d.diskGUID, make([]Partition, 129)},
		{"name of 37 units", d.diskGUID, with(func(p *Partition) { p.Name = strings.Repeat("a", 37) })},
		{"19 emoji: 19 runes but 38 UTF-16 units", d.diskGUID, with(func(p *Partition) { p.Name = strings.Repeat("😀", 19) })},
		{"NUL in name", d.diskGUID, with(func(p *Partition) { p.Name = "root\x00" })},
		{"nil type", d.diskGUID, with(func(p *Partition) { p.Type = uuid.Nil })},
		{"nil UUID", d.diskGUID, with(func(p *Partition) { p.UUID = uuid.Nil })},
		{"UUID equals disk GUID", d.diskGUID, with(func(p *Partition) { p.UUID = d.diskGUID })},
		{"duplicate UUID", d.diskGUID, []Partition{good, good}},
		{"missing file", d.diskGUID, with(func(p *Partition) { p.Path = filepath.Join(dir, "missing") })},
		{"empty file", d.diskGUID, with(func(p *Partition) { p.Path = empty })},
		{"directory", d.diskGUID, with(func(p *Partition) { p.Path = dir })},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "bad.img")
			err := Write(out, c.guid, c.parts)
			if !errors.Is(err, ErrBadPartition) {
				t.Fatalf("Write: %v, want ErrBadPartition", err)
			}
			t.Log(err)
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Write left %s behind (%v)", out, err)
			}
		})
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir.img"), d.diskGUID, d.parts); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}

func TestUUIDsFromRootHash(t *testing.T) {
	root := make([]byte, 32)
	for i := range root {
		root[i] = byte(i)
	}
	data, hash := UUIDsFromRootHash(root)
	// Raw halves, no version/variant bits: byte 6 stays 0x06, byte 8 0x08.
	if want := "00010203-0405-0607-0809-0a0b0c0d0e0f"; data.String() != want {
		t.Errorf("data UUID %s, want %s", data, want)
	}
	if want := "10111213-1415-1617-1819-1a1b1c1d1e1f"; hash.String() != want {
		t.Errorf("hash UUID %s, want %s", hash, want)
	}
	if d, h := UUIDsFromRootHash(root[:15]); d != uuid.Nil || h != uuid.Nil {
		t.Errorf("15-byte root hash gives %s %s, want nil UUIDs", d, h)
	}
}

func TestDiskGUID(t *testing.T) {
	root := bytes.Repeat([]byte{0xab}, 32)
	got := DiskGUID(root)
	sum := sha256.Sum256(append([]byte("cocoon disk guid v1\x00"), root...))
	want := uuid.UUID(sum[:16])
	want[6] = want[6]&0x0f | 0x40
	want[8] = want[8]&0x3f | 0x80
	if got != want {
		t.Errorf("DiskGUID = %s, want %s", got, want)
	}
	if got.Version() != 4 || got.Variant() != uuid.RFC4122 {
		t.Errorf("DiskGUID version %d variant %v, want 4 RFC4122", got.Version(), got.Variant())
	}
	if DiskGUID(root[:31]) == got {
		t.Error("different root hashes give the same disk GUID")
	}
}
