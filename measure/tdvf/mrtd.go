package tdvf

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// Ordering is the order in which the VMM issues TDH.MEM.PAGE.ADD and
// TDH.MR.EXTEND while building the TD. The TDX module folds both into one
// running SHA-384, so the order is part of MRTD. See the package
// documentation for which QEMU/KVM generations use which.
type Ordering int

const (
	// Interleaved: per page, TDH.MEM.PAGE.ADD then (for MR.EXTEND sections)
	// the 16 TDH.MR.EXTEND of that page. Upstream QEMU + KVM
	// (KVM_TDX_INIT_MEM_REGION with KVM_TDX_MEASURE_MEMORY_REGION; Linux
	// tdx_gmem_post_populate), QEMU 9.x TDX trees, and Intel's trees before
	// tdx-qemu-upstream-v5 (QEMU 7.2-8.1).
	Interleaved Ordering = iota
	// TwoPass: per section, TDH.MEM.PAGE.ADD of all its pages, then (for
	// MR.EXTEND sections) the TDH.MR.EXTEND of all its pages. Intel's
	// tdx-qemu-upstream-v5 tree, i.e. QEMU 8.2 as shipped by Canonical's TDX
	// enablement (KVM_MEMORY_MAPPING then KVM_TDX_EXTEND_MEMORY).
	TwoPass
)

func (o Ordering) String() string {
	switch o {
	case Interleaved:
		return "interleaved"
	case TwoPass:
		return "two-pass"
	}
	return fmt.Sprintf("Ordering(%d)", int(o))
}

// ParseOrdering is String's inverse.
func ParseOrdering(s string) (Ordering, error) {
	for _, o := range []Ordering{Interleaved, TwoPass} {
		if s == o.String() {
			return o, nil
		}
	}
	return 0, fmt.Errorf("tdvf: ordering %q, want %q or %q", s, Interleaved, TwoPass)
}

// Op is a TDX module function that extends MRTD while the TD is built.
type Op uint8

const (
	// OpPageAdd is TDH.MEM.PAGE.ADD: one 4 KiB page; MRTD gets a 128-byte
	// block "MEM.PAGE.ADD" (zero padded to 16 bytes), the page's GPA as a
	// little-endian uint64, zeros. Intel TDX Module Base Architecture
	// Specification, "TD Measurement" / "MRTD"; intel/tdx-module
	// src/vmm_dispatcher/api_calls/tdh_mem_page_add.c.
	OpPageAdd Op = iota + 1
	// OpMRExtend is TDH.MR.EXTEND: one 256-byte chunk; MRTD gets a 128-byte
	// block "MR.EXTEND" (zero padded to 16), the chunk's GPA, zeros, then the
	// chunk's 256 bytes as two more blocks. Same spec section;
	// intel/tdx-module src/vmm_dispatcher/api_calls/tdh_mr_extend.c.
	OpMRExtend
)

