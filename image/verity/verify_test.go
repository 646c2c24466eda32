package verity

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// TestVerifyDetectsCorruption flips single bytes in a 300-block image (two
// tree levels: three level-0 blocks under one top block) and checks that both
// Verify and `veritysetup verify` reject it, and that Verify names the block.
func TestVerifyDetectsCorruption(t *testing.T) {
	const blocks = 300
	dir := t.TempDir()
	data := pseudoRandom(blocks*4096, 7)
	var hash memFile
	res, err := Format(bytes.NewReader(data), int64(len(data)), &hash, Params{Salt: DeriveSalt([]byte("verify")), UUID: testUUID})
	if err != nil {
		t.Fatal(err)
	}
	// Hash file layout: superblock block 0, top level block 1, level 0 blocks 2-4.
	if res.Size != 5*4096 {
		t.Fatalf("hash file %d bytes, want %d", res.Size, 5*4096)
	}
	_, lookErr := exec.LookPath("veritysetup")

	type mutation struct {
		name string
		// what to change; returns the data and hash to check
		mutate func(d, h []byte) ([]byte, []byte)
		root   []byte
		want   MismatchError // Area, Level, Block compared
	}
	flip := func(b []byte, off int) []byte { b = bytes.Clone(b); b[off] ^= 0x01; return b }
	badRoot := flip(res.RootHash, 31)
	for _, m := range []mutation{
		{"data block 0", func(d, h []byte) ([]byte, []byte) { return flip(d, 17), h }, nil, MismatchError{Area: "data", Block: 0}},
		{"data block 200", func(d, h []byte) ([]byte, []byte) { return flip(d, 200*4096+4095), h }, nil, MismatchError{Area: "data", Block: 200}},
		{"last data block", func(d, h []byte) ([]byte, []byte) { return flip(d, len(d)-1), h }, nil, MismatchError{Area: "data", Block: blocks - 1}},
		{"level-0 hash block", func(d, h []byte) ([]byte, []byte) { return d, flip(h, 3*4096+100) }, nil, MismatchError{Area: "hash", Level: 0, Block: 3}},
		{"level-0 padding", func(d, h []byte) ([]byte, []byte) { return d, flip(h, 5*4096-1) }, nil, MismatchError{Area: "hash", Level: 0, Block: 4}},
		{"top hash block", func(d, h []byte) ([]byte, []byte) { return d, flip(h, 4096+5) }, nil, MismatchError{Area: "root", Level: 1, Block: 1}},
		{"salt in superblock", func(d, h []byte) ([]byte, []byte) { return d, flip(h, 88) }, nil, MismatchError{Area: "root", Level: 1, Block: 1}},
		{"wrong root hash", func(d, h []byte) ([]byte, []byte) { return d, h }, badRoot, MismatchError{Area: "root", Level: 1, Block: 1}},
	} {
		t.Run(m.name, func(t *testing.T) {
			d, h := m.mutate(data, hash.b)
			root := res.RootHash
			if m.root != nil {
				root = m.root
			}
			err := Verify(bytes.NewReader(d), int64(len(d)), bytes.NewReader(h), root)
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("Verify: %v, want ErrMismatch", err)
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Verify error %T is not a *MismatchError", err)
			}
			if me.Area != m.want.Area || me.Level != m.want.Level || me.Block != m.want.Block {
				t.Errorf("Verify blames %s level %d block %d, want %s level %d block %d (%v)",
					me.Area, me.Level, me.Block, m.want.Area, m.want.Level, m.want.Block, err)
			}
			t.Log(err)
			if lookErr != nil {
				return
			}
			df, hf := writeFile(t, dir, "data", d), writeFile(t, dir, "hash", h)
			if ok, _ := veritysetupVerify(t, df, hf, root); ok {
				t.Error("veritysetup verify accepts the corrupted image")
			}
		})
	}

	t.Run("intact", func(t *testing.T) {
		if err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(hash.b), res.RootHash); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
	t.Run("data larger than covered", func(t *testing.T) {
		d := append(bytes.Clone(data), pseudoRandom(8192, 9)...)
		if err := Verify(bytes.NewReader(d), int64(len(d)), bytes.NewReader(hash.b), res.RootHash); err != nil {
			t.Fatalf("Verify with trailing data: %v", err)
		}
	})
}

