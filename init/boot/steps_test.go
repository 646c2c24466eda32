package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/go-dmverity/pkg/dm"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/verity"
)

const cmdline = "console=ttyS0 panic=-1 ro cocoon.verity=1," + dataUUID + "," + hashUUID +
	",4096,4096,187,1,sha256,5e19a3961092eade086735de14a4dcdf898ce066c63784d2863a89a6e301ddbf,42877a3e887daba912e5e4db982e20310bfd5592ac4f4a33e08c52dafd303c40"

type recSys struct {
	calls     []string
	mountFail error
}

func (r *recSys) Mount(src, target, fstype string, flags uintptr, data string) error {
	r.calls = append(r.calls, fmt.Sprintf("mount %s %s %s", src, target, fstype))
	return r.mountFail
}
func (r *recSys) MkdirAll(string, os.FileMode) error { return nil }
func (r *recSys) Chdir(d string) error               { r.calls = append(r.calls, "chdir "+d); return nil }
func (r *recSys) Chroot(d string) error              { r.calls = append(r.calls, "chroot "+d); return nil }

// okMapper's live table is the one cmdline names, unless table is set.
type okMapper struct{ status, table string }

func (okMapper) CreateDevice(string) (uint64, error) { return 0, nil }
func (okMapper) LoadTable(string, []dm.Target) error { return nil }
func (okMapper) SuspendDevice(string, bool) error    { return nil }
func (okMapper) RemoveDevice(string) error           { return nil }
func (m okMapper) TableStatus(_ string, table bool) (string, error) {
	if !table {
		return m.status, nil
	}
	if m.table != "" {
		return m.table, nil
	}
	p, _ := bootparams.Parse(cmdline)
	return p.Verity.Table("254:0", "254:1"), nil
}
func (okMapper) DeviceStatus(string) (dm.DeviceStatus, error) {
	return dm.DeviceStatus{Major: 253, Minor: 0, ActivePresent: true}, nil
}

type haveNodes struct{}

func (haveNodes) Exists(string) bool                 { return true }
func (haveNodes) Mknod(string, uint32, uint32) error { return errors.New("unexpected mknod") }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// TestStepsToRoot runs the steps from the command line to switch root
// against fakes and checks what each handed on.
func TestStepsToRoot(t *testing.T) {
	cfgDisk, err := config.Encode(&config.Config{Schema: config.Schema, Static: config.Static{Model: "m"},
		Runtime: config.Runtime{Network: config.Network{Mode: "dhcp"}, WorkerArgs: []string{"-listen", ":9"}}})
	if err != nil {
		t.Fatal(err)
	}
	sys := &recSys{}
	s := &State{Log: io.Discard}
	staticPath := filepath.Join(t.TempDir(), "run", "cocoon", "static.json")
	steps := []Step{
		Cmdline{ReadFile: func(string) ([]byte, error) { return []byte(cmdline + "\n"), nil }},
		RootDisk{SysBlock: fakeSys(), Table: fakeTable, Timeout: time.Second},
		Verity{Open: func() (verity.Mapper, error) { return okMapper{status: "V"}, nil }, Nodes: haveNodes{}},
		MountRoot{Sys: sys, NewRoot: "/sysroot"},
		Config{SysBlock: fakeSys(), Timeout: time.Second, StaticPath: staticPath, Open: func(p string) (io.ReadCloser, error) {
			if p != "/dev/vdb" {
				return nil, os.ErrNotExist
			}
			return nopCloser{bytes.NewReader(cfgDisk)}, nil
		}},
		SwitchRoot{Sys: sys, NewRoot: "/sysroot"},
	}
	var console bytes.Buffer
	if err := Run(context.Background(), steps, s, &console); err != nil {
		t.Fatalf("%v\n%s", err, console.String())
	}
	if s.DataDev != "/dev/vda1" || s.HashDev != "/dev/vda2" || s.RootDev != "/dev/dm-0" {
		t.Errorf("devices %s %s %s", s.DataDev, s.HashDev, s.RootDev)
	}
	if s.Config == nil || s.Config.Static.Model != "m" || !strings.Contains(string(s.StaticConfig), `"model":"m"`) {
		t.Errorf("config %+v, static %s", s.Config, s.StaticConfig)
	}
	if b, err := os.ReadFile(staticPath); err != nil || !bytes.Equal(b, s.StaticConfig) {
		t.Errorf("static config for the worker: %q, %v", b, err)
	}
	if sys.calls[0] != "mount /dev/dm-0 /sysroot squashfs" || sys.calls[len(sys.calls)-1] != "chdir /" {
		t.Errorf("sys calls %q", sys.calls)
	}
}

func TestMountRootCorrupted(t *testing.T) {
	s := &State{RootDev: "/dev/dm-0", Mapper: okMapper{status: "C"}}
	if err := (MountRoot{Sys: &recSys{}, NewRoot: "/sysroot"}).Run(context.Background(), s); !errors.Is(err, verity.ErrCorrupted) {
		t.Errorf("err = %v, want ErrCorrupted", err)
	}
}

