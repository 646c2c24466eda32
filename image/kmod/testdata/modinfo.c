/*
 * A stand-in for a kernel module's .modinfo section, as the kernel build
 * fills it: MODULE_INFO(tag, info) in include/linux/moduleparam.h places
 * "tag=info" as a NUL-terminated string into section .modinfo, byte
 * aligned; modpost adds name=, depends= and vermagic= through the
 * generated <module>.mod.c. The strings below copy that layout.
 */
#define MODINFO(id, s) \
	static const char id[] __attribute__((section(".modinfo"), used, aligned(1))) = s

MODINFO(m_license, "license=GPL");
MODINFO(m_desc, "description=test module for image/kmod");
MODINFO(m_alias1, "alias=devname:demo");
MODINFO(m_alias2, "alias=dm-target-demo");
MODINFO(m_softdep, "softdep=pre: crc32c sha256-ssse3 post: dm-verity");
MODINFO(m_junk, "no equals sign here");
MODINFO(m_depends, "depends=dm-mod,dm-bufio");
MODINFO(m_intree, "intree=Y");
MODINFO(m_name, "name=dm_demo");
MODINFO(m_vermagic, "vermagic=6.12.107+deb13-amd64 SMP preempt mod_unload modversions ");

int demo_init(void) { return 0; }
