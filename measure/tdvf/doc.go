// Package tdvf reads the TDVF metadata of an OVMF/TDVF firmware image and
// predicts the MRTD that Intel TDX records when QEMU builds a TD from it.
//
// # Where the metadata is
//
// OVMF's reset vector (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm) ends the
// image with a GUIDed table; QEMU reads it in pc_system_parse_ovmf_flash
// (hw/i386/pc_sysfw_ovmf.c):
//
//	end-48  footer GUID 96b582de-1fb2-45f7-baea-a366c55a082d
//	end-50  uint16 length of the whole table, footer (length + GUID) included
//	below   entries, walked downwards: [data][uint16 entry length][GUID]
//	end-32  the last 32 bytes (reset vector code)
//
// The entry e47a6535-984a-4798-865e-4685a7bf8ec2 holds a uint32: how far from
// the end of the image the TDVF descriptor starts (hw/i386/tdvf.c,
// tdvf_get_metadata). The descriptor (OvmfPkg/ResetVector/X64/
// IntelTdxMetadata.asm; TDVF Design Guide, "TDVF Metadata"):
//
//	"TDVF", uint32 Length (16 + 32*N), uint32 Version (1), uint32 N
//	N x { uint32 DataOffset, uint32 RawDataSize, uint64 MemoryAddress,
//	      uint64 MemoryDataSize, uint32 Type, uint32 Attributes }
//
// Types: 0 BFV, 1 CFV, 2 TD_HOB, 3 TempMem, 4 PermMem, 5 Payload,
// 6 PayloadParam. Attributes: bit 0 MR.EXTEND, bit 1 PAGE.AUG. Parse checks
// what the TDVF Design Guide, QEMU (tdvf_parse_and_check_section_entry) and
// KVM (page-aligned source and GPA) require: known types and attribute bits,
// page-aligned MemoryAddress/MemoryDataSize and (for sections with bytes)
// DataOffset, RawDataSize <= MemoryDataSize, bytes inside the image, no two
// sections sharing guest memory, at least one BFV, at most one TD_HOB.
// Errors wrap ErrNoMetadata (not a TDVF image) or ErrMalformed.
//
// The pinned Debian ovmf 2025.02-8+deb13u1 OVMF.fd (4 MiB) has the
// descriptor at end-0x9c0 and six sections: BFV 0xffc84000+0x37c000 from
// image offset 0x84000 (MR.EXTEND), CFV 0xffc00000+0x84000 from offset 0,
// TempMem 0x811000+0xf000, TempMem 0x80b000+0x2000, TD_HOB 0x809000+0x2000,
// TempMem 0x800000+0x6000.
//
// # What extends MRTD
//
// QEMU walks the sections in metadata order and hands each to KVM whole:
// MemoryDataSize bytes, from the image at DataOffset for BFV and CFV (copied
// as they are: QEMU does not zero-fill past RawDataSize) and from fresh memory
// for TD_HOB (after it wrote the HOB) and TempMem. Every page of every
// section is added with TDH.MEM.PAGE.ADD, the memory-only ones included; the
// pages of MR.EXTEND sections are then measured with TDH.MR.EXTEND in 256-byte
// chunks (target/i386/kvm/tdx.c: tdx_finalize_vm, tdx_init_fw_mem_region).
// The TDX module keeps one SHA-384 over 128-byte blocks (Intel TDX Module Base
// Architecture Specification, "Measurement and Attestation": MRTD;
// intel/tdx-module src/vmm_dispatcher/api_calls/tdh_mem_page_add.c and
// tdh_mr_extend.c):
//
//	TDH.MEM.PAGE.ADD  "MEM.PAGE.ADD" zero-padded to 16 | GPA uint64 LE | 104 zeros
//	TDH.MR.EXTEND     "MR.EXTEND" zero-padded to 16    | GPA uint64 LE | 104 zeros
//	                  then the 256 bytes of the chunk
//
// TDH.MR.FINALIZE closes the hash; that digest is MRTD.
//
// # The two orderings
//
// The order of those operations is the VMM's, and it changed between QEMU/KVM
// generations, which is why Ordering is an explicit parameter:
//
//   - Interleaved: per page, PAGE.ADD then that page's 16 EXTENDs. Upstream
//     QEMU with Linux >= 6.16 KVM (KVM_TDX_INIT_MEM_REGION with
//     KVM_TDX_MEASURE_MEMORY_REGION; the kernel's tdx_gmem_post_populate
//     extends each page right after adding it), QEMU 9.x TDX trees (per
//     dstack-mr's version table), and Intel's trees before
//     tdx-qemu-upstream-v5 (QEMU 7.2-8.1, per intel-staging/qemu-tdx issue #1).
//   - TwoPass: per section, PAGE.ADD of all its pages, then EXTEND of all its
//     pages; the next section starts after. Intel's tdx-qemu-upstream-v5
//     (QEMU 8.2.x), which Canonical's Ubuntu 24.04 TDX stack ships: its
//     tdx_finalize_vm calls KVM_MEMORY_MAPPING for the section, then
//     KVM_TDX_EXTEND_MEMORY (read in gierens/qemu-tdx-canonical
//     target/i386/kvm/tdx.c; the change is reported in intel-staging/qemu-tdx
//     issue #1). Dstack's dstack-mr (machine.rs, tdvf.rs) uses TwoPass for
//     QEMU 8.x and Interleaved from 9.0, and virtee/tdx-measure offers
//     --two-pass-add-pages: "QEMU < 9 is two-pass" is that heuristic, true for
//     8.2 but not for older Intel trees.
//
// The algorithm matches dstack-mr's compute_mrtd and virtee/tdx-measure's
// Tdvf::mrtd for metadata without PAGE.AUG. For the pinned OVMF.fd:
//
//	Interleaved bdc6fb145880f06f30c8b346b8dce2a99d9351b56892df22f80fcf6574caa9f9c31df8e8576d53b4d0cd1c3f28910e11
//	TwoPass     456f07902150d008bb913c3e1e84e9297f735a6c83cd2a957a1f0a8bbedb06df188e3837ae48d32c73d473d097dc0db2
//
// (computed by this package and by an independent re-implementation of the
// predictors' algorithm; not yet compared with a quote from TDX hardware).
//
// # What RTMR0 needs
//
// OVMF's SEC phase (OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c) first
// extends RTMR0 with the TD HOB (TdxHelperMeasureTdHob, EV_EFI_HANDOFF_TABLES2
// "TdxTable") and then with the CFV (TdxHelperMeasureCfvImage,
// EV_EFI_PLATFORM_FIRMWARE_BLOB2): SHA-384 over PcdCfvRawDataSize bytes at
// PcdOvmfFlashNvStorageVariableBase, which in the TD are the CFV section's
// bytes from the image. Metadata.CFV returns exactly those bytes; for the
// pinned image their SHA-384 is 344bc51c…6790, the digest found in event logs
// of live TDs and hard-coded by dstack-mr (it is the empty 4 MiB-layout
// variable store, independent of the OVMF code). Metadata.TDHOB gives where
// QEMU writes the HOB and Metadata.AcceptedRanges the TD_HOB and TempMem
// ranges QEMU reports as accepted in it (tdx_accept_ram_range).
//
// # Not covered
//
//   - PAGE.AUG: the TDVF Design Guide lets the VMM skip such sections at
//     build time, QEMU ignores the bit and adds them; MRTD refuses them
//     (ErrUnsupported) rather than guess. No OVMF build sets it.
//   - Section types QEMU refuses (PermMem, Payload, PayloadParam: td-shim),
//     MR.EXTEND on sections without image bytes (QEMU would extend the HOB or
//     zeroes), and MR.EXTEND sections with RawDataSize != MemoryDataSize
//     (QEMU and the guide disagree on the tail): ErrUnsupported.
//   - VMMs other than QEMU/KVM (cloud-hypervisor, Azure, GCP) and TDX
//     Connect/partitioning; anything outside MRTD (TD attributes, XFAM,
//     MRCONFIGID, MROWNER are in the TD report, not here).
//   - Building the TD HOB and the rest of RTMR0: other packages.
package tdvf
