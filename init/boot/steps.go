package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/hostlink"
	"github.com/cocoon-appliance/cocoon/image/bootparams"
	"github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/init/kmod"
	"github.com/cocoon-appliance/cocoon/init/mount"
	"github.com/cocoon-appliance/cocoon/init/verity"
)

// Mount is `mount -t …`.
type Mount struct {
	M   mount.Mount
	Sys mount.Sys
}

func (m Mount) String() string                        { return m.M.String() }
func (m Mount) Run(_ context.Context, _ *State) error { return m.M.Do(m.Sys) }

// Cmdline is `cat /proc/cmdline`: parses the verity table (image/bootparams).
type Cmdline struct {
	ReadFile func(string) ([]byte, error)
}

func (Cmdline) String() string { return "cat /proc/cmdline" }
func (c Cmdline) Run(_ context.Context, s *State) error {
	b, err := c.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	s.Cmdline, err = bootparams.Parse(strings.TrimSpace(string(b)))
	return err
}

// Modules is `insmod` of every module in modules.load, in order.
type Modules struct {
	Dir      string // kmod.Dir(release)
	ReadFile func(string) ([]byte, error)
	Loader   kmod.Loader
}

func (m Modules) String() string { return "insmod $(cat " + m.Dir + "/" + kmod.ModulesLoad + ")" }
func (m Modules) Run(_ context.Context, s *State) error {
	r, err := kmod.LoadAll(m.ReadFile, m.Loader, m.Dir)
	if err == nil {
		fmt.Fprintf(s.Log, "cocoon-init: %d modules loaded, %d already present, no device for %q\n", r.Loaded, r.Present, r.Absent)
	}
	return err
}

// RootDisk waits for the partitions the verity table names.
type RootDisk struct {
	SysBlock fs.FS // /sys/class/block
	Table    PartTable
	Timeout  time.Duration
}

func (r RootDisk) String() string {
	return fmt.Sprintf("wait for root PARTUUIDs in /sys/class/block (%s)", r.Timeout)
}
func (r RootDisk) Run(ctx context.Context, s *State) error {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	v := s.Cmdline.Verity
	return WaitBlock(ctx, r.SysBlock, 20*time.Millisecond, func(bs []Block) (bool, string) {
		ResolvePartUUIDs(r.SysBlock, bs, r.Table)
		devs, missing := ByPartUUID(bs, v.DataDevice, v.HashDevice)
		if devs == nil {
			return false, missing
		}
		s.DataDev, s.HashDev = devs[0], devs[1]
		return true, ""
	})
}

// Verity is `veritysetup open`: the dm-verity target named verity.Name.
type Verity struct {
	Open  func() (verity.Mapper, error) // dm.Open for real
	Nodes verity.Nodes
}

func (Verity) String() string {
	return "dmsetup create --readonly " + verity.Name + " --table \"verity $cocoon.verity\""
}
func (v Verity) Run(_ context.Context, s *State) error {
	m, err := v.Open()
	if err != nil {
		return fmt.Errorf("open /dev/mapper/control: %w", err)
	}
	s.Mapper = m
	s.RootDev, err = verity.Open(m, v.Nodes, s.Cmdline.Verity, s.DataDev, s.HashDev)
	return err
}

// MountRoot mounts the verity device read-only on NewRoot, then checks the
// target is still verified after squashfs read its superblock and that the
// live table carries the command line's root hash.
type MountRoot struct {
	Sys     mount.Sys
	NewRoot string
}

func (m MountRoot) String() string {
	return "mount -t squashfs -o ro /dev/mapper/" + verity.Name + " " + m.NewRoot + " && dmsetup status " + verity.Name + " && dmsetup table " + verity.Name
}
func (m MountRoot) Run(_ context.Context, s *State) error {
	if err := mount.Root(s.RootDev, m.NewRoot).Do(m.Sys); err != nil {
		// dm-verity answers a block that fails its hash with EIO; say so.
		if cerr := verity.Check(s.Mapper); errors.Is(cerr, verity.ErrCorrupted) {
			return fmt.Errorf("%w: %v (a root block does not hash to the command line's root hash %x)", cerr, err, s.Cmdline.Verity.RootHash)
		}
		return err
	}
	if err := verity.Check(s.Mapper); err != nil {
		return err
	}
	if err := verity.CheckTable(s.Mapper, s.Cmdline.Verity); err != nil {
		return err
	}
	fmt.Fprintf(s.Log, "cocoon-init: root %s verified against root hash %x\n", s.RootDev, s.Cmdline.Verity.RootHash)
	return nil
}

