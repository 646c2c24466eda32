package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cocoon-appliance/cocoon/init/mount"
)

func TestMountStep(t *testing.T) {
	sys := &recSys{}
	st := Mount{M: mount.Configfs, Sys: sys}
	if st.String() != "mount -t configfs -o nosuid,nodev,noexec configfs /sys/kernel/config" {
		t.Errorf("String() = %q", st)
	}
	if err := st.Run(context.Background(), &State{}); err != nil || len(sys.calls) != 1 || sys.calls[0] != "mount configfs /sys/kernel/config configfs" {
		t.Fatalf("err %v, calls %q", err, sys.calls)
	}
	sys.mountFail = unix.EPERM
	if err := st.Run(context.Background(), &State{}); !errors.Is(err, unix.EPERM) {
		t.Errorf("failing mount: %v", err)
	}
}

type recLoader struct {
	loaded []string
	errs   map[string]error
}

func (l *recLoader) Load(p string) error {
	l.loaded = append(l.loaded, p)
	return l.errs[p]
}

func TestModulesStep(t *testing.T) {
	const dir = "/lib/modules/6.12.107+deb13-amd64"
	files := map[string]string{dir + "/modules.load": "kernel/dm-mod.ko.xz\nkernel/tdx-guest.ko.xz\nkernel/dm-verity.ko.xz\n"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	ld := &recLoader{errs: map[string]error{dir + "/kernel/tdx-guest.ko.xz": unix.ENODEV}}
	var log bytes.Buffer
	st := Modules{Dir: dir, ReadFile: read, Loader: ld}
	if err := st.Run(context.Background(), &State{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if len(ld.loaded) != 3 || ld.loaded[2] != dir+"/kernel/dm-verity.ko.xz" {
		t.Errorf("loaded %q, want the list in order", ld.loaded)
	}
	if !strings.Contains(log.String(), `2 modules loaded, 0 already present, no device for ["kernel/tdx-guest.ko.xz"]`) {
		t.Errorf("console %q", log.String())
	}
	ld = &recLoader{errs: map[string]error{dir + "/kernel/dm-verity.ko.xz": unix.ENOEXEC}}
	if err := (Modules{Dir: dir, ReadFile: read, Loader: ld}).Run(context.Background(), &State{Log: &log}); !errors.Is(err, unix.ENOEXEC) || !strings.Contains(err.Error(), "dm-verity") {
		t.Errorf("bad module: %v", err)
	}
}
