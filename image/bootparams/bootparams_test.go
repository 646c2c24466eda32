package bootparams

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sample() Params {
	return Params{
		Console: "ttyS0",
		Verity: Verity{
			Version: 1, DataDevice: "PARTUUID=0a8e6f84-2b7c-4b4e-9d2a-1f3c5e7a9b0d", HashDevice: "PARTUUID=1b9f7a95-3c8d-4c5f-8e3b-2a4d6f8b0c1e",
			DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1234, HashStartBlock: 1, Algorithm: "sha256",
			RootHash: bytes.Repeat([]byte{0xab}, 32), Salt: bytes.Repeat([]byte{0x01}, 32),
		},
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Format(sample())
	if err != nil {
		t.Fatal(err)
	}
	want := "console=ttyS0 panic=-1 ro cocoon.verity=1,PARTUUID=0a8e6f84-2b7c-4b4e-9d2a-1f3c5e7a9b0d,PARTUUID=1b9f7a95-3c8d-4c5f-8e3b-2a4d6f8b0c1e,4096,4096,1234,1,sha256," + strings.Repeat("ab", 32) + "," + strings.Repeat("01", 32)
	if s != want {
		t.Fatalf("Format =\n%s\nwant\n%s", s, want)
	}
	// As the guest sees it under OVMF direct boot.
	p, err := Parse(s + " initrd=initrd")
	if err != nil {
		t.Fatal(err)
	}
	wantP := sample()
	wantP.Extra = []string{"initrd=initrd"}
	if !reflect.DeepEqual(p, wantP) {
		t.Fatalf("Parse = %+v, want %+v", p, wantP)
	}
	if got := p.Verity.Table("/dev/vda1", "/dev/vda2"); !strings.HasPrefix(got, "1 /dev/vda1 /dev/vda2 4096 4096 1234 1 sha256 abab") {
		t.Fatalf("Table = %s", got)
	}
}

func TestParseBad(t *testing.T) {
	good, _ := Format(sample())
	for _, tc := range []struct{ name, cmdline string }{
		{"missing", "console=ttyS0 ro"},
		{"twice", good + " " + good[strings.Index(good, Key):]},
		{"nine fields", strings.Replace(good, ",sha256,", ",", 1)},
		{"bad number", strings.Replace(good, ",1234,", ",12x4,", 1)},
		{"zero blocks", strings.Replace(good, ",1234,", ",0,", 1)},
		{"bad block size", strings.Replace(good, ",4096,4096,", ",4095,4096,", 1)},
		{"short root hash", strings.Replace(good, strings.Repeat("ab", 32), "abab", 1)},
		{"upper root hash", strings.Replace(good, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1)},
		{"sha1", strings.Replace(good, ",sha256,", ",sha1,", 1)},
		{"version 0", strings.Replace(good, "verity=1,", "verity=0,", 1)},
		{"device path", strings.Replace(good, "PARTUUID=0a8e6f84-2b7c-4b4e-9d2a-1f3c5e7a9b0d", "/dev/sda1", 1)},
		{"bad salt", strings.Replace(good, strings.Repeat("01", 32), "zz", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.cmdline); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	noSalt := sample()
	noSalt.Verity.Salt = nil
	s, err := Format(noSalt)
	if err != nil || !strings.HasSuffix(s, ",-") {
		t.Fatalf("no salt: %q %v", s, err)
	}
	if p, err := Parse(s); err != nil || p.Verity.Salt != nil {
		t.Fatalf("no salt parse: %+v %v", p, err)
	}
	bad := sample()
	bad.Extra = []string{"a b"}
	if _, err := Format(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("extra with space: %v", err)
	}
}

// FuzzParse: whatever Parse accepts, Format renders back to a line that
// parses to the same table.
func FuzzParse(f *testing.F) {
	good, _ := Format(sample())
	f.Add(good)
	f.Add(good + " initrd=initrd quiet")
	f.Add("cocoon.verity=1,a,b,4096,4096,1,1,sha256,00,-")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		p.Extra = nil
		out, err := Format(p)
		if err != nil {
			t.Fatalf("Format of parsed %q: %v", s, err)
		}
		q, err := Parse(out)
		if err != nil || !reflect.DeepEqual(q.Verity, p.Verity) {
			t.Fatalf("round trip %q -> %q: %+v %v", s, out, q, err)
		}
	})
}
