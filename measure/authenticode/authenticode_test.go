package authenticode

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func sum(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

func TestDigestSynthetic(t *testing.T) {
	two := [][]byte{fill(0x400, 1), fill(0x123, 2)}
	for name, s := range map[string]synth{
		"pe32+ 16 dirs":               {numDirs: 16, sections: two},
		"pe32 16 dirs":                {pe32: true, numDirs: 16, sections: two},
		"pe32+ 6 dirs like Linux":     {numDirs: 6, sections: two},
		"pe32+ no cert dir":           {numDirs: 4, sections: two},
		"pe32 no data dirs":           {pe32: true, numDirs: 0, sections: two},
		"trailing data":               {numDirs: 16, sections: two, trailing: fill(77, 9)},
		"cert table":                  {numDirs: 16, sections: two, cert: fill(64, 5)},
		"trailing data and cert":      {numDirs: 16, sections: two, trailing: fill(5, 9), cert: fill(24, 5)},
		"pe32 trailing data and cert": {pe32: true, numDirs: 16, sections: two, trailing: fill(40, 9), cert: fill(24, 5)},
		"section table out of order":  {numDirs: 16, sections: [][]byte{fill(10, 1), fill(20, 2), fill(30, 3)}, unordered: true},
		"empty section skipped":       {numDirs: 16, sections: [][]byte{fill(10, 1), {}, fill(30, 3)}},
		"no sections":                 {numDirs: 16, trailing: fill(100, 4)},
	} {
		t.Run(name, func(t *testing.T) {
			img := s.build()
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384} {
				got, err := Digest(img, h)
				if err != nil {
					t.Fatal(err)
				}
				if want := sum(h, s.reference(img)); !bytes.Equal(got, want) {
					t.Errorf("%v = %x, want %x", h, got, want)
				}
			}
		})
	}
}

