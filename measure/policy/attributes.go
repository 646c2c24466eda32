package policy

import (
	"fmt"
	"strings"
)

// TDATTRIBUTES (TDX module ABI spec, "TD Attributes Definition"): bits 7:0
// are TUD, "TD under debug" (any bit set means the TD is not trusted); bits
// 31:8 are SEC, attributes that may affect the TD's security; bits 63:32 are
// OTHER. Bit numbers as in Linux's arch/x86/include/asm/shared/tdx.h.
const (
	tudMask uint64 = 0xff
	secMask uint64 = 0xffffff00
)

type attributeFlag struct {
	name string
	bit  uint
}

// attributeFlags names the bits a policy may constrain; TUD bits are named
// only for messages (allow_debug governs them).
var attributeFlags = []attributeFlag{
	{"icssd", 16},
	{"lass", 27},
	{"sept_ve_disable", 28},
	{"migratable", 29},
	{"pks", 30},
	{"kl", 31},
	{"tpa", 62},
	{"perfmon", 63},
}

var tudNames = map[uint]string{0: "DEBUG", 4: "HGS_PLUS_PROF", 5: "PERF_PROF", 6: "PMT_PROF"}

func attributeBit(name string) (uint, bool) {
	for _, f := range attributeFlags {
		if f.name == name {
			return f.bit, true
		}
	}
	return 0, false
}

// knownSEC is the SEC-group bits the spec defines.
func knownSEC() uint64 {
	var m uint64
	for _, f := range attributeFlags {
		if b := uint64(1) << f.bit; b&secMask != 0 {
			m |= b
		}
	}
	return m
}

// tudString names the TUD bits set in a, e.g. "DEBUG|bit 3".
func tudString(a uint64) string {
	var s []string
	for bit := uint(0); bit < 8; bit++ {
		if a&(1<<bit) == 0 {
			continue
		}
		if n, ok := tudNames[bit]; ok {
			s = append(s, n)
		} else {
			s = append(s, fmt.Sprintf("bit %d", bit))
		}
	}
	return strings.Join(s, "|")
}
