package boot

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/cocoon-appliance/cocoon/image/gpt"
	"time"
)

// Block is one entry of /sys/class/block, as the kernel describes it in
// uevent (there is no udev in the guest to make /dev/disk/by-*).
type Block struct {
	Name    string // vda1
	DevName string // DEVNAME=, the node under /dev
	DevType string // DEVTYPE=: disk or partition
	PartN   int    // PARTN=: the partition's number on its disk
	Parent  string // the disk of a partition (ResolvePartUUIDs)
	// PartUUID is the GPT partition UUID, lowercase. The kernel does not put
	// it in uevent (udev's blkid does); ResolvePartUUIDs reads it from the
	// disk's GPT.
	PartUUID string
	Serial   string // serial attribute of virtio-blk disks
}

// ScanBlock reads every entry of a /sys/class/block tree.
func ScanBlock(sys fs.FS) ([]Block, error) {
	ents, err := fs.ReadDir(sys, ".")
	if err != nil {
		return nil, err
	}
	var out []Block
	for _, e := range ents {
		ue, err := fs.ReadFile(sys, e.Name()+"/uevent")
		if err != nil {
			continue // vanished or not a device: the next poll sees it again
		}
		b := Block{Name: e.Name()}
		sc := bufio.NewScanner(bytes.NewReader(ue))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			switch k {
			case "DEVNAME":
				b.DevName = v
			case "PARTUUID":
				b.PartUUID = strings.ToLower(v)
			case "DEVTYPE":
				b.DevType = v
			case "PARTN":
				b.PartN, _ = strconv.Atoi(v)
			}
		}
		if s, err := fs.ReadFile(sys, e.Name()+"/serial"); err == nil {
			b.Serial = strings.TrimSpace(string(s))
		}
		if b.DevName == "" || strings.Contains(b.DevName, "..") {
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

// ErrTimeout is returned when the wanted devices did not appear in time.
var ErrTimeout = errors.New("timed out waiting for block devices")

// WaitBlock polls sys every interval until match picks its devices from a
// scan (ok true) or ctx ends.
func WaitBlock(ctx context.Context, sys fs.FS, interval time.Duration, match func([]Block) (ok bool, missing string)) error {
	for {
		bs, err := ScanBlock(sys)
		if err != nil {
			return err
		}
		ok, missing := match(bs)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s not found", ErrTimeout, missing)
		case <-time.After(interval):
		}
	}
}

// ByPartUUID finds the device nodes of partitions, given as the command
// line writes them (PARTUUID=<uuid>).
func ByPartUUID(bs []Block, refs ...string) (devs []string, missing string) {
	for _, ref := range refs {
		want := strings.ToLower(strings.TrimPrefix(ref, "PARTUUID="))
		found := ""
		for _, b := range bs {
			if b.PartUUID == want {
				found = "/dev/" + b.DevName
				break
			}
		}
		if found == "" {
			return nil, ref
		}
		devs = append(devs, found)
	}
	return devs, ""
}

// PartTable returns the partition UUIDs of a disk's GPT by partition number.
type PartTable func(dev string) (map[int]string, error)

// ReadGPT is the real PartTable: it reads the GPT of a /dev node.
func ReadGPT(dev string) (map[int]string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, err := gpt.Read(f)
	if err != nil {
		return nil, err
	}
	m := make(map[int]string, len(d.Partitions))
	for _, e := range d.Partitions {
		m[e.Number] = e.UUID.String()
	}
	return m, nil
}

// ResolvePartUUIDs fills PartUUID and Parent of the partitions of every disk
// whose GPT reads (a disk without a GPT, like the config disk, is skipped).
// A partition belongs to a disk when sysfs lists it under the disk.
func ResolvePartUUIDs(sys fs.FS, bs []Block, table PartTable) {
	for _, d := range bs {
		if d.DevType != "disk" {
			continue
		}
		uuids, err := table("/dev/" + d.DevName)
		if err != nil {
			continue
		}
		for i := range bs {
			p := &bs[i]
			if p.DevType != "partition" || p.PartN == 0 {
				continue
			}
			if _, err := fs.Stat(sys, d.Name+"/"+p.Name); err != nil {
				continue
			}
			if u, ok := uuids[p.PartN]; ok {
				p.PartUUID, p.Parent = strings.ToLower(u), d.Name
			}
		}
	}
}
