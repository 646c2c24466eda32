package kmod

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

type fakeLoader struct {
	loaded []string
	errs   map[string]error
}

func (f *fakeLoader) Load(p string) error {
	f.loaded = append(f.loaded, p)
	return f.errs[p]
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		s, ok := m[p]
		if !ok {
			return nil, os.ErrNotExist
		}
		return []byte(s), nil
	}
}

func TestLoadAllOrderAndEEXIST(t *testing.T) {
	dir := Dir("6.12.0")
	rf := files(map[string]string{dir + "/modules.load": "kernel/a.ko.xz\n\nkernel/b.ko.xz\nkernel/c.ko.xz\n"})
	ld := &fakeLoader{errs: map[string]error{dir + "/kernel/b.ko.xz": unix.EEXIST, dir + "/kernel/c.ko.xz": unix.ENODEV}}
	r, err := LoadAll(rf, ld, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{dir + "/kernel/a.ko.xz", dir + "/kernel/b.ko.xz", dir + "/kernel/c.ko.xz"}
	if !reflect.DeepEqual(ld.loaded, want) {
		t.Errorf("loaded %q, want %q", ld.loaded, want)
	}
	if !reflect.DeepEqual(r, Result{Loaded: 1, Present: 1, Absent: []string{"kernel/c.ko.xz"}}) {
		t.Errorf("result %+v, want 1 loaded, 1 present, c absent", r)
	}
}

func TestLoadAllStopsAtFailure(t *testing.T) {
	dir := "/lib/modules/x"
	rf := files(map[string]string{dir + "/modules.load": "a.ko.xz\nb.ko.xz\nc.ko.xz\n"})
	ld := &fakeLoader{errs: map[string]error{dir + "/b.ko.xz": unix.ENOEXEC}}
	_, err := LoadAll(rf, ld, dir)
	if !errors.Is(err, unix.ENOEXEC) {
		t.Fatalf("err = %v, want ENOEXEC", err)
	}
	if len(ld.loaded) != 2 {
		t.Errorf("loaded %q, want to stop after b", ld.loaded)
	}
}

func TestLoadAllRefuses(t *testing.T) {
	if _, err := LoadAll(files(nil), &fakeLoader{}, "/lib/modules/x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing modules.load: err = %v", err)
	}
	rf := files(map[string]string{"/m/modules.load": "../../evil.ko\n"})
	if _, err := LoadAll(rf, &fakeLoader{}, "/m"); err == nil {
		t.Error("a path outside the module directory was accepted")
	}
}