func TestVerifySingleBlock(t *testing.T) {
	data := pseudoRandom(4096, 3)
	var hash memFile
	res, err := Format(bytes.NewReader(data), 4096, &hash, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(bytes.NewReader(data), 4096, bytes.NewReader(hash.b), res.RootHash); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	data[0] ^= 1
	var me *MismatchError
	if err := Verify(bytes.NewReader(data), 4096, bytes.NewReader(hash.b), res.RootHash); !errors.As(err, &me) || me.Area != "data" || me.Block != 0 {
		t.Fatalf("Verify of a changed single block: %v, want a data block 0 mismatch", err)
	}
}

func TestVerifyTruncatedOrBad(t *testing.T) {
	data := pseudoRandom(300*4096, 5)
	var hash memFile
	res, err := Format(bytes.NewReader(data), int64(len(data)), &hash, Params{UUID: testUUID})
	if err != nil {
		t.Fatal(err)
	}
	h := hash.b
	for _, c := range []struct {
		name     string
		data, h  []byte
		dataSize int64
		root     []byte
		want     []error
	}{
		{"hash file missing last block", data, h[:len(h)-4096], int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"hash file missing one byte", data, h[:len(h)-1], int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"hash file is only the superblock", data, h[:4096], int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"hash file shorter than a superblock", data, h[:100], int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"empty hash file", data, nil, int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"data size too small", data, h, int64(len(data)) - 4096, res.RootHash, []error{ErrTruncated}},
		{"data shorter than its size", data[:len(data)-1], h, int64(len(data)), res.RootHash, []error{ErrTruncated}},
		{"no superblock", data, make([]byte, len(h)), int64(len(data)), res.RootHash, []error{ErrBadSuperblock}},
		{"short root hash", data, h, int64(len(data)), res.RootHash[:20], []error{ErrBadParams}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(bytes.NewReader(c.data), c.dataSize, bytes.NewReader(c.h), c.root)
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("Verify: %v, want %v", err, w)
				}
			}
			t.Log(err)
		})
	}
}

// TestVerifyVeritysetupOutput checks Verify against a hash file that
// veritysetup wrote, so Verify does not just agree with our own Format.
func TestVerifyVeritysetupOutput(t *testing.T) {
	needVeritysetup(t)
	dir := t.TempDir()
	data := writeFile(t, dir, "data", pseudoRandom(1000*4096, 11))
	hash := dir + "/hash"
	root := veritysetupFormat(t, data, hash, Params{Salt: []byte{1, 2, 3}, UUID: testUUID})
	if err := verifyFile(t, data, hash, root); err != nil {
		t.Fatalf("Verify of veritysetup's output: %v", err)
	}
	b := readFile(t, data)
	b[999*4096] ^= 0x80
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var me *MismatchError
	if err := verifyFile(t, data, hash, root); !errors.As(err, &me) || me.Block != 999 {
		t.Fatalf("Verify after changing block 999: %v", err)
	}
}

// FuzzVerify runs Verify on an arbitrary hash file over fixed data: it must
// not panic, allocate without bound, or fail with an error of no named kind.
func FuzzVerify(f *testing.F) {
	data := pseudoRandom(300*4096, 1)
	var hash memFile
	res, err := Format(bytes.NewReader(data), int64(len(data)), &hash, Params{Salt: []byte{1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hash.b[:4096+4096]) // superblock and top block only
	f.Fuzz(func(t *testing.T, h []byte) {
		err := Verify(bytes.NewReader(data), int64(len(data)), bytes.NewReader(h), res.RootHash)
		if err == nil {
			return // a valid tree for this data: fine
		}
		for _, e := range []error{ErrBadSuperblock, ErrUnsupported, ErrTruncated, ErrMismatch, ErrBadParams} {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("Verify: %v is none of the package's errors", err)
	})
}
