package deb

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// multiBlockTar is a data.tar of ~200 KiB in several entries, compressed
// with small xz blocks so the parallel decoder has work to split.
func multiBlockTar(t testing.TB) (tarData, xzData []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	var entries []tarEntry
	for i := range 20 {
		body := make([]byte, 10000+i*97)
		for j := range body {
			body[j] = "abcdefgh"[rng.IntN(8)] // compressible, not trivially
		}
		entries = append(entries, tarEntry{name: fmt.Sprintf("./f%02d", i), typeflag: tar.TypeReg, body: string(body)})
	}
	tarData = tarball(t, entries...)
	return tarData, compress(t, ".xz", tarData, 16<<10)
}

func xzDeb(t testing.TB, xzData []byte) []byte {
	ctl := compress(t, ".gz", tarball(t, tarEntry{name: "./control", typeflag: tar.TypeReg}), 0)
	return arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"control.tar.gz", ctl}, arMember{"data.tar.xz", xzData})
}

// walkContent concatenates name and content of every entry.
func walkContent(deb []byte, lim limits) ([]byte, error) {
	var out bytes.Buffer
	err := walk(bytes.NewReader(deb), int64(len(deb)), lim, func(name string, hdr *tar.Header, r io.Reader) error {
		out.WriteString(name)
		_, err := io.Copy(&out, r)
		return err
	})
	return out.Bytes(), err
}

func TestXZIndex(t *testing.T) {
	_, xzData := multiBlockTar(t)
	blocks, err := xzIndex(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 4 {
		t.Fatalf("xzIndex found %d blocks, want several (block size 16 KiB)", len(blocks))
	}
	// Two streams with stream padding between and after them, as xz(1)
	// accepts when files are concatenated.
	two := append(append(bytes.Clone(xzData), 0, 0, 0, 0), xzData...)
	two = append(two, make([]byte, 8)...)
	blocks2, err := xzIndex(bytes.NewReader(two), int64(len(two)))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks2) != 2*len(blocks) || blocks2[len(blocks)].offset != int64(len(xzData))+4+blocks[0].offset {
		t.Errorf("two streams: %d blocks, second starts at %d; want %d blocks, second at %d",
			len(blocks2), blocks2[len(blocks)].offset, 2*len(blocks), int64(len(xzData))+4+blocks[0].offset)
	}
	for _, cut := range []int{0, 1, 11, 12, len(xzData) - 12, len(xzData) - 1} {
		if _, err := xzIndex(bytes.NewReader(xzData[:cut]), int64(cut)); err == nil {
			t.Errorf("xzIndex of the first %d bytes succeeded, want an error", cut)
		}
	}
}

// The tail built for one block must be an index and footer that the same
// parser accepts.
func TestXZTail(t *testing.T) {
	b := xzBlock{stream: []byte{0xFD, '7', 'z', 'X', 'Z', 0, 0, 4, 0, 0, 0, 0}, unpadded: 1 << 20, uncompressed: 3 << 20}
	tail := xzTail(b)
	foot := tail[len(tail)-xzHeaderLen:]
	if got, want := crc32.ChecksumIEEE(foot[4:10]), binary.LittleEndian.Uint32(foot); got != want {
		t.Errorf("footer CRC32 %08x, want %08x", got, want)
	}
	recs, err := parseXZIndex(tail[:len(tail)-xzHeaderLen])
	if err != nil || len(recs) != 1 || recs[0] != [2]int64{b.unpadded, b.uncompressed} {
		t.Errorf("parseXZIndex(xzTail) = %v, %v; want one record {%d %d}", recs, err, b.unpadded, b.uncompressed)
	}
}

