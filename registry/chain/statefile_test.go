package chain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// buildPersisted makes a small real ledger at path: a deployed wallet,
// a batch of three, and returns the batch's message hash.
func buildPersisted(t testing.TB, path string, clk *testClock) (*Emulated, *Highload, []byte) {
	t.Helper()
	e := newTestEmulated(t, path, clk)
	h := deployedWallet(t, e, clk)
	clk.Add(time.Minute)
	tr, _ := transfersTo(freshAddrs(3, "persist"))
	boc, hash, err := h.Batch(2, clk.Now(), tr, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SendExternal(context.Background(), boc); err != nil {
		t.Fatal(err)
	}
	return e, h, hash
}

func TestPersistenceRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger")
	clk := newClock(t0)
	e, h, hash := buildPersisted(t, path, clk)

	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, snapshot(t, e)) {
		t.Fatal("state file differs from the ledger after SendExternal")
	}
	re := newTestEmulated(t, path, clk)
	if !bytes.Equal(snapshot(t, re), onDisk) {
		t.Fatal("reopened ledger encodes differently from its file")
	}
	for k := range e.st.accounts {
		if a, b := balanceOf(t, e, k.address()), balanceOf(t, re, k.address()); a != b {
			t.Fatalf("%s: balance %d, reopened %d", k.address().StringRaw(), a, b)
		}
	}
	want, err := e.Lookup(ctx, h.Address(), hash, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := re.Lookup(ctx, h.Address(), hash, t0)
	if err != nil || !bytes.Equal(got.TxHash, want.TxHash) || got.Fees != want.Fees || len(got.Sent) != len(want.Sent) {
		t.Fatalf("reopened Lookup = %+v, %v; want %+v", got, err, want)
	}

	// The reopened ledger goes on where the first stopped, and so does
	// the first one: the same message gives the same transaction.
	clk.Add(time.Second)
	boc, h2, _ := h.Batch(3, clk.Now(), []Transfer{{To: freshAddrs(1, "next")[0], Amount: 5}}, false)
	memory := e
	memory.path = "" // the original goes on in memory only, the reopened one owns the file
	for _, c := range []*Emulated{re, memory} {
		if err := c.SendExternal(ctx, boc); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := re.Lookup(ctx, h.Address(), h2, t0)
	b, _ := memory.Lookup(ctx, h.Address(), h2, t0)
	if a == nil || b == nil || !bytes.Equal(a.TxHash, b.TxHash) {
		t.Fatalf("replayed history diverged: %v vs %v", a, b)
	}
	// Rejections and failures leave the file alone; Fund rewrites it.
	before, _ := os.ReadFile(path)
	if err := re.SendExternal(ctx, boc); !errors.Is(err, ErrRejected) {
		t.Fatalf("replay: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("rejected message changed the state file")
	}
	if err := re.Fund(ctx, h.Address(), 7); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, snapshot(t, re)) {
		t.Fatal("state file is not the ledger after Fund")
	}
}

func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	buildPersisted(t, good, newClock(t0))
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	body := data[:len(data)-sha256.Size]
	// resum re-seals a modified body, so the body parser is what must
	// notice the damage.
	resum := func(b []byte) []byte {
		s := sha256.Sum256(b)
		return append(append([]byte(nil), b...), s[:]...)
	}
	with := func(i int, v byte) []byte {
		b := append([]byte(nil), data...)
		b[i] ^= v
		return b
	}
	bodyWith := func(off int, v []byte) []byte {
		b := append([]byte(nil), body...)
		copy(b[off:], v)
		return resum(b)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", data[:stateHeader]},
		{"truncated by one byte", data[:len(data)-1]},
		{"truncated in half", data[:len(data)/2]},
		{"extra byte", append(append([]byte(nil), data...), 0)},
		{"flipped bit in header", with(9, 1)},
		{"flipped bit in an account", with(len(data)/3, 0x10)},
		{"flipped bit in checksum", with(len(data)-1, 1)},
		{"other magic, resealed", bodyWith(0, []byte("XXXXXXXX"))},
		{"version 2, resealed", bodyWith(8, []byte{0, 2})},
		{"huge account count, resealed", bodyWith(stateHeader, []byte{0xff, 0xff, 0xff, 0xff})},
		{"LT counter zero, resealed", bodyWith(10, make([]byte, 8))},
		{"body cut, resealed", resum(body[:len(body)-7])},
		{"trailing byte, resealed", resum(append(append([]byte(nil), body...), 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad-"+strconv.Quote(tc.name))
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewEmulated(EmulatedOptions{Path: p, Now: newClock(t0).Now})
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("NewEmulated = %v, want ErrCorruptState", err)
			}
		})
	}
}

func TestLeftoverTempFileIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	clk := newClock(t0)
	e, h, _ := buildPersisted(t, path, clk)
	want := snapshot(t, e)
	// A crash after writing the temporary file, before the rename.
	if err := os.WriteFile(path+".tmp", want[:len(want)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	re := newTestEmulated(t, path, clk)
	if !bytes.Equal(snapshot(t, re), want) {
		t.Fatal("leftover temporary file changed the loaded state")
	}
	if err := re.Fund(context.Background(), h.Address(), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file still there after a commit: %v", err)
	}
}

func TestPersistFailureKeepsState(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger")
	clk := newClock(t0)
	e, h, _ := buildPersisted(t, path, clk)
	before := snapshot(t, e)
	// A directory where the temporary file should go makes the write fail.
	if err := os.Mkdir(path+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.Fund(context.Background(), h.Address(), 1); err == nil {
		t.Fatal("Fund succeeded without persisting")
	}
	if !bytes.Equal(snapshot(t, e), before) {
		t.Fatal("failed persist changed the in-memory ledger")
	}
}

// FuzzDecodeBody feeds the state parser (behind the checksum) arbitrary
// bodies: it must not panic, and whatever it accepts must encode back to
// the same bytes (read-write-read).
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := decodeBody(body)
		if err != nil {
			return
		}
		again := encodeState(l)
		if !bytes.Equal(again[:len(again)-sha256.Size], body) {
			t.Fatalf("accepted body does not round-trip:\n in %x\nout %x", body, again)
		}
		if _, err := decodeState(again); err != nil {
			t.Fatalf("re-encoded state does not load: %v", err)
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecodeBody from real
// ledgers when CHAIN_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CHAIN_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set CHAIN_WRITE_FUZZ_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeBody")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e, _, _ := buildPersisted(t, "", newClock(t0))
	full := snapshot(t, e)
	empty := encodeState(newLedger())
	seeds := map[string][]byte{
		"empty-ledger":     empty[:len(empty)-sha256.Size],
		"wallet-and-batch": full[:len(full)-sha256.Size],
		"cut-in-accounts":  full[:stateHeader+100],
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFuzzSeedsDecode keeps the seed corpus meaningful: the full seeds
// are valid state bodies, so the fuzzer starts from deep inside the parser.
func TestFuzzSeedsDecode(t *testing.T) {
	for _, name := range []string{"empty-ledger", "wallet-and-batch"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecodeBody", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitN(raw, []byte("\n"), 3)
		if len(lines) < 2 || !bytes.HasPrefix(lines[1], []byte("[]byte(")) {
			t.Fatalf("%s: not a go fuzz v1 corpus file", name)
		}
		s, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimPrefix(lines[1], []byte("[]byte(")), []byte(")"))))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := decodeBody([]byte(s)); err != nil {
			t.Fatalf("%s: %v (regenerate with CHAIN_WRITE_FUZZ_SEEDS=1)", name, err)
		}
	}
}
