package llama2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine/llama2/internal/testmodel"
)

// tinyConfig is a small shape for table tests and fuzz seeds.
var tinyConfig = testmodel.Config{Dim: 8, HiddenDim: 12, Layers: 2, Heads: 2, KVHeads: 1, VocabSize: 5, SeqLen: 4}

func header(vals ...int32) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	return b
}

func TestParseCheckpointLayout(t *testing.T) {
	for _, unshared := range []bool{false, true} {
		c := tinyConfig
		c.Unshared = unshared
		data := genCheckpoint(t, c, 3)
		ck, err := ParseCheckpoint(data)
		if err != nil {
			t.Fatal(err)
		}
		want := Config{Dim: 8, HiddenDim: 12, Layers: 2, Heads: 2, KVHeads: 1, VocabSize: 5, SeqLen: 4, SharedClassifier: !unshared}
		if ck.Config != want {
			t.Fatalf("Config = %+v, want %+v", ck.Config, want)
		}
		// Spot-check offsets against the file: the first float of each
		// section, counted by hand from run.c's order.
		at := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(data[28+4*i:])) }
		kv := 4 // KVHeads * head size
		off := map[string]int{}
		o := 0
		for _, s := range []struct {
			name string
			n    int
		}{{"embed", 5 * 8}, {"rmsAtt", 2 * 8}, {"wq", 2 * 64}, {"wk", 2 * kv * 8}, {"wv", 2 * kv * 8}, {"wo", 2 * 64}, {"rmsFFN", 2 * 8}, {"w1", 2 * 96}, {"w2", 2 * 96}, {"w3", 2 * 96}, {"rmsFinal", 8}, {"rope", 2 * 4 * 2}, {"wcls", 0}} {
			off[s.name] = o
			o += s.n
		}
		l1 := ck.layers[1]
		for _, chk := range []struct {
			name string
			got  float32
			want float32
		}{
			{"embed", ck.embed[0], at(off["embed"])},
			{"layer 1 rms_att", l1.rmsAtt[0], at(off["rmsAtt"] + 8)},
			{"layer 1 wq", l1.wq[0], at(off["wq"] + 64)},
			{"layer 1 wk", l1.wk[0], at(off["wk"] + kv*8)},
			{"layer 1 wv last", l1.wv[kv*8-1], at(off["wv"] + 2*kv*8 - 1)},
			{"layer 1 wo", l1.wo[0], at(off["wo"] + 64)},
			{"layer 1 rms_ffn", l1.rmsFFN[0], at(off["rmsFFN"] + 8)},
			{"layer 1 w1", l1.w1[0], at(off["w1"] + 96)},
			{"layer 1 w2", l1.w2[0], at(off["w2"] + 96)},
			{"layer 1 w3 last", l1.w3[95], at(off["w3"] + 191)},
			{"rms_final", ck.rmsFinal[7], at(off["rmsFinal"] + 7)},
		} {
			if chk.got != chk.want {
				t.Errorf("unshared=%v %s = %v, want %v", unshared, chk.name, chk.got, chk.want)
			}
		}
		if !unshared && &ck.wcls[0] != &ck.embed[0] {
			t.Error("shared classifier is not the embedding table")
		}
		if unshared && ck.wcls[0] != at(off["wcls"]) {
			t.Errorf("wcls[0] = %v, want %v", ck.wcls[0], at(off["wcls"]))
		}
	}
}

