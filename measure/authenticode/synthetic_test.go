package authenticode

import (
	"encoding/binary"
)

// synth describes a small PE image built by the tests. Offsets follow the
// Microsoft PE Format; the values are chosen so every region the hash skips
// or covers holds distinct bytes.
type synth struct {
	pe32      bool     // PE32 (magic 0x10b) instead of PE32+
	numDirs   uint32   // NumberOfRvaAndSizes
	sections  [][]byte // raw data, laid out back to back after the headers
	trailing  []byte   // bytes after the last section (before any cert table)
	cert      []byte   // attribute certificate table appended at the end
	gap       int      // bytes of filler between the headers and the first section
	unordered bool     // write the section table in reverse file order
}

const synthHeaders = 0x200 // SizeOfHeaders of synthetic images

// offsets of the fields the tests poke at.
type synthLayout struct {
	checksum, certDir, sizeOfHeaders, sectionTable int
}

func (s synth) layout() synthLayout {
	opt := 0x40 + 4 + 20
	dd := opt + 112
	if s.pe32 {
		dd = opt + 96
	}
	optSize := dd - opt + int(s.numDirs)*8
	return synthLayout{
		checksum:      opt + 64,
		certDir:       dd + 4*8,
		sizeOfHeaders: opt + 60,
		sectionTable:  opt + optSize,
	}
}

func (s synth) build() []byte {
	lo := s.layout()
	img := make([]byte, synthHeaders)
	// Fill everything with a counter so skipped fields are not all zero.
	for i := range img {
		img[i] = byte(i*7 + 3)
	}
	put16 := func(off int, v uint16) { binary.LittleEndian.PutUint16(img[off:], v) }
	put32 := func(off int, v uint32) { binary.LittleEndian.PutUint32(img[off:], v) }
	copy(img, "MZ")
	put32(0x3c, 0x40)
	copy(img[0x40:], "PE\x00\x00")
	coff := 0x44
	opt := coff + 20
	put16(coff, 0x8664)
	put16(coff+2, uint16(len(s.sections)))
	put16(coff+16, uint16(lo.sectionTable-opt))
	if s.pe32 {
		put16(opt, 0x10b)
		put32(opt+92, s.numDirs)
	} else {
		put16(opt, 0x20b)
		put32(opt+108, s.numDirs)
	}
	put32(lo.sizeOfHeaders, synthHeaders)
	put32(lo.checksum, 0xdeadbeef)

	off := synthHeaders + s.gap
	for i, data := range s.sections {
		h := lo.sectionTable + i*40
		if s.unordered {
			h = lo.sectionTable + (len(s.sections)-1-i)*40
		}
		copy(img[h:], "sect"+string(rune('A'+i))+"\x00\x00\x00")
		put32(h+16, uint32(len(data)))
		put32(h+20, uint32(off))
		off += len(data)
	}
	img = append(img, make([]byte, s.gap)...)
	for _, data := range s.sections {
		img = append(img, data...)
	}
	img = append(img, s.trailing...)
	if s.numDirs > 4 && len(s.cert) > 0 {
		binary.LittleEndian.PutUint32(img[lo.certDir:], uint32(len(img)))
		binary.LittleEndian.PutUint32(img[lo.certDir+4:], uint32(len(s.cert)))
		img = append(img, s.cert...)
	} else if s.numDirs > 4 {
		binary.LittleEndian.PutUint64(img[lo.certDir:], 0)
	}
	return img
}

// fill returns n bytes of a pattern seeded by seed.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13)
	}
	return b
}

// reference is the hash input written out by hand from the Microsoft steps
// for images built by synth with sections packed in order (gap 0): headers
// minus checksum and certificate entry, sections, trailing data.
func (s synth) reference(img []byte) []byte {
	lo := s.layout()
	var in []byte
	in = append(in, img[:lo.checksum]...)
	if s.numDirs > 4 {
		in = append(in, img[lo.checksum+4:lo.certDir]...)
		in = append(in, img[lo.certDir+8:synthHeaders]...)
	} else {
		in = append(in, img[lo.checksum+4:synthHeaders]...)
	}
	for _, data := range s.sections {
		in = append(in, data...)
	}
	in = append(in, s.trailing...)
	return in
}
