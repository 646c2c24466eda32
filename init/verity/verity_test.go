package verity

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/containerd/go-dmverity/pkg/dm"

	"github.com/cocoon-appliance/cocoon/image/bootparams"
)

type fakeMapper struct {
	calls   []string
	targets []dm.Target
	failAt  string
	status  string
	table   string
}

var errFake = errors.New("fake ioctl failure")

func (f *fakeMapper) rec(s string) error {
	f.calls = append(f.calls, s)
	if s == f.failAt {
		return errFake
	}
	return nil
}
func (f *fakeMapper) CreateDevice(n string) (uint64, error) { return 0, f.rec("create " + n) }
func (f *fakeMapper) LoadTable(n string, t []dm.Target) error {
	f.targets = t
	return f.rec("load " + n)
}
func (f *fakeMapper) SuspendDevice(n string, s bool) error {
	if s {
		return f.rec("suspend " + n)
	}
	return f.rec("resume " + n)
}
func (f *fakeMapper) DeviceStatus(n string) (dm.DeviceStatus, error) {
	return dm.DeviceStatus{Major: 253, Minor: 3, ActivePresent: true}, f.rec("status " + n)
}
func (f *fakeMapper) TableStatus(n string, table bool) (string, error) {
	if table {
		return f.table, f.rec("table " + n)
	}
	return f.status, f.rec("status " + n)
}
func (f *fakeMapper) RemoveDevice(n string) error { return f.rec("remove " + n) }

type fakeNodes struct{ made []string }

func (n *fakeNodes) Exists(string) bool { return false }
func (n *fakeNodes) Mknod(p string, ma, mi uint32) error {
	n.made = append(n.made, p)
	return nil
}

func table() bootparams.Verity {
	return bootparams.Verity{
		Version: 1, DataDevice: "PARTUUID=5e19a396-1092-eade-0867-35de14a4dcdf", HashDevice: "PARTUUID=898ce066-c637-84d2-863a-89a6e301ddbf",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 187, HashStartBlock: 1, Algorithm: "sha256",
		RootHash: bytes.Repeat([]byte{0xab}, 32), Salt: []byte{1, 2},
	}
}

func TestOpen(t *testing.T) {
	m, n := &fakeMapper{}, &fakeNodes{}
	dev, err := Open(m, n, table(), "/dev/vda1", "/dev/vda2")
	if err != nil {
		t.Fatal(err)
	}
	if dev != "/dev/dm-3" || !reflect.DeepEqual(n.made, []string{"/dev/dm-3"}) {
		t.Errorf("dev %s, mknod %q; want /dev/dm-3 made", dev, n.made)
	}
	want := []string{"create root", "load root", "resume root", "status root"}
	if !reflect.DeepEqual(m.calls, want) {
		t.Errorf("calls %q, want %q", m.calls, want)
	}
	wantT := dm.Target{Length: 187 * 8, Type: "verity",
		Params: "1 /dev/vda1 /dev/vda2 4096 4096 187 1 sha256 " + string(bytes.Repeat([]byte("ab"), 32)) + " 0102"}
	if len(m.targets) != 1 || m.targets[0] != wantT {
		t.Errorf("targets %+v, want %+v", m.targets, wantT)
	}
}

func TestOpenRemovesOnFailure(t *testing.T) {
	m := &fakeMapper{failAt: "load root"}
	if _, err := Open(m, &fakeNodes{}, table(), "/dev/vda1", "/dev/vda2"); !errors.Is(err, errFake) {
		t.Fatalf("err = %v, want the load failure", err)
	}
	if last := m.calls[len(m.calls)-1]; last != "remove root" {
		t.Errorf("last call %q, want remove root", last)
	}
	bad := table()
	bad.RootHash = nil
	if _, err := Open(&fakeMapper{}, &fakeNodes{}, bad, "a", "b"); !errors.Is(err, bootparams.ErrInvalid) {
		t.Errorf("invalid table: err = %v", err)
	}
}

func TestCheck(t *testing.T) {
	if err := Check(&fakeMapper{status: "V"}); err != nil {
		t.Errorf("V: %v", err)
	}
	if err := Check(&fakeMapper{status: "C"}); !errors.Is(err, ErrCorrupted) {
		t.Errorf("C: err = %v, want ErrCorrupted", err)
	}
	if err := Check(&fakeMapper{status: ""}); err == nil {
		t.Error("empty status accepted")
	}
}

func TestCheckTable(t *testing.T) {
	root := string(bytes.Repeat([]byte("ab"), 32))
	live := "1 254:0 254:1 4096 4096 187 1 sha256 " + root + " 0102"
	for _, tc := range []struct {
		name, table string
		ok          bool
	}{
		{"same", live, true},
		{"same with optional args", live + " 1 ignore_corruption", true},
		{"other root hash", "1 254:0 254:1 4096 4096 187 1 sha256 " + string(bytes.Repeat([]byte("cd"), 32)) + " 0102", false},
		{"other salt", "1 254:0 254:1 4096 4096 187 1 sha256 " + root + " -", false},
		{"other size", "1 254:0 254:1 4096 4096 186 1 sha256 " + root + " 0102", false},
		{"short", "1 254:0 254:1", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTable(&fakeMapper{table: tc.table}, table())
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrTableDiffers)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if err := CheckTable(&fakeMapper{failAt: "table root"}, table()); !errors.Is(err, errFake) {
		t.Errorf("ioctl failure: %v", err)
	}
}
