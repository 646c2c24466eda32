package mount

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
)

// fakeSys records calls; fail makes the call whose record matches return an error.
type fakeSys struct {
	calls []string
	fail  string
}

func (f *fakeSys) rec(s string) error {
	f.calls = append(f.calls, s)
	if s == f.fail {
		return errors.New("EPERM")
	}
	return nil
}
func (f *fakeSys) Mount(src, target, fstype string, flags uintptr, data string) error {
	return f.rec(fmt.Sprintf("mount %s %s %s %#x %s", src, target, fstype, flags, data))
}
func (f *fakeSys) MkdirAll(p string, _ os.FileMode) error { return f.rec("mkdir " + p) }
func (f *fakeSys) Chdir(d string) error                   { return f.rec("chdir " + d) }
func (f *fakeSys) Chroot(d string) error                  { return f.rec("chroot " + d) }

func TestString(t *testing.T) {
	for m, want := range map[*Mount]string{
		&Early[0]: "mount -t proc -o nosuid,nodev,noexec proc /proc",
		&Early[2]: "mount -t devtmpfs -o nosuid,noexec,mode=0755 devtmpfs /dev",
		&Configfs: "mount -t configfs -o nosuid,nodev,noexec configfs /sys/kernel/config",
	} {
		if got := m.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	if got, want := Root("/dev/dm-0", "/sysroot").String(), "mount -t squashfs -o ro,nodev /dev/dm-0 /sysroot"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestDo(t *testing.T) {
	f := &fakeSys{}
	if err := Early[1].Do(f); err != nil {
		t.Fatal(err)
	}
	want := []string{"mkdir /sys", "mount sysfs /sys sysfs 0xe "}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	f = &fakeSys{fail: "mount sysfs /sys sysfs 0xe "}
	if err := Early[1].Do(f); err == nil {
		t.Error("Do succeeded with a failing mount")
	}
}

func TestSwitchRoot(t *testing.T) {
	f := &fakeSys{}
	if err := SwitchRoot(f, "/sysroot"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mkdir /sysroot/dev", "mount /dev /sysroot/dev  0x2000 ",
		"mkdir /sysroot/proc", "mount /proc /sysroot/proc  0x2000 ",
		"mkdir /sysroot/sys", "mount /sys /sysroot/sys  0x2000 ",
		"mkdir /sysroot/run", "mount /run /sysroot/run  0x2000 ",
		"chdir /sysroot", "mount . /  0x2000 ", "chroot .", "chdir /",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	f = &fakeSys{fail: "chroot ."}
	if err := SwitchRoot(f, "/sysroot"); err == nil {
		t.Error("SwitchRoot succeeded with a failing chroot")
	}
}