func TestParseCheckpointErrors(t *testing.T) {
	good := genCheckpoint(t, tinyConfig, 1)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	setHdr := func(i int, v int32) []byte {
		return mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4*i:], uint32(v)); return b })
	}
	nan := mut(func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[28+4*50:], 0x7FC00000) // in rms_att_weight
		return b
	})
	ropeNaN := mut(func(b []byte) []byte { // the skipped RoPE table may hold anything
		binary.LittleEndian.PutUint32(b[len(b)-4:], 0x7FC00000)
		return b
	})
	if _, err := ParseCheckpoint(ropeNaN); err != nil {
		t.Fatalf("NaN in the unused RoPE table: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than the 28-byte header"},
		{"short header", good[:27], "shorter than the 28-byte header"},
		{"zero dim", setHdr(0, 0), "dim = 0"},
		{"negative hidden", setHdr(1, -3), "hidden_dim = -3"},
		{"zero layers", setHdr(2, 0), "n_layers = 0"},
		{"zero heads", setHdr(3, 0), "n_heads = 0"},
		{"zero kv heads", setHdr(4, 0), "n_kv_heads = 0"},
		{"zero vocab", setHdr(5, 0), "vocab_size = 0"},
		{"zero seq_len", setHdr(6, 0), "seq_len = 0"},
		{"dim not divisible", setHdr(3, 3), "not a multiple of n_heads 3"},
		{"odd head size", setHdr(3, 8), "head size 1"},
		{"kv heads do not divide", setHdr(4, 3), "n_kv_heads 3 does not divide n_heads 2"},
		{"more kv heads than heads", setHdr(4, 4), "n_kv_heads 4 does not divide n_heads 2"},
		{"one byte short", good[:len(good)-1], "the header"},
		{"one float short", good[:len(good)-4], "the header"},
		{"trailing byte", append(bytes.Clone(good), 0), "the header"},
		{"unshared flag without wcls", setHdr(5, -5), "the header"},
		{"NaN weight", nan, "rms_att_weight[10] = NaN"},
		// Products that wrap around 64 bits must not match a small file.
		{"overflow", header(1<<30, 1<<30, 1<<30, 2, 1, 1<<30, 1<<30), "overflows"},
		{"huge vocab", header(8, 12, 2, 2, 1, math.MinInt32, 4), "the header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCheckpoint(tc.data)
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrCheckpoint saying %q", err, tc.want)
			}
		})
	}
}

// TestParseCheckpointCopyPath checks that unaligned data (copied) and
// aligned data (aliased) give the same weights.
func TestParseCheckpointCopyPath(t *testing.T) {
	data := genCheckpoint(t, tinyConfig, 2)
	buf := make([]byte, len(data)+1)
	copy(buf[1:], data)
	a, err := ParseCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseCheckpoint(buf[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.all, b.all) || len(a.all) == 0 {
		t.Fatal("aligned and unaligned parses differ")
	}
}

func TestOpenCheckpoint(t *testing.T) {
	model, _ := readTestdata(t)
	ck, err := OpenCheckpoint(testModelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if want := (Config{Dim: 64, HiddenDim: 172, Layers: 2, Heads: 4, KVHeads: 2, VocabSize: 512, SeqLen: 128}); ck.Config != want {
		t.Fatalf("Config = %+v, want %+v", ck.Config, want)
	}
	out, err := ck.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, model) {
		t.Fatal("mapped checkpoint does not marshal back to the file")
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{{"empty", nil}, {"truncated", model[:len(model)-8]}} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenCheckpoint(p); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%s: err = %v, want ErrCheckpoint", tc.name, err)
		}
	}
	if _, err := OpenCheckpoint(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add(genCheckpoint(f, tinyConfig, 1))
	un := tinyConfig
	un.Unshared = true
	f.Add(genCheckpoint(f, un, 2))
	f.Add(genCheckpoint(f, testmodel.Config{Dim: 4, HiddenDim: 1, Layers: 1, Heads: 2, KVHeads: 2, VocabSize: 1, SeqLen: 1}, 3))
	f.Add(header(8, 12, 2, 2, 1, 5, 4))
	f.Fuzz(func(t *testing.T, data []byte) {
		ck, err := ParseCheckpoint(data)
		if err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("error %v is not ErrCheckpoint", err)
			}
			return
		}
		size, err := ck.Config.FileSize()
		if err != nil || size != uint64(len(data)) {
			t.Fatalf("FileSize = %d, %v for a %d-byte file", size, err, len(data))
		}
		// Read-write-read: the file comes back byte for byte.
		out, err := ck.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, data) {
			t.Fatal("MarshalBinary differs from the parsed bytes")
		}
		ck2, err := ParseCheckpoint(out)
		if err != nil || ck2.Config != ck.Config {
			t.Fatalf("reparse: %+v, %v", ck2, err)
		}
	})
}
