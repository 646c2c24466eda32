package llama2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// ErrCheckpoint reports a checkpoint that is not a valid llama2.c model.
var ErrCheckpoint = errors.New("llama2: bad checkpoint")

// headerSize is run.c's Config: 7 int32.
const headerSize = 7 * 4

// Config is a checkpoint's header (run.c's Config).
type Config struct {
	Dim       int // transformer width
	HiddenDim int // FFN width
	Layers    int
	Heads     int // query heads
	KVHeads   int // key/value heads; fewer than Heads for grouped-query attention
	VocabSize int
	SeqLen    int // the longest sequence the model was trained on
	// SharedClassifier is set when the header's vocab_size is positive: the
	// classifier is the token embedding table, as in llama2.c's small models.
	SharedClassifier bool
}

// HeadSize is the width of one attention head.
func (c Config) HeadSize() int { return c.Dim / c.Heads }

// KVDim is the width of the keys and values of one position.
func (c Config) KVDim() int { return c.KVHeads * c.HeadSize() }

// layerWeights are one transformer block's weights, each matrix row-major
// (out, in) as run.c's matmul reads them.
type layerWeights struct {
	rmsAtt []float32 // (dim)
	wq     []float32 // (dim, dim)
	wk     []float32 // (kv_dim, dim)
	wv     []float32 // (kv_dim, dim)
	wo     []float32 // (dim, dim)
	rmsFFN []float32 // (dim)
	w1     []float32 // (hidden, dim)
	w2     []float32 // (dim, hidden)
	w3     []float32 // (hidden, dim)
}

// Checkpoint is a parsed llama2.c checkpoint. Its weights may alias the
// bytes it was parsed from (or the file's mapping), which must stay
// unchanged while it is in use.
type Checkpoint struct {
	Config Config

	all      []float32 // every float after the header, in file order
	embed    []float32 // (vocab, dim)
	layers   []layerWeights
	rmsFinal []float32 // (dim)
	wcls     []float32 // (vocab, dim)

	release func() error // unmaps the file; nil for parsed bytes
}

// checkedMul and checkedAdd keep the size arithmetic honest: a header
// whose products wrap around could otherwise match a small file.
func checkedMul(xs ...uint64) (uint64, bool) {
	p := uint64(1)
	for _, x := range xs {
		hi, lo := bits.Mul64(p, x)
		if hi != 0 {
			return 0, false
		}
		p = lo
	}
	return p, true
}

func checkedAdd(xs ...uint64) (uint64, bool) {
	var s uint64
	for _, x := range xs {
		var c uint64
		s, c = bits.Add64(s, x, 0)
		if c != 0 {
			return 0, false
		}
	}
	return s, true
}

// section is one named run of floats in the file.
type section struct {
	name string
	n    uint64
}

// sections lists the file's float32 runs in run.c's order
// (memory_map_weights), with their sizes in floats.
func (c Config) sections() ([]section, error) {
	d, h, l := uint64(c.Dim), uint64(c.HiddenDim), uint64(c.Layers)
	v, kv := uint64(c.VocabSize), uint64(c.KVDim())
	rope := uint64(c.SeqLen) * uint64(c.HeadSize()/2)
	type spec struct {
		name    string
		factors []uint64
	}
	specs := []spec{
		{"token_embedding_table", []uint64{v, d}},
		{"rms_att_weight", []uint64{l, d}},
		{"wq", []uint64{l, d, d}},
		{"wk", []uint64{l, kv, d}},
		{"wv", []uint64{l, kv, d}},
		{"wo", []uint64{l, d, d}},
		{"rms_ffn_weight", []uint64{l, d}},
		{"w1", []uint64{l, h, d}},
		{"w2", []uint64{l, d, h}},
		{"w3", []uint64{l, h, d}},
		{"rms_final_weight", []uint64{d}},
		{"freq_cis_real", []uint64{rope}},
		{"freq_cis_imag", []uint64{rope}},
	}
	if !c.SharedClassifier {
		specs = append(specs, spec{"wcls", []uint64{v, d}})
	}
	out := make([]section, len(specs))
	for i, s := range specs {
		n, ok := checkedMul(s.factors...)
		if !ok {
			return nil, fmt.Errorf("%w: the size of %s overflows (%+v)", ErrCheckpoint, s.name, c)
		}
		out[i] = section{s.name, n}
	}
	return out, nil
}

// ParseConfig reads and checks a checkpoint header.
func ParseConfig(header []byte) (Config, error) {
	if len(header) < headerSize {
		return Config{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCheckpoint, len(header), headerSize)
	}
	var f [7]int
	for i := range f {
		f[i] = int(int32(binary.LittleEndian.Uint32(header[4*i:])))
	}
	c := Config{Dim: f[0], HiddenDim: f[1], Layers: f[2], Heads: f[3], KVHeads: f[4], VocabSize: f[5], SeqLen: f[6], SharedClassifier: f[5] > 0}
	// run.c: "negative vocab size is hacky way of signaling unshared weights".
	if c.VocabSize < 0 {
		c.VocabSize = -c.VocabSize
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"hidden_dim", c.HiddenDim}, {"n_layers", c.Layers}, {"n_heads", c.Heads}, {"n_kv_heads", c.KVHeads}, {"vocab_size", c.VocabSize}, {"seq_len", c.SeqLen}} {
		if p.v <= 0 {
			return Config{}, fmt.Errorf("%w: %s = %d, want > 0", ErrCheckpoint, p.name, p.v)
		}
	}
	if c.Dim%c.Heads != 0 {
		return Config{}, fmt.Errorf("%w: dim %d is not a multiple of n_heads %d", ErrCheckpoint, c.Dim, c.Heads)
	}
	if c.HeadSize()%2 != 0 {
		// RoPE rotates pairs of a head's dimensions.
		return Config{}, fmt.Errorf("%w: head size %d (dim %d / n_heads %d) is odd; RoPE needs pairs", ErrCheckpoint, c.HeadSize(), c.Dim, c.Heads)
	}
	if c.Heads%c.KVHeads != 0 {
		return Config{}, fmt.Errorf("%w: n_kv_heads %d does not divide n_heads %d", ErrCheckpoint, c.KVHeads, c.Heads)
	}
	return c, nil
}