func (o Op) String() string {
	switch o {
	case OpPageAdd:
		return "MEM.PAGE.ADD"
	case OpMRExtend:
		return "MR.EXTEND"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

const (
	blockLen    = 128 // the SHA-384 block the TDX module hashes per operation
	extendChunk = 256 // bytes per TDH.MR.EXTEND
)

// Record is one MRTD-extending operation.
type Record struct {
	Op  Op
	GPA uint64
	// Data is the 256-byte chunk of an OpMRExtend (a sub-slice of the
	// firmware image; do not modify), nil for OpPageAdd.
	Data []byte
}

// Header is the 128-byte block the TDX module hashes for the operation
// (followed by Data for OpMRExtend).
func (r Record) Header() [blockLen]byte {
	var b [blockLen]byte
	copy(b[:16], r.Op.String())
	binary.LittleEndian.PutUint64(b[16:], r.GPA)
	return b
}

func (r Record) String() string { return fmt.Sprintf("%-12s gpa=%#08x", r.Op, r.GPA) }

// MRTD predicts the TD's MRTD after QEMU loaded the firmware as the metadata
// says, in the given order, and finalized the TD (TDH.MR.FINALIZE: the
// SHA-384 is closed). Nothing else extends MRTD when QEMU builds a TD.
func MRTD(fw []byte, md *Metadata, order Ordering) ([48]byte, error) {
	var out [48]byte
	h := sha512.New384()
	err := walk(fw, md, order, func(r Record) {
		hdr := r.Header()
		h.Write(hdr[:])
		h.Write(r.Data)
	})
	if err != nil {
		return out, err
	}
	h.Sum(out[:0])
	return out, nil
}

// Records lists the operations MRTD hashes, in order (for an --events style
// listing).
func Records(fw []byte, md *Metadata, order Ordering) ([]Record, error) {
	var rs []Record
	err := walk(fw, md, order, func(r Record) { rs = append(rs, r) })
	return rs, err
}

// walk calls fn for every MRTD operation, in order.
func walk(fw []byte, md *Metadata, order Ordering, fn func(Record)) error {
	if order != Interleaved && order != TwoPass {
		return fmt.Errorf("tdvf: unknown %v", order)
	}
	if err := md.checkQEMU(fw); err != nil {
		return err
	}
	// QEMU walks the sections in metadata order (for_each_tdx_fw_entry in
	// tdx_init_fw_mem_region / tdx_finalize_vm) and adds MemoryDataSize
	// bytes of each: all sections, TD_HOB and TempMem included.
	for _, s := range md.Sections {
		pages := s.MemoryDataSize / pageSize
		add := func(p uint64) { fn(Record{Op: OpPageAdd, GPA: s.MemoryAddress + p*pageSize}) }
		extend := func(p uint64) {
			if !s.MRExtend() {
				return
			}
			for c := uint64(0); c < pageSize; c += extendChunk {
				off := uint64(s.DataOffset) + p*pageSize + c
				fn(Record{Op: OpMRExtend, GPA: s.MemoryAddress + p*pageSize + c, Data: fw[off : off+extendChunk : off+extendChunk]})
			}
		}
		switch order {
		case Interleaved:
			for p := range pages {
				add(p)
				extend(p)
			}
		case TwoPass:
			for p := range pages {
				add(p)
			}
			for p := range pages {
				extend(p)
			}
		}
	}
	return nil
}

// checkQEMU refuses metadata whose measurement we cannot predict for QEMU,
// and re-checks what Parse checks (md may have been built by hand).
func (md *Metadata) checkQEMU(fw []byte) error {
	if md == nil || len(md.Sections) == 0 {
		return fmt.Errorf("%w: no sections", ErrMalformed)
	}
	hob := false
	for i, s := range md.Sections {
		if err := s.check(len(fw)); err != nil {
			return fmt.Errorf("%w: section %d (%s): %s", ErrMalformed, i, s.Type, err)
		}
		switch s.Type {
		case BFV, CFV, TempMem:
		case TDHOB:
			hob = true
		default:
			// hw/i386/tdvf.c accepts only these four types; QEMU would not
			// start the TD at all.
			return fmt.Errorf("%w: section %d has type %s; QEMU accepts only BFV, CFV, TD_HOB and TempMem",
				ErrUnsupported, i, s.Type)
		}
		if s.PageAug() {
			// The TDVF Design Guide lets the VMM skip PAGE.AUG sections at
			// build time, but QEMU ignores the bit and adds them anyway:
			// refuse rather than guess which one a given VMM does.
			return fmt.Errorf("%w: section %d (%s) has PAGE.AUG: the TDVF Design Guide skips it at build time, QEMU adds it anyway",
				ErrUnsupported, i, s.Type)
		}
		if s.MRExtend() {
			switch {
			case s.RawDataSize == 0:
				// QEMU would extend the HOB it wrote or zeroed memory.
				return fmt.Errorf("%w: section %d (%s) has MR.EXTEND but no bytes in the image",
					ErrUnsupported, i, s.Type)
			case uint64(s.RawDataSize) != s.MemoryDataSize:
				// QEMU copies MemoryDataSize bytes from the image at
				// DataOffset (no zero fill), the TDVF Design Guide zero
				// fills: the extended bytes would differ.
				return fmt.Errorf("%w: section %d (%s) has MR.EXTEND and RawDataSize %#x != MemoryDataSize %#x",
					ErrUnsupported, i, s.Type, s.RawDataSize, s.MemoryDataSize)
			}
		}
	}
	if !hob {
		// tdx_get_hob_entry: "TDVF metadata doesn't specify TD_HOB location."
		return fmt.Errorf("%w: no TD_HOB section; QEMU requires one", ErrUnsupported)
	}
	if err := md.checkSet(); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, err)
	}
	return nil
}
