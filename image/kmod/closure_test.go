package kmod

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fakeKernel is a kernel described by modinfo per module name. Module files
// sit under kernel/ with the name as written (so '-' names test Normalize).
type fakeKernel struct {
	mods    map[string]Info // file name (without .ko.xz) -> modinfo
	builtin []string
}

func (k fakeKernel) index() (*Index, func(string) (Info, error)) {
	var paths []string
	byPath := map[string]Info{}
	for name, inf := range k.mods {
		p := "kernel/drivers/" + name + ".ko.xz"
		paths = append(paths, p)
		byPath[p] = inf
	}
	var builtin strings.Builder
	for _, b := range k.builtin {
		fmt.Fprintf(&builtin, "kernel/%s.ko\n", b)
	}
	return NewIndex(paths, []byte(builtin.String())), func(p string) (Info, error) {
		inf, ok := byPath[p]
		if !ok {
			return Info{}, fmt.Errorf("no modinfo for %s", p)
		}
		return inf, nil
	}
}

func names(ms []Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestClosure(t *testing.T) {
	tests := []struct {
		name    string
		k       fakeKernel
		wanted  []string
		order   []string
		builtin []string
		ignored []string
		err     error
	}{
		{
			name: "diamond",
			k: fakeKernel{mods: map[string]Info{
				"top": {Depends: []string{"left", "right"}}, "left": {Depends: []string{"base"}},
				"right": {Depends: []string{"base"}}, "base": {}, "unrelated": {},
			}},
			wanted: []string{"top"},
			order:  []string{"base", "left", "right", "top"},
		},
		{
			// Ties are broken by name, not by the order of wanted.
			name:   "independent modules sorted",
			k:      fakeKernel{mods: map[string]Info{"b": {}, "a": {}, "c": {}}},
			wanted: []string{"c", "a", "b", "a"},
			order:  []string{"a", "b", "c"},
		},
		{
			name:    "builtin wanted and builtin dependency",
			k:       fakeKernel{mods: map[string]Info{"virtio_net": {Depends: []string{"net_failover"}}, "net_failover": {Depends: []string{"virtio"}}}, builtin: []string{"drivers/virtio/virtio_pci", "drivers/virtio/virtio"}},
			wanted:  []string{"virtio_net", "virtio-pci"},
			order:   []string{"net_failover", "virtio_net"},
			builtin: []string{"virtio_pci"},
		},
		{
			name:   "unknown wanted",
			k:      fakeKernel{mods: map[string]Info{"a": {}}},
			wanted: []string{"a", "nosuch", "also-missing"},
			err:    ErrUnknownModule,
		},
		{
			name:   "unknown hard dependency",
			k:      fakeKernel{mods: map[string]Info{"a": {Depends: []string{"gone"}}}},
			wanted: []string{"a"},
			err:    ErrUnknownModule,
		},
		{
			// crc32c must load before a although a does not link against it;
			// the post: module is shipped, unordered; unknown softdeps are noted.
			name: "softdeps",
			k: fakeKernel{mods: map[string]Info{
				"a":      {SoftdepPre: []string{"crc32c", "missing-pre"}, SoftdepPost: []string{"a_post", "missing-post"}},
				"crc32c": {}, "a_post": {}, "z": {},
			}, builtin: []string{"crypto/builtin_soft"}},
			wanted:  []string{"a", "z"},
			order:   []string{"a_post", "crc32c", "a", "z"},
			ignored: []string{"a: softdep post: missing_post not found", "a: softdep pre: missing_pre not found"},
		},
		{
			name: "softdep pre reorders against name order",
			k: fakeKernel{mods: map[string]Info{
				"aa": {SoftdepPre: []string{"zz"}}, "zz": {},
			}},
			wanted: []string{"aa"},
			order:  []string{"zz", "aa"},
		},
		{
			name:   "cycle",
			k:      fakeKernel{mods: map[string]Info{"a": {Depends: []string{"b"}}, "b": {Depends: []string{"c"}}, "c": {Depends: []string{"a"}}, "d": {}}},
			wanted: []string{"a", "d"},
			err:    ErrCycle,
		},
		{
			name:   "self dependency",
			k:      fakeKernel{mods: map[string]Info{"a": {Depends: []string{"a"}}}},
			wanted: []string{"a"},
			err:    ErrCycle,
		},
		{
			name:   "softdep pre cycle",
			k:      fakeKernel{mods: map[string]Info{"a": {SoftdepPre: []string{"b"}}, "b": {Depends: []string{"a"}}}},
			wanted: []string{"a"},
			err:    ErrCycle,
		},
		{
			// Files, modinfo and wanted names mix '-' and '_'.
			name: "dash and underscore",
			k: fakeKernel{mods: map[string]Info{
				"dm-verity": {Depends: []string{"dm-bufio", "dm_mod"}}, "dm_bufio": {Depends: []string{"dm-mod"}}, "dm-mod": {},
			}},
			wanted: []string{"dm_verity", "dm-verity"},
			order:  []string{"dm_mod", "dm_bufio", "dm_verity"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix, info := tc.k.index()
			res, err := ix.Closure(tc.wanted, info)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Closure error = %v, want %v", err, tc.err)
			}
			if err != nil {
				t.Logf("error: %v", err)
				return
			}
			if got := names(res.Modules); !reflect.DeepEqual(got, tc.order) {
				t.Errorf("load order = %q, want %q", got, tc.order)
			}
			if !reflect.DeepEqual(res.Builtin, tc.builtin) {
				t.Errorf("Builtin = %q, want %q", res.Builtin, tc.builtin)
			}
			if !reflect.DeepEqual(res.Ignored, tc.ignored) {
				t.Errorf("Ignored = %q, want %q", res.Ignored, tc.ignored)
			}
			checkOrder(t, res, info)
		})
	}
}

