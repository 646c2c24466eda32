package boot

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/netup"
)

func TestNetwork(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  config.Network
		ok   bool
	}{
		{"static", config.Network{Mode: "static", Address: "10.0.2.15/24", Gateway: "10.0.2.2"}, true},
		{"dhcp", config.Network{Mode: "dhcp"}, false},
		{"unknown", config.Network{Mode: "carrier-pigeon"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := netup.NewFake("eth0")
			s := withPolicy(DevPolicy)
			s.Config.Runtime.Network = tc.net
			n := Network{Link: func() (netup.Link, error) { return f, nil }, ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
			err := n.Run(context.Background(), s)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if tc.ok && (!f.Up["eth0"] || len(f.Addrs["eth0"]) != 1 || len(f.Routes) != 1) {
				t.Fatalf("fake after Up: %+v", f)
			}
		})
	}
	if err := (Network{}).Run(context.Background(), &State{}); err == nil {
		t.Fatal("no config accepted")
	}
}