// FileSize is the exact length of a checkpoint with this header, or an
// error when it does not fit in 64 bits.
func (c Config) FileSize() (uint64, error) {
	secs, err := c.sections()
	if err != nil {
		return 0, err
	}
	floats := uint64(0)
	for _, s := range secs {
		var ok bool
		if floats, ok = checkedAdd(floats, s.n); !ok {
			return 0, fmt.Errorf("%w: the checkpoint size overflows (%+v)", ErrCheckpoint, c)
		}
	}
	bytes, ok := checkedMul(floats, 4)
	if ok {
		bytes, ok = checkedAdd(bytes, headerSize)
	}
	if !ok {
		return 0, fmt.Errorf("%w: the checkpoint size overflows (%+v)", ErrCheckpoint, c)
	}
	return bytes, nil
}

// littleEndian is whether float32s in memory have the file's byte order, so
// that the weights can be used in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// ParseCheckpoint parses a checkpoint held in memory. The file must be
// exactly as long as its header says (run.c does not check; a truncated or
// padded file here is an error). Weights must be finite; the RoPE tables
// run.c skips are kept but not checked. On a little-endian machine with
// data 4-byte aligned the weights alias data; otherwise they are copied.
func ParseCheckpoint(data []byte) (*Checkpoint, error) {
	c, err := ParseConfig(data)
	if err != nil {
		return nil, err
	}
	want, err := c.FileSize()
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) != want {
		return nil, fmt.Errorf("%w: file is %d bytes, the header (%+v) says %d", ErrCheckpoint, len(data), c, want)
	}
	body := data[headerSize:]
	var all []float32
	if n := len(body) / 4; littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(body)))%4 == 0 {
		if n > 0 {
			all = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(body))), n)
		}
	} else {
		all = make([]float32, n)
		for i := range all {
			all[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	}
	return newCheckpoint(c, all)
}

// newCheckpoint slices all (the floats after the header) into weights.
func newCheckpoint(c Config, all []float32) (*Checkpoint, error) {
	secs, err := c.sections()
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Config: c, all: all}
	parts := map[string][]float32{}
	off := 0
	for _, s := range secs {
		part := all[off : off+int(s.n)]
		off += int(s.n)
		parts[s.name] = part
		if s.name == "freq_cis_real" || s.name == "freq_cis_imag" {
			continue // unused since run.c computes RoPE itself
		}
		for i, f := range part {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("%w: %s[%d] = %v, want a finite weight", ErrCheckpoint, s.name, i, f)
			}
		}
	}
	ck.embed = parts["token_embedding_table"]
	ck.rmsFinal = parts["rms_final_weight"]
	ck.wcls = ck.embed
	if !c.SharedClassifier {
		ck.wcls = parts["wcls"]
	}
	d, h, kv := c.Dim, c.HiddenDim, c.KVDim()
	layer := func(name string, i, size int) []float32 { return parts[name][i*size : (i+1)*size : (i+1)*size] }
	ck.layers = make([]layerWeights, c.Layers)
	for i := range ck.layers {
		ck.layers[i] = layerWeights{
			rmsAtt: layer("rms_att_weight", i, d),
			wq:     layer("wq", i, d*d),
			wk:     layer("wk", i, kv*d),
			wv:     layer("wv", i, kv*d),
			wo:     layer("wo", i, d*d),
			rmsFFN: layer("rms_ffn_weight", i, d),
			w1:     layer("w1", i, h*d),
			w2:     layer("w2", i, d*h),
			w3:     layer("w3", i, h*d),
		}
	}
	return ck, nil
}

// MarshalBinary writes the checkpoint back in the same format, byte for
// byte what it was parsed from.
func (ck *Checkpoint) MarshalBinary() ([]byte, error) {
	c := ck.Config
	vocab := int32(c.VocabSize)
	if !c.SharedClassifier {
		vocab = -vocab
	}
	out := make([]byte, 0, headerSize+4*len(ck.all))
	for _, v := range []int32{int32(c.Dim), int32(c.HiddenDim), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), vocab, int32(c.SeqLen)} {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	for _, f := range ck.all {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f))
	}
	return out, nil
}

// Close releases the file mapping of a checkpoint from OpenCheckpoint; the
// checkpoint must not be used afterwards.
func (ck *Checkpoint) Close() error {
	if ck.release == nil {
		return nil
	}
	err := ck.release()
	ck.release = nil
	ck.all, ck.embed, ck.layers, ck.rmsFinal, ck.wcls = nil, nil, nil, nil, nil
	return err
}