// checkOrder verifies the load-order contract against modinfo directly.
func checkOrder(t *testing.T, res Resolved, info func(string) (Info, error)) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range res.Modules {
		pos[m.Name] = i
	}
	for i, m := range res.Modules {
		inf, err := info(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range append(inf.Depends, inf.SoftdepPre...) {
			if j, ok := pos[Normalize(d)]; ok && j > i {
				t.Errorf("%s (position %d) needs %s, which comes later (%d)", m.Name, i, d, j)
			}
		}
	}
}

func TestClosureMessages(t *testing.T) {
	ix, info := fakeKernel{mods: map[string]Info{"b": {Depends: []string{"c"}}, "c": {Depends: []string{"b"}}, "a": {Depends: []string{"b"}}}}.index()
	_, err := ix.Closure([]string{"a"}, info)
	if want := "b -> c -> b"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("cycle error = %v, want it to name %q", err, want)
	}
	_, err = ix.Closure([]string{"x-1", "a", "x_0"}, info)
	if want := "x_0, x_1"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown error = %v, want it to name %q", err, want)
	}
	boom := errors.New("boom")
	_, err = ix.Closure([]string{"a"}, func(string) (Info, error) { return Info{}, boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "kernel/drivers/a.ko.xz") {
		t.Errorf("info error = %v, want it wrapped with the module path", err)
	}
}

func TestNewIndex(t *testing.T) {
	ix := NewIndex([]string{
		"kernel/fs/x.ko.xz", "updates/x.ko", "extra/x.ko.zst",
		"kernel/drivers/md/dm-mod.ko.zst", "modules.order", "kernel/.ko", "kernel/y.ko.bz2",
	}, []byte("kernel/drivers/virtio/virtio_pci.ko\n\n  kernel/lib/crc-ccitt.ko  \r\n"))
	for name, want := range map[string]string{"x": "updates/x.ko", "dm_mod": "kernel/drivers/md/dm-mod.ko.zst", "dm-mod": "kernel/drivers/md/dm-mod.ko.zst"} {
		if got, ok := ix.Path(name); !ok || got != want {
			t.Errorf("Path(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"modules.order", "", "y"} {
		if p, ok := ix.Path(name); ok {
			t.Errorf("Path(%q) = %q, want not found", name, p)
		}
	}
	for _, name := range []string{"virtio_pci", "virtio-pci", "crc_ccitt"} {
		if !ix.Builtin(name) {
			t.Errorf("Builtin(%q) = false, want true", name)
		}
	}
}
