package fstree

import (
	"errors"
	"sort"
	"testing"
)

func TestAddAndOrder(t *testing.T) {
	var tr Tree
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.AddFile("a-b", 0o644, []byte("x")))
	must(tr.AddFile("a/b/c", 0o755, []byte("y")))
	must(tr.AddDir("a", 0o755)) // same as the implied parent: fine
	must(tr.Add(Entry{Path: "./dev/null", Kind: CharDev, Perm: 0o666, Major: 1, Minor: 3}))
	must(tr.Add(Entry{Path: "/l", Kind: Symlink, Perm: 0o777, Target: "a/b/c"}))
	var got []string
	for _, e := range tr.Entries() {
		got = append(got, e.Path)
	}
	// Component order keeps a directory right before its contents, even
	// though '-' (0x2d) sorts before '/' (0x2f) bytewise.
	want := []string{"a", "a/b", "a/b/c", "a-b", "dev", "dev/null", "l"}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entries %v, want %v", got, want)
		}
	}
	if e, _ := tr.Get("a/b"); e.Kind != Dir || e.Perm != 0o755 {
		t.Fatalf("implied parent %+v", e)
	}
}

func TestAddErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want error
	}{
		{"root", Entry{Path: "/", Kind: Dir}, ErrBadPath},
		{"dotdot", Entry{Path: "../x", Kind: File}, ErrBadPath},
		{"unclean", Entry{Path: "a//b", Kind: File}, ErrBadPath},
		{"nul", Entry{Path: "a\x00b", Kind: File}, ErrBadPath},
		{"mode bits", Entry{Path: "f", Kind: File, Perm: 0o10644}, ErrBadEntry},
		{"symlink without target", Entry{Path: "s", Kind: Symlink}, ErrBadEntry},
		{"bad kind", Entry{Path: "k", Kind: 99}, ErrBadEntry},
		{"duplicate", Entry{Path: "f", Kind: File}, ErrDuplicate},
		{"file as parent", Entry{Path: "f/x", Kind: File}, ErrBadEntry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr Tree
			if err := tr.AddFile("f", 0o644, nil); err != nil {
				t.Fatal(err)
			}
			if err := tr.Add(tc.e); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFirstDifference(t *testing.T) {
	a := []Entry{{Path: "a", Kind: Dir, Perm: 0o755}, {Path: "a/x", Kind: File, Perm: 0o644, Data: []byte("1")}, {Path: "b", Kind: File, Perm: 0o644}}
	same := append([]Entry(nil), a...)
	if d := FirstDifference(a, same); d != nil {
		t.Fatalf("identical: %v", d)
	}
	changed := append([]Entry(nil), a...)
	changed[1].Data = []byte("2")
	if d := FirstDifference(a, changed); d == nil || d.Path != "a/x" {
		t.Fatalf("content change: %v", d)
	}
	perm := append([]Entry(nil), a...)
	perm[2].Perm = 0o600
	if d := FirstDifference(a, perm); d == nil || d.Path != "b" {
		t.Fatalf("perm change: %v", d)
	}
	if d := FirstDifference(a, a[:2]); d == nil || d.Path != "b" || d.Got != "absent" {
		t.Fatalf("missing: %v", d)
	}
	extra := append(append([]Entry(nil), a[:2]...), Entry{Path: "a0", Kind: Dir}, a[2])
	if d := FirstDifference(a, extra); d == nil || d.Path != "a0" || d.Want != "absent" {
		t.Fatalf("extra: %v", d)
	}
}

func TestComparePathsIsATotalOrder(t *testing.T) {
	ps := []string{"a", "a/b", "a-b", "a/b/c", "a.b", "b", "a/a", "ab"}
	sort.Slice(ps, func(i, j int) bool { return ComparePaths(ps[i], ps[j]) < 0 })
	for i := 1; i < len(ps); i++ {
		if ComparePaths(ps[i-1], ps[i]) >= 0 || ComparePaths(ps[i], ps[i-1]) <= 0 {
			t.Fatalf("not strictly ordered at %d: %v", i, ps)
		}
	}
	if ComparePaths("x/y", "x/y") != 0 {
		t.Fatal("equal paths")
	}
}

func TestModeString(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want string
	}{
		{Entry{Kind: File, Perm: 0o644}, "-rw-r--r--"},
		{Entry{Kind: File, Perm: 0o4755}, "-rwsr-xr-x"},
		{Entry{Kind: File, Perm: 0o2644}, "-rw-r-Sr--"},
		{Entry{Kind: Dir, Perm: 0o1777}, "drwxrwxrwt"},
		{Entry{Kind: Dir, Perm: 0o1776}, "drwxrwxrwT"},
		{Entry{Kind: Symlink, Perm: 0o777}, "lrwxrwxrwx"},
		{Entry{Kind: CharDev, Perm: 0o600}, "crw-------"},
		{Entry{Kind: BlockDev, Perm: 0o660}, "brw-rw----"},
	} {
		if got := tc.e.ModeString(); got != tc.want {
			t.Errorf("%v %o: %s, want %s", tc.e.Kind, uint32(tc.e.Perm), got, tc.want)
		}
	}
}

func TestFromEntries(t *testing.T) {
	tr, err := FromEntries([]Entry{{Path: "a", Kind: Dir, Perm: 0o755}, {Path: "a/f", Kind: File, Perm: 0o644}})
	if err != nil || tr.Len() != 2 {
		t.Fatalf("%v %v", tr, err)
	}
	if _, err := FromEntries([]Entry{{Path: "a/f", Kind: File, Perm: 0o644}}); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("implied parent accepted: %v", err)
	}
	if _, err := FromEntries([]Entry{{Path: "f", Kind: File}, {Path: "f", Kind: File}}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate accepted: %v", err)
	}
}
