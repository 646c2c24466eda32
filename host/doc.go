// Package host is the launcher that runs on the GPU server: it puts the GPU
// into confidential-computing mode, binds it to vfio-pci, boots the
// appliance under QEMU as a TDX guest (or a TCG guest with swtpm for
// development), and watches its health. The code arrives with its issue.
package host