// ConfigSerial is the virtio-blk serial of the host's config disk.
const ConfigSerial = "cocoon-config"

// ErrNoConfigDisk is returned when no disk carries ConfigSerial.
var ErrNoConfigDisk = errors.New("no config disk (serial " + ConfigSerial + ")")

// Config reads the runtime config from the disk with serial cocoon-config.
type Config struct {
	SysBlock fs.FS
	Open     func(string) (io.ReadCloser, error) // must also be an io.ReaderAt; os.Open for real
	Timeout  time.Duration
	// StaticPath, when set, receives the static part's bytes as measured
	// (the worker hashes them into its RA-TLS claims); /run/cocoon/static.json
	// in the guest, carried into the new root with /run.
	StaticPath string
}

func (Config) String() string { return "read config from the disk with serial " + ConfigSerial }
func (c Config) Run(ctx context.Context, s *State) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	dev := ""
	err := WaitBlock(ctx, c.SysBlock, 20*time.Millisecond, func(bs []Block) (bool, string) {
		for _, b := range bs {
			if b.Serial == ConfigSerial {
				dev = "/dev/" + b.DevName
				return true, ""
			}
		}
		return false, "serial " + ConfigSerial
	})
	if errors.Is(err, ErrTimeout) {
		return ErrNoConfigDisk
	}
	if err != nil {
		return err
	}
	f, err := c.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return fmt.Errorf("%s: not random access", dev)
	}
	s.Config, s.StaticConfig, err = config.Decode(ra)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	fmt.Fprintf(s.Log, "cocoon-init: config from %s: model %q, policy %q, network %s\n", dev, s.Config.Static.Model, s.Config.Static.Policy, s.Config.Runtime.Network.Mode)
	if c.StaticPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.StaticPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.StaticPath, s.StaticConfig, 0o444); err != nil {
			return err
		}
	}
	return nil
}

// OpenFile adapts os.Open to Config.Open.
func OpenFile(p string) (io.ReadCloser, error) { return os.Open(p) }

// SwitchRoot is `switch_root`.
type SwitchRoot struct {
	Sys     mount.Sys
	NewRoot string
}

func (r SwitchRoot) String() string                        { return "switch_root " + r.NewRoot }
func (r SwitchRoot) Run(_ context.Context, _ *State) error { return mount.SwitchRoot(r.Sys, r.NewRoot) }

// workerArgs are the runtime config's worker args, with -registry URL
// added when the config names a registry and the args do not already
// (cmd/cocoon-worker: the flag creates or overrides the worker config's
// registry section).
func workerArgs(rt config.Runtime) []string {
	args := slices.Clip(rt.WorkerArgs) // appending must not write into the config
	if rt.RegistryURL == "" || slices.ContainsFunc(args, func(a string) bool {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		return strings.HasPrefix(a, "-") && name == "registry"
	}) {
		return args
	}
	return append(args, "-registry", rt.RegistryURL)
}

// Worker starts the supervisor in the background with the config's worker
// args and returns once the first start attempt is made; a first start that
// fails fails the boot.
type Worker struct {
	Sup *Supervisor
}

func (w Worker) String() string { return "start " + w.Sup.Path }
func (w Worker) Run(ctx context.Context, s *State) error {
	if s.Config != nil {
		w.Sup.Args = workerArgs(s.Config.Runtime)
	}
	first := make(chan error, 1)
	prev := w.Sup.Started
	w.Sup.Started = func(pid int, err error) {
		select {
		case first <- err:
		default:
		}
		if s.Host != nil {
			if err == nil {
				s.Host.Health(hostlink.Ready, fmt.Sprintf("worker running (pid %d)", pid))
			} else {
				s.Host.Health(hostlink.Booting, fmt.Sprintf("worker did not start: %v", err))
			}
		}
		if prev != nil {
			prev(pid, err)
		}
	}
	go w.Sup.Run(context.WithoutCancel(ctx))
	select {
	case err := <-first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
