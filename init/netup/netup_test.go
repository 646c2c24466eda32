package netup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestUp(t *testing.T) {
	type want struct {
		err    error
		errHas string
		up     []string
		addrs  map[string][]string
		routes int
	}
	for _, tc := range []struct {
		name string
		eth  []string
		c    Config
		want want
	}{
		{"static", []string{"eth0", "eth1"}, Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3", "1.1.1.1"}},
			want{up: []string{"eth0", "lo"}, addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}, routes: 1}},
		{"named interface", []string{"eth0", "eth1"}, Config{Mode: "static", Interface: "eth1", Address: "192.168.1.10/16", Gateway: "192.168.200.1"},
			want{up: []string{"eth1", "lo"}, addrs: map[string][]string{"eth1": {"192.168.1.10/16"}}, routes: 1}},
		{"no gateway", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24"},
			want{up: []string{"eth0", "lo"}, addrs: map[string][]string{"eth0": {"10.0.2.15/24"}}}},
		{"ipv6", []string{"eth0"}, Config{Mode: "static", Address: "fd00::5/64", Gateway: "fd00::1"},
			want{up: []string{"eth0", "lo"}, addrs: map[string][]string{"eth0": {"fd00::5/64"}}, routes: 1}},
		{"none", []string{"eth0"}, Config{Mode: "none"}, want{up: []string{"lo"}, addrs: map[string][]string{}}},

		{"no NIC", nil, Config{Mode: "static", Address: "10.0.2.15/24"}, want{err: ErrNoInterface, errHas: "lo(device)"}},
		{"missing named NIC", []string{"eth0"}, Config{Mode: "static", Interface: "eth7", Address: "10.0.2.15/24"}, want{err: ErrNoInterface, errHas: "eth7"}},
		{"bad CIDR", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15"}, want{err: ErrConfig, errHas: "not CIDR"}},
		{"bad CIDR prefix", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/33"}, want{err: ErrConfig, errHas: "not CIDR"}},
		{"network address", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.0/24"}, want{err: ErrConfig, errHas: "network address"}},
		{"gateway outside subnet", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.3.1"},
			want{err: ErrConfig, errHas: "gateway 10.0.3.1 is outside the subnet 10.0.2.0/24"}},
		{"gateway family", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "fd00::1"}, want{err: ErrConfig, errHas: "outside"}},
		{"gateway is self", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.15"}, want{err: ErrConfig, errHas: "own address"}},
		{"bad gateway", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "router"}, want{err: ErrConfig}},
		{"bad DNS", []string{"eth0"}, Config{Mode: "static", Address: "10.0.2.15/24", DNS: []string{"dns.google"}}, want{err: ErrConfig, errHas: "dns.google"}},
		{"unknown mode", []string{"eth0"}, Config{Mode: "bootp"}, want{err: ErrConfig, errHas: `"bootp"`}},
		{"none with address", []string{"eth0"}, Config{Mode: "none", Address: "10.0.2.15/24"}, want{err: ErrConfig}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(tc.eth...)
			tc.c.ResolvConf = filepath.Join(t.TempDir(), "run", "resolv.conf")
			err := Up(f, tc.c)
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) || !strings.Contains(err.Error(), tc.want.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.want.err, tc.want.errHas)
				}
				if errors.Is(err, ErrConfig) && (len(f.Up) != 0 || len(f.Addrs) != 0) {
					t.Fatalf("an invalid config changed the machine: up %v, addrs %v", f.Up, f.Addrs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var up []string
			for n := range f.Up {
				up = append(up, n)
			}
			if !sameSet(up, tc.want.up) {
				t.Errorf("up %v, want %v", up, tc.want.up)
			}
			if !reflect.DeepEqual(f.Addrs, tc.want.addrs) {
				t.Errorf("addrs %v, want %v", f.Addrs, tc.want.addrs)
			}
			if len(f.Routes) != tc.want.routes {
				t.Errorf("routes %v, want %d", f.Routes, tc.want.routes)
			}
			for _, r := range f.Routes {
				if r.Dst != nil || r.Gw.String() != tc.c.Gateway {
					t.Errorf("route %v, want default via %s", r, tc.c.Gateway)
				}
			}
			b, err := os.ReadFile(tc.c.ResolvConf)
			if len(tc.c.DNS) == 0 {
				if err == nil {
					t.Errorf("resolv.conf written without DNS servers")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range tc.c.DNS {
				if !strings.Contains(string(b), "nameserver "+d+"\n") {
					t.Errorf("resolv.conf %q lacks %s", b, d)
				}
			}
		})
	}
}

func TestUpDeviceErrors(t *testing.T) {
	c := Config{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2"}
	for _, call := range []string{"LinkSetUp", "AddrAdd", "RouteAdd", "LinkList", "LinkByName"} {
		f := NewFake("eth0")
		f.Fail[call] = errors.New("EPERM from " + call)
		if err := Up(f, c); err == nil || !strings.Contains(err.Error(), "EPERM from "+call) {
			t.Errorf("%s failing: err = %v", call, err)
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}