// A gap between the headers and the first section is not hashed where it
// lies; the trailing region starts at SUM_OF_BYTES_HASHED (EDK2 step 16),
// which then reaches into the last section.
func TestDigestGapFollowsEDK2(t *testing.T) {
	s := synth{numDirs: 16, sections: [][]byte{fill(0x100, 1), fill(0x80, 2)}, gap: 0x40, cert: fill(16, 7)}
	img := s.build()
	lo := s.layout()
	sumBytes := synthHeaders + 0x100 + 0x80
	var in []byte
	in = append(in, img[:lo.checksum]...)
	in = append(in, img[lo.checksum+4:lo.certDir]...)
	in = append(in, img[lo.certDir+8:synthHeaders]...)
	in = append(in, img[synthHeaders+0x40:synthHeaders+0x40+0x180]...)
	in = append(in, img[sumBytes:len(img)-16]...)
	got, err := Digest(img, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if want := sum(crypto.SHA256, in); !bytes.Equal(got, want) {
		t.Errorf("digest %x, want %x (EDK2's reading of a gap)", got, want)
	}
}

// Every byte outside the checksum, the certificate entry and the certificate
// table is covered; those three are not.
func TestDigestCoverage(t *testing.T) {
	s := synth{numDirs: 16, sections: [][]byte{fill(0x40, 1), fill(0x30, 2)}, trailing: fill(8, 3), cert: fill(16, 4)}
	img := s.build()
	lo := s.layout()
	base, err := Digest(img, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	excluded := func(i int) bool {
		return (i >= lo.checksum && i < lo.checksum+4) || (i >= lo.certDir && i < lo.certDir+8) || i >= len(img)-16
	}
	for i := range img {
		mut := bytes.Clone(img)
		mut[i] ^= 0x01
		got, err := Digest(mut, crypto.SHA256)
		if err != nil {
			// Flipping a header field may make the image invalid; that is
			// not a coverage question.
			continue
		}
		if changed := !bytes.Equal(got, base); changed == excluded(i) {
			t.Errorf("byte %#x: digest changed=%v, excluded=%v", i, changed, excluded(i))
		}
	}
}

func TestDigestMalformed(t *testing.T) {
	good := synth{numDirs: 16, sections: [][]byte{fill(0x40, 1), fill(0x30, 2)}, cert: fill(16, 4)}
	lo := good.layout()
	sect := func(i, field int) int { return lo.sectionTable + i*40 + field }
	type mutation func([]byte) []byte
	set32 := func(off int, v uint32) mutation {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	set16 := func(off int, v uint16) mutation {
		return func(b []byte) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
	}
	for _, tc := range []struct {
		name string
		mut  mutation
		want error
		msg  string
	}{
		{"empty", func([]byte) []byte { return nil }, ErrNotPE, "no \"PE\\0\\0\""},
		{"elf", func([]byte) []byte { return []byte("\x7fELF\x02\x01\x01") }, ErrNotPE, "signature"},
		{"short dos header", func(b []byte) []byte { return b[:0x30] }, ErrMalformed, "DOS header is 48 bytes"},
		{"e_lfanew beyond file", set32(0x3c, 1<<20), ErrNotPE, "offset 0x100000"},
		{"bad PE signature", func(b []byte) []byte { b[0x41] = 'X'; return b }, ErrNotPE, ""},
		{"truncated coff", func(b []byte) []byte { return b[:0x50] }, ErrMalformed, "COFF header ends at 0x58"},
		{"bad magic", set16(0x58, 0x107), ErrMalformed, "magic 0x107, want 0x10b (PE32) or 0x20b (PE32+)"},
		{"optional header too small", set16(0x44+16, 0x20), ErrMalformed, "SizeOfOptionalHeader 32, want at least 112"},
		{"too many data dirs", set32(0x58+108, 17), ErrMalformed, "NumberOfRvaAndSizes 17"},
		{"truncated headers", func(b []byte) []byte { return b[:0x1a0] }, ErrMalformed, "SizeOfHeaders 0x200 beyond file end 0x1a0"},
		{"section table beyond headers", set32(lo.sizeOfHeaders, 0x100), ErrMalformed, "section table ends at 0x198, beyond SizeOfHeaders 0x100"},
		{"section beyond file", set32(sect(1, 16), 0x1000), ErrMalformed, "section \"sectB\" raw data [0x240, 0x1240) beyond file end 0x280"},
		{"sections overlap", set32(sect(1, 20), 0x220), ErrMalformed, "section \"sectB\" starts at 0x220, inside section \"sectA\" ending at 0x240"},
		{"section inside headers", set32(sect(0, 20), 0x100), ErrMalformed, "starts at 0x100, inside headers ending at 0x200"},
		{"cert table not at end", func(b []byte) []byte { return append(b, 0) }, ErrMalformed, "does not end the file (0x281 bytes)"},
		{"cert table overlaps section", set32(lo.certDir, 0x230), ErrMalformed, "certificate table at 0x230 overlaps section \"sectB\""},
		{"cert table at zero", set32(lo.certDir, 0), ErrMalformed, "certificate table at 0x0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.mut(good.build())
			_, err := Digest(img, crypto.SHA256)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Digest error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if _, _, err := Embedded(img); !errors.Is(err, tc.want) {
				t.Errorf("Embedded error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDigestUnavailableHash(t *testing.T) {
	img := synth{numDirs: 16}.build()
	if _, err := Digest(img, crypto.MD4); err == nil {
		t.Fatal("Digest with MD4 (not linked in) succeeded")
	}
}

func TestEmbeddedUnsigned(t *testing.T) {
	img := synth{numDirs: 16, sections: [][]byte{fill(8, 1)}}.build()
	if _, _, err := Embedded(img); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Embedded error %v, want ErrUnsigned", err)
	}
}

func TestEmbeddedBadCertificate(t *testing.T) {
	winCert := func(length uint32, rev, typ uint16, body []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, length)
		b = binary.LittleEndian.AppendUint16(b, rev)
		b = binary.LittleEndian.AppendUint16(b, typ)
		return append(b, body...)
	}
	for _, tc := range []struct {
		name string
		cert []byte
		msg  string
	}{
		{"short", []byte{1, 2, 3, 4}, "certificate table is 4 bytes, want at least 8"},
		{"length too big", winCert(100, 0x200, 2, make([]byte, 8)), "dwLength 100, want 8..16"},
		{"revision", winCert(16, 0x300, 2, make([]byte, 8)), "wRevision 0x300"},
		{"x509 type", winCert(16, 0x200, 1, make([]byte, 8)), "wCertificateType 0x1"},
		{"not der", winCert(16, 0x200, 2, make([]byte, 8)), "PKCS#7 ContentInfo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := synth{numDirs: 16, sections: [][]byte{fill(8, 1)}, cert: tc.cert}.build()
			_, _, err := Embedded(img)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Embedded error %v, want ErrMalformed saying %q", err, tc.msg)
			}
		})
	}
}
