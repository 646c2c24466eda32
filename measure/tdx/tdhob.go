package tdx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// ErrLayout is returned for a memory layout QEMU would refuse.
var ErrLayout = errors.New("tdx: memory layout")

// Range is a guest-physical range [Start, End).
type Range struct{ Start, End uint64 }

// q35 memory split (QEMU hw/i386/pc_q35.c, pc_q35_init): with 2816 MiB
// (0xb0000000) of RAM or more, RAM below 4 GiB stops at 2 GiB, otherwise it
// may go up to 2816 MiB; the rest is mapped from 4 GiB.
const (
	q35LowmemThreshold = 0xb0000000
	q35LowmemSmall     = 0x80000000
	fourGiB            = 1 << 32
)

// ramRanges is QEMU's e820 RAM for a q35 guest of mem bytes.
func ramRanges(mem uint64) []Range {
	lowmem := uint64(q35LowmemThreshold)
	if mem >= q35LowmemThreshold {
		lowmem = q35LowmemSmall
	}
	below, above := mem, uint64(0)
	if mem >= lowmem {
		below, above = lowmem, mem-lowmem
	}
	out := []Range{{0, below}}
	if above > 0 {
		out = append(out, Range{fourGiB, fourGiB + above})
	}
	return out
}

type ramEntry struct {
	Range
	accepted bool
}

// ramEntries splits QEMU's RAM into accepted parts (the TDVF TD_HOB and
// TempMem sections, which QEMU adds to the TD as private pages:
// target/i386/kvm/tdx.c, tdx_finalize_vm → tdx_accept_ram_range) and
// unaccepted parts, sorted by address.
func ramEntries(mem uint64, accepted []Range) ([]ramEntry, error) {
	var es []ramEntry
	for _, r := range ramRanges(mem) {
		es = append(es, ramEntry{Range: r})
	}
	for _, a := range accepted {
		if a.Start >= a.End {
			continue
		}
		var next []ramEntry
		found := false
		for _, e := range es {
			if e.accepted || a.Start < e.Start || a.End > e.End {
				next = append(next, e)
				continue
			}
			found = true
			if e.Start < a.Start {
				next = append(next, ramEntry{Range: Range{e.Start, a.Start}})
			}
			next = append(next, ramEntry{Range: a, accepted: true})
			if a.End < e.End {
				next = append(next, ramEntry{Range: Range{a.End, e.End}})
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: section [%#x, %#x) is not inside guest RAM of %d MiB", ErrLayout, a.Start, a.End, mem>>20)
		}
		es = next
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Start < es[j].Start })
	return es, nil
}

// HOB types and resource values (UEFI PI spec vol. 3, §5.2-5.5; EDK2
// MdePkg/Include/Pi/PiHob.h; QEMU hw/i386/tdvf-hob.c).
const (
	hobTypeHandoff            = 0x0001
	hobTypeResourceDescriptor = 0x0003
	hobHandoffVersion         = 9
	resourceSystemMemory      = 0x00000000
	resourceMemoryUnaccepted  = 0x00000007
	// PRESENT | INITIALIZED | TESTED, for both private and unaccepted RAM
	// (tdvf-hob.h EFI_RESOURCE_ATTRIBUTE_TDVF_PRIVATE / _UNACCEPTED).
	resourceAttrTDVF = 0x00000007
	handoffLen       = 56
	resourceLen      = 48
	endOfHOBLen      = 8
)

// TDHOB returns the bytes of the TD HOB list QEMU writes at hobAddr for a
// guest of mem bytes, as TDVF measures them into RTMR0: the PHIT (handoff)
// HOB, then one resource descriptor HOB per RAM entry; the end-of-list HOB
// is not measured (OvmfPkg TdxHelperLib: TdxHelperMeasureTdHob hashes up to
// the END_OF_HOB_LIST header), but the PHIT's EfiEndOfHobList points past
// it.
func TDHOB(hobAddr, mem uint64, accepted []Range) ([]byte, error) {
	es, err := ramEntries(mem, accepted)
	if err != nil {
		return nil, err
	}
	b := make([]byte, handoffLen, handoffLen+resourceLen*len(es))
	le := binary.LittleEndian
	le.PutUint16(b[0:], hobTypeHandoff)
	le.PutUint16(b[2:], handoffLen)
	le.PutUint32(b[8:], hobHandoffVersion)
	// BootMode and EfiMemory{Top,Bottom}, EfiFreeMemory{Top,Bottom} stay
	// zero: QEMU leaves them zeroed.
	for _, e := range es {
		r := make([]byte, resourceLen)
		le.PutUint16(r[0:], hobTypeResourceDescriptor)
		le.PutUint16(r[2:], resourceLen)
		// Owner GUID (8..24) zero.
		typ := uint32(resourceMemoryUnaccepted)
		if e.accepted {
			typ = resourceSystemMemory
		}
		le.PutUint32(r[24:], typ)
		le.PutUint32(r[28:], resourceAttrTDVF)
		le.PutUint64(r[32:], e.Start)
		le.PutUint64(r[40:], e.End-e.Start)
		b = append(b, r...)
	}
	le.PutUint64(b[48:], hobAddr+uint64(len(b))+endOfHOBLen) // EfiEndOfHobList
	return b, nil
}