// A table other than the command line's (another root hash loaded under
// the same name) is refused even though the target reports verified.
func TestMountRootOtherTable(t *testing.T) {
	p, err := bootparams.Parse(cmdline)
	if err != nil {
		t.Fatal(err)
	}
	other := p.Verity
	other.RootHash = bytes.Repeat([]byte{0xee}, 32)
	s := &State{Cmdline: p, RootDev: "/dev/dm-0", Mapper: okMapper{status: "V", table: other.Table("254:0", "254:1")}, Log: io.Discard}
	if err := (MountRoot{Sys: &recSys{}, NewRoot: "/sysroot"}).Run(context.Background(), s); !errors.Is(err, verity.ErrTableDiffers) || !strings.Contains(err.Error(), "root hash eeee") {
		t.Errorf("err = %v, want ErrTableDiffers naming the root hash", err)
	}
}

// dm-verity fails the superblock read with EIO; the error says why.
func TestMountRootEIOFromVerity(t *testing.T) {
	p, _ := bootparams.Parse(cmdline)
	s := &State{Cmdline: p, RootDev: "/dev/dm-0", Mapper: okMapper{status: "C"}, Log: io.Discard}
	err := (MountRoot{Sys: &recSys{mountFail: syscall.EIO}, NewRoot: "/sysroot"}).Run(context.Background(), s)
	if !errors.Is(err, verity.ErrCorrupted) || !strings.Contains(err.Error(), "input/output error") || !strings.Contains(err.Error(), "root hash 5e19a396") {
		t.Errorf("err = %v", err)
	}
	// EIO from the disk itself with a verified target stays what it is.
	s.Mapper = okMapper{status: "V"}
	err = (MountRoot{Sys: &recSys{mountFail: syscall.EIO}, NewRoot: "/sysroot"}).Run(context.Background(), s)
	if errors.Is(err, verity.ErrCorrupted) || !errors.Is(err, syscall.EIO) {
		t.Errorf("err = %v", err)
	}
}

func TestConfigMissingDisk(t *testing.T) {
	sys := fakeSys()
	delete(sys, "vdb/serial")
	c := Config{SysBlock: sys, Timeout: 20 * time.Millisecond, Open: func(string) (io.ReadCloser, error) { return nil, os.ErrNotExist }}
	err := c.Run(context.Background(), &State{Log: io.Discard})
	if !errors.Is(err, ErrNoConfigDisk) || err.Error() != "no config disk (serial cocoon-config)" {
		t.Errorf("err = %v, want ErrNoConfigDisk", err)
	}
}

func TestWorkerStep(t *testing.T) {
	// The supervisor parks at its first sleep. Cancelling Run's context
	// there instead would race the first start's report in Run's select.
	clk := &fakeClock{now: time.Unix(0, 0), stopAt: 1, cancel: func() {}}
	r := &fakeRunner{clk: clk, fails: map[int]error{1: errors.New("ENOENT")}}
	w := Worker{Sup: &Supervisor{Path: "/usr/bin/cocoon-worker", Runner: r, Clock: clk, Console: io.Discard}}
	if err := w.Run(context.Background(), &State{}); err == nil || err.Error() != "ENOENT" {
		t.Errorf("first start failing: err = %v, want ENOENT", err)
	}
}

// The runtime config's registry reaches the worker as -registry, unless
// its worker_args already say which.
func TestWorkerArgsRegistry(t *testing.T) {
	for _, tc := range []struct {
		name string
		rt   config.Runtime
		want []string
	}{
		{"no registry", config.Runtime{WorkerArgs: []string{"-listen", ":9"}}, []string{"-listen", ":9"}},
		{"registry added", config.Runtime{WorkerArgs: []string{"-listen", ":9"}, RegistryURL: "https://r.example"},
			[]string{"-listen", ":9", "-registry", "https://r.example"}},
		{"no args", config.Runtime{RegistryURL: "https://r.example"}, []string{"-registry", "https://r.example"}},
		{"args name one", config.Runtime{WorkerArgs: []string{"-registry", "http://10.0.0.1"}, RegistryURL: "https://r.example"},
			[]string{"-registry", "http://10.0.0.1"}},
		{"args name one with =", config.Runtime{WorkerArgs: []string{"--registry=http://10.0.0.1"}, RegistryURL: "https://r.example"},
			[]string{"--registry=http://10.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The supervisor parks at its first sleep; Run returns at the
			// first start.
			clk := &fakeClock{now: time.Unix(0, 0), stopAt: 1, cancel: func() {}}
			r := &fakeRunner{clk: clk}
			cfg := &config.Config{Runtime: tc.rt}
			before := slices.Clone(tc.rt.WorkerArgs)
			w := Worker{Sup: &Supervisor{Path: "/usr/bin/cocoon-worker", Runner: r, Clock: clk, Console: io.Discard}}
			if err := w.Run(context.Background(), &State{Config: cfg}); err != nil {
				t.Fatal(err)
			}
			if len(r.args) == 0 || !slices.Equal(r.args[0], tc.want) {
				t.Errorf("worker started with %q, want %q", r.args, tc.want)
			}
			if !slices.Equal(cfg.Runtime.WorkerArgs, before) {
				t.Errorf("the config's worker_args changed to %q", cfg.Runtime.WorkerArgs)
			}
		})
	}
}
