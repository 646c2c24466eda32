// Package verity opens the root filesystem's dm-verity target in the guest
// with device-mapper ioctls (no cryptsetup, no udev), from the table the
// measured kernel command line carries (image/bootparams).
package verity

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/go-dmverity/pkg/dm"
	"golang.org/x/sys/unix"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
)

// Name is the device-mapper name of the root target.
const Name = "root"

// Errors.
var (
	// ErrCorrupted is returned when the kernel reports the target as corrupted.
	ErrCorrupted = errors.New("verity: root target is corrupted")
	// ErrTableDiffers is returned when the live table is not the one the
	// command line asked for.
	ErrTableDiffers = errors.New("verity: live root table differs from the command line")
)

// Mapper is the part of device-mapper this package uses; *dm.Control is the
// real one (dm.Open opens /dev/mapper/control).
type Mapper interface {
	CreateDevice(name string) (uint64, error)
	LoadTable(name string, targets []dm.Target) error
	SuspendDevice(name string, suspend bool) error
	DeviceStatus(name string) (dm.DeviceStatus, error)
	TableStatus(name string, inactive bool) (string, error)
	RemoveDevice(name string) error
}

// Nodes makes device nodes when devtmpfs has not (yet) made them.
type Nodes interface {
	Exists(path string) bool
	Mknod(path string, major, minor uint32) error
}

// DevNodes is the real Nodes.
type DevNodes struct{}

func (DevNodes) Exists(p string) bool { _, err := os.Stat(p); return err == nil }
func (DevNodes) Mknod(p string, major, minor uint32) error {
	return unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor)))
}

// Open creates the read-only verity target over dataDev and hashDev
// (Documentation/admin-guide/device-mapper/verity.rst), as `veritysetup
// open` does: create, load the table, resume. It returns the /dev/dm-N path.
// On failure the half-made device is removed.
func Open(m Mapper, nodes Nodes, v bootparams.Verity, dataDev, hashDev string) (string, error) {
	if err := v.Validate(); err != nil {
		return "", err
	}
	sectors := v.DataBlocks * uint64(v.DataBlockSize) / 512
	if _, err := m.CreateDevice(Name); err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			_ = m.RemoveDevice(Name)
		}
	}()
	// pkg/dm's LoadTable sets DM_READONLY_FLAG.
	t := dm.Target{SectorStart: 0, Length: sectors, Type: "verity", Params: v.Table(dataDev, hashDev)}
	if err := m.LoadTable(Name, []dm.Target{t}); err != nil {
		return "", err
	}
	if err := m.SuspendDevice(Name, false); err != nil { // resume: the table goes live
		return "", err
	}
	st, err := m.DeviceStatus(Name)
	if err != nil {
		return "", err
	}
	if !st.ActivePresent {
		return "", fmt.Errorf("verity: %s has no active table after resume", Name)
	}
	dev := fmt.Sprintf("/dev/dm-%d", st.Minor)
	if !nodes.Exists(dev) {
		if err := nodes.Mknod(dev, st.Major, st.Minor); err != nil {
			return "", fmt.Errorf("mknod %s b %d %d: %w", dev, st.Major, st.Minor, err)
		}
	}
	ok = true
	return dev, nil
}

// Check is `dmsetup status root`: the verity target's status is "V" while
// every block read so far verified and "C" once one did not.
func Check(m Mapper) error {
	s, err := m.TableStatus(Name, false)
	if err != nil {
		return err
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return fmt.Errorf("verity: status of %s is empty, want V", Name)
	}
	if f[0] != "V" {
		return fmt.Errorf("%w: status %q, want V", ErrCorrupted, s)
	}
	return nil
}

// CheckTable is `dmsetup table root` compared with the command line's
// table: the root that is mounted is verified against the measured root
// hash and salt, not some other table loaded in between. The kernel prints
// the devices as major:minor (drivers/md/dm-verity-target.c,
// verity_status STATUSTYPE_TABLE), so the comparison covers every field
// but those two.
func CheckTable(m Mapper, want bootparams.Verity) error {
	// pkg/dm's "inactive" argument sets DM_STATUS_TABLE_FLAG: the table,
	// not the status, of the live table.
	s, err := m.TableStatus(Name, true)
	if err != nil {
		return err
	}
	got := strings.Fields(s)
	exp := strings.Fields(want.Table("-", "-"))
	if len(got) < len(exp) {
		return fmt.Errorf("%w: %q has %d fields, want at least %d", ErrTableDiffers, s, len(got), len(exp))
	}
	names := []string{"version", "data device", "hash device", "data block size", "hash block size", "data blocks", "hash start", "algorithm", "root hash", "salt"}
	for i, e := range exp {
		if i == 1 || i == 2 {
			continue
		}
		if got[i] != e {
			return fmt.Errorf("%w: %s %s, the command line says %s", ErrTableDiffers, names[i], got[i], e)
		}
	}
	return nil
}
