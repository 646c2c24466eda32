package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func validSuperblock(t testing.TB) []byte {
	t.Helper()
	b, err := Superblock{
		Version: 1, HashType: 1, UUID: testUUID, HashAlg: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 129, Salt: []byte{0, 0x11},
	}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSuperblockLayout pins field offsets against a superblock written by
// veritysetup 2.6.1 (`veritysetup format --salt=0011
// --uuid=12345678-1234-1234-1234-123456789abc` on one 4096-byte block).
func TestSuperblockLayout(t *testing.T) {
	want := make([]byte, 512)
	copy(want, "verity\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00"+
		"\x12\x34\x56\x78\x12\x34\x12\x34\x12\x34\x12\x34\x56\x78\x9a\xbc"+
		"sha256")
	copy(want[64:], "\x00\x10\x00\x00\x00\x10\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00")
	copy(want[88:], "\x00\x11")

	sb, err := ParseSuperblock(want)
	if err != nil {
		t.Fatalf("ParseSuperblock: %v", err)
	}
	wantSB := Superblock{
		Version: 1, HashType: 1,
		UUID:    [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc},
		HashAlg: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1, Salt: []byte{0, 0x11},
	}
	if !reflect.DeepEqual(sb, wantSB) {
		t.Errorf("ParseSuperblock = %+v, want %+v", sb, wantSB)
	}
	got, err := sb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("MarshalBinary differs from veritysetup's superblock at byte %d", firstDiffByte(got, want))
	}
}

func TestParseSuperblockErrors(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"short", func(b []byte) []byte { return b[:511] }, ErrTruncated},
		{"signature", func(b []byte) []byte { b[0] = 'V'; return b }, ErrBadSuperblock},
		{"version 2", func(b []byte) []byte { le.PutUint32(b[8:], 2); return b }, ErrUnsupported},
		{"hash type 0 (Chrome OS)", func(b []byte) []byte { le.PutUint32(b[12:], 0); return b }, ErrUnsupported},
		{"hash type 2", func(b []byte) []byte { le.PutUint32(b[12:], 2); return b }, ErrUnsupported},
		{"sha512", func(b []byte) []byte { copy(b[32:], "sha512"); return b }, ErrUnsupported},
		{"algorithm without NUL", func(b []byte) []byte { copy(b[32:64], bytes.Repeat([]byte("a"), 32)); return b }, ErrUnsupported},
		{"data block size 0", func(b []byte) []byte { le.PutUint32(b[64:], 0); return b }, ErrBadSuperblock},
		{"data block size 1000", func(b []byte) []byte { le.PutUint32(b[64:], 1000); return b }, ErrBadSuperblock},
		{"hash block size 1 MiB", func(b []byte) []byte { le.PutUint32(b[68:], 1<<20); return b }, ErrBadSuperblock},
		{"no data blocks", func(b []byte) []byte { le.PutUint64(b[72:], 0); return b }, ErrBadSuperblock},
		{"data size overflows", func(b []byte) []byte { le.PutUint64(b[72:], 1<<52); return b }, ErrBadSuperblock},
		{"salt size 257", func(b []byte) []byte { le.PutUint16(b[80:], 257); return b }, ErrBadSuperblock},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSuperblock(c.mutate(validSuperblock(t)))
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseSuperblock: %v, want %v", err, c.want)
			}
			t.Log(err)
		})
	}
}

func TestMarshalSuperblockErrors(t *testing.T) {
	if _, err := (Superblock{HashAlg: string(make([]byte, 32))}).MarshalBinary(); !errors.Is(err, ErrBadParams) {
		t.Errorf("32-byte algorithm name: %v, want ErrBadParams", err)
	}
	if _, err := (Superblock{Salt: make([]byte, 257)}).MarshalBinary(); !errors.Is(err, ErrBadParams) {
		t.Errorf("257-byte salt: %v, want ErrBadParams", err)
	}
}

// FuzzReadSuperblock feeds arbitrary bytes to the superblock parser: it must
// not panic, and whatever it accepts must survive a write-read round trip.
func FuzzReadSuperblock(f *testing.F) {
	f.Add(validSuperblock(f))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ReadSuperblock(bytes.NewReader(b))
		if err != nil {
			for _, e := range []error{ErrBadSuperblock, ErrUnsupported, ErrTruncated} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("ReadSuperblock: %v is none of the package's errors", err)
		}
		out, err := sb.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of an accepted superblock: %v", err)
		}
		sb2, err := ParseSuperblock(out)
		if err != nil {
			t.Fatalf("ParseSuperblock of our own output: %v", err)
		}
		if !reflect.DeepEqual(sb, sb2) {
			t.Fatalf("round trip changed the superblock: %+v -> %+v", sb, sb2)
		}
		// The fields we keep are exactly those bytes (padding and anything
		// after the algorithm's NUL are dropped).
		for _, r := range [][2]int{{0, 32 + len(sb.HashAlg)}, {64, 82}, {88, 88 + len(sb.Salt)}} {
			if !bytes.Equal(out[r[0]:r[1]], b[r[0]:r[1]]) {
				t.Fatalf("bytes %d-%d changed in the round trip", r[0], r[1])
			}
		}
	})
}
