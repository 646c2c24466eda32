package boot

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"testing"
	"testing/fstest"
	"time"
)

const (
	dataUUID = "PARTUUID=5e19a396-1092-eade-0867-35de14a4dcdf"
	hashUUID = "PARTUUID=898ce066-c637-84d2-863a-89a6e301ddbf"
)

func fakeSys() fstest.MapFS {
	return fstest.MapFS{
		"vda/uevent":  {Data: []byte("MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=1\n")},
		"vda/serial":  {Data: []byte("cocoon-root\n")},
		"vda1/uevent": {Data: []byte("MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=root-x86-64\n")},
		"vda2/uevent": {Data: []byte("MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\n")},
		"vda/vda1":    {Mode: fs.ModeDir},
		"vda/vda2":    {Mode: fs.ModeDir},
		"vdc/uevent":  {Data: []byte("DEVNAME=vdc\nDEVTYPE=disk\n")},
		"vdc1/uevent": {Data: []byte("DEVNAME=vdc1\nDEVTYPE=partition\nPARTN=1\nPARTUUID=11111111-1111-4111-8111-111111111111\n")},
		"vdb/uevent":  {Data: []byte("MAJOR=254\nMINOR=16\nDEVNAME=vdb\nDEVTYPE=disk\n")},
		"vdb/serial":  {Data: []byte("cocoon-config")},
		"loop0/size":  {Data: []byte("0\n")}, // no uevent: skipped
	}
}

// fakeTable: vda has the image's GPT (uppercase to check folding), vdb none.
func fakeTable(dev string) (map[int]string, error) {
	if dev != "/dev/vda" {
		return nil, errors.New("no GPT")
	}
	return map[int]string{1: "5E19A396-1092-EADE-0867-35DE14A4DCDF", 2: "898ce066-c637-84d2-863a-89a6e301ddbf"}, nil
}

func TestScanBlock(t *testing.T) {
	bs, err := ScanBlock(fakeSys())
	if err != nil {
		t.Fatal(err)
	}
	ResolvePartUUIDs(fakeSys(), bs, fakeTable)
	want := []Block{
		{Name: "vda", DevName: "vda", DevType: "disk", Serial: "cocoon-root"},
		{Name: "vda1", DevName: "vda1", DevType: "partition", PartN: 1, Parent: "vda", PartUUID: "5e19a396-1092-eade-0867-35de14a4dcdf"},
		{Name: "vda2", DevName: "vda2", DevType: "partition", PartN: 2, Parent: "vda", PartUUID: "898ce066-c637-84d2-863a-89a6e301ddbf"},
		{Name: "vdb", DevName: "vdb", DevType: "disk", Serial: "cocoon-config"},
		{Name: "vdc", DevName: "vdc", DevType: "disk"},
		{Name: "vdc1", DevName: "vdc1", DevType: "partition", PartN: 1, PartUUID: "11111111-1111-4111-8111-111111111111"},
	}
	if !reflect.DeepEqual(bs, want) {
		t.Errorf("got %+v\nwant %+v", bs, want)
	}
}

func TestWaitPartUUIDs(t *testing.T) {
	var devs []string
	err := WaitBlock(context.Background(), fakeSys(), time.Millisecond, func(bs []Block) (bool, string) {
		ResolvePartUUIDs(fakeSys(), bs, fakeTable)
		var missing string
		devs, missing = ByPartUUID(bs, dataUUID, hashUUID)
		return devs != nil, missing
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(devs, []string{"/dev/vda1", "/dev/vda2"}) {
		t.Errorf("devs %q", devs)
	}
}

func TestWaitTimesOut(t *testing.T) {
	sys := fakeSys()
	delete(sys, "vda/vda2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := WaitBlock(ctx, sys, 5*time.Millisecond, func(bs []Block) (bool, string) {
		ResolvePartUUIDs(sys, bs, fakeTable)
		devs, missing := ByPartUUID(bs, dataUUID, hashUUID)
		return devs != nil, missing
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if want := "timed out waiting for block devices: " + hashUUID + " not found"; err.Error() != want {
		t.Errorf("err %q, want %q", err, want)
	}
}
