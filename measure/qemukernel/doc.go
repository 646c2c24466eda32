// Package qemukernel predicts the kernel image OVMF measures when QEMU
// direct-boots a Linux bzImage (-kernel/-initrd/-append, OVMF as -bios).
//
// QEMU's x86_load_linux (hw/i386/x86.c up to 9.0; hw/i386/x86-common.c from
// 9.1, after "hw/i386: split x86.c in multiple parts") reads the first
// 8 KiB of the -kernel file, patches the real-mode setup header
// (Documentation/arch/x86/boot.rst, "The Linux/x86 Boot Protocol"), copies
// the patched 8 KiB over the setup sectors and hands OVMF the setup sectors
// (FW_CFG_SETUP_DATA) and the rest of the file (FW_CFG_KERNEL_DATA). OVMF's
// QemuKernelLoaderFsDxe concatenates them into the file "kernel",
// X86QemuLoadImageLib LoadImage()s it, and the TCG2 / TDX measure-boot code
// extends its Authenticode digest (PCR 4, RTMR1). So the measured digest is
// authenticode.Digest(Patch(kernel, p), h).
//
// # Patched fields
//
// For a boot protocol 2.06+ kernel (every EFI-stub kernel), in the order
// x86_load_linux writes them; the same in 7.2.1 through 10.x:
//
//	field           offset size value
//	cmd_line_ptr    0x228  4    0x20000 (LOADED_HIGH kernels); else
//	                            0x9a000 - ((len(cmdline)+16) &^ 15)
//	vid_mode        0x1fa  2    only when -append contains "vga=": normal
//	                            0xffff, ext 0xfffe, ask 0xfffd, or the
//	                            number (C base prefixes), low 16 bits
//	type_of_loader  0x210  1    0xb0 (QEMU, revision 0)
//	loadflags       0x211  1    |= 0x80 CAN_USE_HEAP
//	heap_end_ptr    0x224  2    cmdline_addr - real_addr - 0x200 =
//	                            0xfe00 for LOADED_HIGH kernels (real_addr
//	                            0x10000, cmdline_addr 0x20000)
//	ramdisk_image   0x218  4    with -initrd: (initrd_max - size) &^ 4095
//	ramdisk_size    0x21c  4    with -initrd: the initrd's size in bytes
//
// initrd_max is 0xffffffff when the protocol is 2.12+ and xloadflags has
// XLF_CAN_BE_LOADED_ABOVE_4G (bit 1), else initrd_addr_max (0x22c); then
// capped at below_4g_mem_size - 0x28000 - 1 (0x28000 is PC_FW_DATA in
// hw/i386/pc.c, formerly PCMachineClass.acpi_data_size: 128 KiB ACPI tables
// plus 32 KiB firmware data). QEMU exits when the initrd size is >=
// initrd_max. below_4g_mem_size comes from the machine:
//
//	q35 (pc_q35_init):  lowmem = RAM >= 0xb0000000 ? 2 GiB : 0xb0000000,
//	                    lowered to max-ram-below-4g (default 4 GiB)
//	pc (pc_init1):      lowmem = max-ram-below-4g (default 0xe0000000),
//	                    at most 3 GiB when RAM >= it (gigabyte_align)
//	below_4g_mem_size = min(RAM, lowmem)
//
// So on q35 below_4g_mem_size is the RAM size below 2816 MiB and 2 GiB from
// 2816 MiB up: the initrd address follows memory only below 2816 MiB, and
// 2048 MiB and 16 GiB give the same address. The command line's length
// reaches the header only for kernels without LOADED_HIGH (zImage). QEMU
// writes nothing else: code32_start, setup_data (0x250, only with -dtb,
// which this package does not model) and the rest of the file are as
// given. QEMU adds nothing to -append; OVMF appends " initrd=initrd" (see
// LoadOptions).
//
// # What OVMF reads, by version
//
//	QEMU 7.2.1-9.2   header patched; setup copied unpatched only for SEV
//	                 ("if (!sev_enabled())"). TDX builds of these versions
//	                 (out of tree) patch.
//	QEMU 10.0-10.1   also exports the unpatched file as fw_cfg
//	                 "etc/boot/kernel" (commit f2594d928444, Gerd Hoffmann,
//	                 "x86/loader: expose unpatched kernel", for secure boot
//	                 with direct kernel boot); the setup blob is still
//	                 patched, also for TDX (upstream TDX support is 10.1).
//	QEMU 10.2-       setup blob unpatched for every confidential guest
//	                 (commit a7542a38f399, Xiaoyao Li, "x86/loader: Don't
//	                 update kernel header for CoCo VMs":
//	                 "if (!MACHINE(x86ms)->cgs && protocol > 0)").
//
//	OVMF before edk2-stable202502: reads only the setup+kernel blobs.
//	OVMF edk2-stable202502 and later (tianocore/edk2 PR 10628,
//	QemuKernelFetchNamedBlobs): fetches every fw_cfg file "etc/boot/NAME" as
//	blob NAME first and skips a traditional blob of the same name, so with
//	QEMU 10.0+ it measures etc/boot/kernel: the unpatched file, whose SHA-256
//	Authenticode digest is the one in the kernel's own signature. Debian
//	trixie's OVMF 2025.02 (the pinned firmware) has this code.
//
// Before 7.2.1 (7.1, 7.2.0) QEMU passed an RNG seed as setup_data and
// patched 0x250; those versions are refused. Versions from 11.0 are refused
// until reviewed. SEV guests (never patched) and -dtb are not modeled.
//
// # Checked against firmware
//
// TestBoot boots the pinned kernel and OVMF under the installed QEMU with
// swtpm and compares PCR 4's EV_EFI_BOOT_SERVICES_APPLICATION digests
// (SHA-256 and SHA-384 banks) and PCR 9's LoadOptions event with the
// prediction. Done for QEMU 7.2.22 and 10.0.13 with OVMF 2022.11 and
// 2025.02 (realkernel_test.go lists the digests): 7.2 with either firmware
// and 10.0 with 2022.11 measure the patched header, 10.0 with 2025.02
// measures the unpatched file. The 10.2 confidential-guest rule and TDX
// (RTMR1 gets the same SHA-384 digest) are from the sources above only.
package qemukernel