func TestXZParallelMatchesSequential(t *testing.T) {
	_, xzData := multiBlockTar(t)
	deb := xzDeb(t, xzData)
	seq, err := walkContent(deb, limits{xzDict: 1 << 20, xzWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{2, 3, 16} {
		par, err := walkContent(deb, limits{xzDict: 1 << 20, xzWorkers: workers})
		if err != nil {
			t.Fatalf("%d workers: %v", workers, err)
		}
		if !bytes.Equal(par, seq) {
			t.Errorf("%d workers: content differs from sequential decoding", workers)
		}
	}
}

// Cutting a multi-block stream at a block boundary leaves valid blocks and
// no index; ulikunitz/xz alone would report a clean end there.
func TestXZCutAtBlockBoundary(t *testing.T) {
	_, xzData := multiBlockTar(t)
	blocks, err := xzIndex(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks[1:] {
		deb := xzDeb(t, xzData[:b.offset])
		if _, err := walkContent(deb, defaultLimits); !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at block boundary %d: error = %v, want ErrTruncated", b.offset, err)
		}
	}
}

func TestXZCorruptBlock(t *testing.T) {
	_, xzData := multiBlockTar(t)
	blocks, err := xzIndex(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(xzData)
	bad[blocks[2].offset+200] ^= 0x55
	for _, workers := range []int{1, 3} {
		_, err := walkContent(xzDeb(t, bad), limits{xzDict: 1 << 20, xzWorkers: workers})
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%d workers, flipped byte in block 2: error = %v, want ErrCorrupt", workers, err)
		}
	}
}

// A block header may ask for a 4 GiB dictionary, which ulikunitz/xz would
// allocate before reading any data. The limit must hold whether or not the
// stream's index can be read.
func TestXZDictLimit(t *testing.T) {
	_, xzData := multiBlockTar(t)
	blocks, err := xzIndex(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Clone(xzData)
	setDict(t, big, blocks[len(blocks)-1].offset, 40) // 4 GiB - 1
	// In a second stream, found by the forward scan past the first one's
	// index and footer and the stream padding.
	twoStreams := append(append(bytes.Clone(xzData), 0, 0, 0, 0), big[:len(big)-20]...)
	cases := map[string][]byte{"intact": big, "cut": big[:len(big)-20], "second stream, cut": twoStreams}
	for name, data := range cases {
		_, err := walkContent(xzDeb(t, data), limits{xzDict: 64 << 20, xzWorkers: 2})
		if !errors.Is(err, ErrCompression) {
			t.Errorf("%s stream, 4 GiB dictionary in the last block: error = %v, want ErrCompression", name, err)
		}
	}
}

// setDict rewrites the LZMA2 dictionary property of the block header at off
// and fixes up the header CRC32.
func setDict(t *testing.T, xzData []byte, off int64, prop byte) {
	h := xzData[off : off+(int64(xzData[off])+1)*4]
	p := 2
	for _, bit := range []byte{0x40, 0x80} {
		if h[1]&bit != 0 {
			if _, err := uvarint(h, &p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h[p] != lzma2ID || h[p+1] != 1 {
		t.Fatalf("block at %d: filter %x, want LZMA2 with one property byte", off, h[p:p+2])
	}
	h[p+2] = prop
	binary.LittleEndian.PutUint32(h[len(h)-4:], crc32.ChecksumIEEE(h[:len(h)-4]))
}

// Stopping a walk early must not leave decoder goroutines behind.
func TestXZStopReleasesWorkers(t *testing.T) {
	_, xzData := multiBlockTar(t)
	deb := xzDeb(t, xzData)
	before := runtime.NumGoroutine()
	for range 5 {
		err := walk(bytes.NewReader(deb), int64(len(deb)), limits{xzDict: 1 << 20, xzWorkers: 4}, func(string, *tar.Header, io.Reader) error {
			return ErrStop
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after stopped walks, %d before", n, before)
	}
}

func TestNewXZReader(t *testing.T) {
	tarData, multi := multiBlockTar(t)
	single := compress(t, ".xz", tarData, 0)
	for name, xzData := range map[string][]byte{"single block": single, "multi block": multi} {
		r, err := NewXZReader(bytes.NewReader(xzData), int64(len(xzData)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r) // io.EOF at the end, as io.Reader promises
		r.Close()
		if err != nil || !bytes.Equal(got, tarData) {
			t.Errorf("%s: read %d bytes, %v; want the %d input bytes", name, len(got), err, len(tarData))
		}
		r, err = NewXZReader(bytes.NewReader(xzData), int64(len(xzData)-13))
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s without its last 13 bytes: error = %v, want ErrTruncated", name, err)
		}
	}
}

// xz of empty input is a stream with no blocks: valid, and empty.
func TestNewXZReaderEmpty(t *testing.T) {
	empty := compress(t, ".xz", nil, 0)
	if _, err := xzIndex(bytes.NewReader(empty), int64(len(empty))); err != nil {
		t.Fatalf("xzIndex of an empty stream: %v", err)
	}
	r, err := NewXZReader(bytes.NewReader(empty), int64(len(empty)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
		t.Errorf("reading %d-byte empty stream: %q, %v; want nothing and no error", len(empty), b, err)
	}
}

// Multi-threaded xz(1) is how Debian compresses big packages: several
// blocks, each header stating its sizes. Skipped without the xz tool.
func TestXZToolMultiThreaded(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	tarData, _ := multiBlockTar(t)
	cmd := exec.Command("xz", "-T2", "--block-size=16KiB", "-c")
	cmd.Stdin = bytes.NewReader(tarData)
	xzData, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := xzIndex(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil || len(blocks) < 4 {
		t.Fatalf("xzIndex: %d blocks, %v; want several", len(blocks), err)
	}
	got, err := walkContent(xzDeb(t, xzData), limits{xzDict: 64 << 20, xzWorkers: 3})
	if err != nil {
		t.Fatal(err)
	}
	want, err := walkContent(debFile(t, "", tarData), defaultLimits)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("xz -T2 data decodes differently from the plain tar (%v)", err)
	}
	// The forward scan skips blocks by their stated sizes to reach the last.
	big := bytes.Clone(xzData)
	setDict(t, big, blocks[len(blocks)-1].offset, 40)
	if _, err := walkContent(xzDeb(t, big[:len(big)-20]), defaultLimits); !errors.Is(err, ErrCompression) {
		t.Errorf("cut xz -T2 stream, 4 GiB dictionary in the last block: error = %v, want ErrCompression", err)
	}
}
