package tdvf

import "fmt"

// What RTMR0 prediction needs from the firmware image. OVMF's SEC phase
// (OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c) measures two VMM-provided
// inputs into RTMR0 before anything else: first the TD HOB
// (TdxHelperMeasureTdHob, event EV_EFI_HANDOFF_TABLES2 "TdxTable"), then the
// CFV (TdxHelperMeasureCfvImage, event EV_EFI_PLATFORM_FIRMWARE_BLOB2
// "Fv(<FV name GUID>)").

// CFV returns the bytes OVMF hashes for its CFV event: SHA-384 over
// PcdCfvRawDataSize bytes at PcdOvmfFlashNvStorageVariableBase. The
// ResetVector builds the CFV section from the same PCDs (PcdCfvBase = the
// variable store base, RawDataSize = MemoryDataSize = PcdCfvRawDataSize), and
// QEMU copies the section from the image at DataOffset, so in the TD that
// memory holds image[DataOffset : DataOffset+RawDataSize]: the variable
// store as built, before the guest ever writes a variable.
//
// The result aliases fw; do not modify it. It is an error unless there is
// exactly one CFV section with RawDataSize == MemoryDataSize.
func (md *Metadata) CFV(fw []byte) ([]byte, error) {
	s, err := md.only(CFV)
	if err != nil {
		return nil, err
	}
	if err := s.check(len(fw)); err != nil {
		return nil, fmt.Errorf("%w: CFV: %s", ErrMalformed, err)
	}
	if uint64(s.RawDataSize) != s.MemoryDataSize {
		return nil, fmt.Errorf("%w: CFV RawDataSize %#x != MemoryDataSize %#x: OVMF hashes PcdCfvRawDataSize bytes of memory, which would then not all come from the image",
			ErrUnsupported, s.RawDataSize, s.MemoryDataSize)
	}
	start := int(s.DataOffset)
	end := start + int(s.RawDataSize)
	return fw[start:end:end], nil
}

// TDHOB returns the TD_HOB section: QEMU writes the hand-off block at its
// MemoryAddress (tdvf_hob_create) and OVMF measures the HOB list it finds
// there, whose length depends on the guest's memory map.
func (md *Metadata) TDHOB() (Section, error) { return md.only(TDHOB) }

// AcceptedRanges returns the guest memory QEMU marks as already accepted
// (TDX_RAM_ADDED) in the HOB's resource descriptors: the TD_HOB and TempMem
// sections (tdx_accept_ram_range in tdx_finalize_vm). BFV and CFV sit above
// RAM and are not described. Ranges are in metadata order.
func (md *Metadata) AcceptedRanges() []Section {
	var rs []Section
	for _, s := range md.Sections {
		if s.Type == TDHOB || s.Type == TempMem {
			rs = append(rs, s)
		}
	}
	return rs
}

func (md *Metadata) only(t SectionType) (Section, error) {
	var found []Section
	for _, s := range md.Sections {
		if s.Type == t {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return Section{}, fmt.Errorf("%w: %d %s sections, want exactly 1", ErrUnsupported, len(found), t)
	}
	return found[0], nil
}
