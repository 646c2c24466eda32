package gpu_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/gpu"
)

func TestParseRecordedReports(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			raw, _, nonce := s.load(t)
			rep, err := gpu.ParseReport(raw)
			if err != nil {
				t.Fatal(err)
			}
			q, p := rep.Request, rep.Response
			if q.Version != 0x11 || q.Attributes != 1 || q.Operation != 0xff || q.SlotID != 0 || q.Nonce != nonce {
				t.Errorf("request = %+v", q)
			}
			// Hopper reports 64 SHA-384 blocks, indices 1..64, all of DMTF
			// kind 1 (mutable firmware).
			if len(p.Blocks) != 64 {
				t.Fatalf("%d blocks, want 64", len(p.Blocks))
			}
			for i, b := range p.Blocks {
				if int(b.Index) != i+1 || b.ValueType != 1 || b.Raw() || len(b.Value) != gpu.DigestSize {
					t.Errorf("block %d = index %d type %#x, %d bytes", i, b.Index, b.ValueType, len(b.Value))
				}
			}
			if p.Nonce == nonce {
				t.Error("responder nonce equals requester nonce")
			}
			out, err := rep.Marshal()
			if err != nil || !bytes.Equal(out, raw) {
				t.Errorf("Marshal does not give the parsed bytes back (err %v)", err)
			}
			op, err := gpu.ParseOpaque(p.Opaque)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(op.Marshal(), p.Opaque) {
				t.Error("opaque data does not round-trip")
			}
			if d, err := op.DriverVersion(); err != nil || d != s.driver {
				t.Errorf("driver version %q, %v; want %q", d, err, s.driver)
			}
			if v, err := op.VBIOSVersion(); err != nil || v != toLower(s.vbios) {
				t.Errorf("VBIOS version %q, %v; want %q", v, err, s.vbios)
			}
			fwid, ok, err := op.FWID()
			if err != nil || hex.EncodeToString(fwid) != s.fwid || ok != (s.fwid != "") {
				t.Errorf("FWID %x, %v, %v; want %q", fwid, ok, err, s.fwid)
			}
		})
	}
}

func toLower(s string) string { return string(bytes.ToLower([]byte(s))) }

// TestRecordedAgainstRIM cross-checks the block parsing with an independent
// NVIDIA artifact: the VBIOS reference integrity manifest for VBIOS
// 96.00.5E.00.01 (nvtrust local_gpu_verifier/src/verifier/samples/
// 1010_0200_882_96005E0001_PROD.swidtag, commit
// 213af4b84823e2731f775ac9b443cc0e4f7de7e7) lists golden digests by RIM
// index, which is the SPDM block index minus one.
func TestRecordedAgainstRIM(t *testing.T) {
	raw, _, _ := samples[1].load(t)
	rep, err := gpu.ParseReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	rim := map[int]string{
		4:  "568b89291a34cece03b12aaa352d9afe273610307525b8443e90faa78d82ecfa9c7827d8f7915c35b2fab972e1086686",
		5:  "c9e4fe668e9dc269a4657146b5e28a22347cde18a4b0e79d8146532f27ebc386f304400ea5d4bf4159b5a6916dd4564e",
		6:  "6850b0a82e7e77c0f51e0e6732163866003390c4eb286d8dfb26a72f711a9c8bcdf402a1fd4e5d70b97708107a785efc",
		11: "ac59d04197ac1a7fe1309c73e73fb22c5ba5d1c39f2d2c3c2c7fe1e71b4ea5f1cd56eaa4d9687b2062423d863df5629a",
	}
	for idx, want := range rim {
		b := rep.Response.Blocks[idx] // SPDM index idx+1
		if int(b.Index) != idx+1 || hex.EncodeToString(b.Value) != want {
			t.Errorf("SPDM block %d = %x, RIM index %d golden %s", b.Index, b.Value, idx, want)
		}
	}
}

// mutate returns a copy of b with f applied.
func mutate(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

// Offsets in the recorded Hopper report.
const (
	offRespVersion = 37
	offRespCode    = 38
	offRespSlot    = 40
	offNumBlocks   = 41
	offRecordLen   = 42
	offRecord      = 45
)

func TestParseReportErrors(t *testing.T) {
	raw, _, _ := samples[0].load(t)
	set := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	recLen := int(binary.LittleEndian.Uint16(raw[offRecordLen:]))
	cases := []struct {
		name string
		f    func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"request only", func(b []byte) []byte { return b[:37] }},
		{"short request", func(b []byte) []byte { return b[:20] }},
		{"no signature", func(b []byte) []byte { return b[:len(b)-gpu.SignatureSize] }},
		{"short signature", func(b []byte) []byte { return b[:len(b)-1] }},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }},
		{"SPDM 1.2 request", set(0, 0x12)},
		{"request code", set(1, 0x83)},
		{"no signature requested", set(2, 0)},
		{"one index requested", set(3, 1)},
		{"slot 8", set(36, 8)},
		{"response version", set(offRespVersion, 0x10)},
		{"error response", set(offRespCode, 0x7f)},
		{"response slot", set(offRespSlot, 1)},
		{"zero blocks", set(offNumBlocks, 0)},
		{"one block too many", set(offNumBlocks, 65)},
		{"one block too few", set(offNumBlocks, 63)},
		{"record too long", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[offRecordLen:], uint16(recLen+1))
			return b
		}},
		{"record length past end", set(offRecordLen+2, 0xff)},
		{"index 0", set(offRecord, 0)},
		{"index 255", set(offRecord, 0xff)},
		{"duplicate index", set(offRecord+55, 1)},
		{"not DMTF", set(offRecord+1, 2)},
		{"measurement size", set(offRecord+2, 0x34)},
		{"value size", set(offRecord+5, 0x31)},
		{"opaque length past end", func(b []byte) []byte {
			off := offRecord + recLen + gpu.NonceSize
			binary.LittleEndian.PutUint16(b[off:], 0xffff)
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := gpu.ParseReport(mutate(raw, c.f))
			if !errors.Is(err, gpu.ErrReport) {
				t.Fatalf("err = %v, want ErrReport", err)
			}
		})
	}
}

// TestParseReportBuilt covers rules a byte flip cannot reach: digest size,
// opaque size, raw bit streams.
func TestParseReportBuilt(t *testing.T) {
	base := func() *gpu.Report {
		return &gpu.Report{
			Request: gpu.MeasurementRequest{Version: 0x11, Attributes: 1, Operation: 0xff},
			Response: gpu.MeasurementResponse{
				Version:   0x11,
				Blocks:    []gpu.MeasurementBlock{{Index: 1, ValueType: 1, Value: make([]byte, gpu.DigestSize)}},
				Signature: make([]byte, gpu.SignatureSize),
			},
		}
	}
	cases := []struct {
		name string
		edit func(*gpu.Report)
		ok   bool
	}{
		{"minimal", func(*gpu.Report) {}, true},
		{"raw bit stream of 5 bytes", func(r *gpu.Report) {
			r.Response.Blocks[0] = gpu.MeasurementBlock{Index: 1, ValueType: 0x80 | 2, Value: []byte("hello")}
		}, true},
		{"SHA-256 digest", func(r *gpu.Report) { r.Response.Blocks[0].Value = make([]byte, 32) }, false},
		{"opaque 1024", func(r *gpu.Report) { r.Response.Opaque = make([]byte, 1024) }, true},
		{"opaque 1025", func(r *gpu.Report) { r.Response.Opaque = make([]byte, 1025) }, false},
		{"slot 3", func(r *gpu.Report) { r.Request.SlotID, r.Response.Param2 = 3, 3 }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base()
			c.edit(r)
			b, err := r.Marshal()
			if err != nil {
				if c.ok {
					t.Fatal(err)
				}
				if !errors.Is(err, gpu.ErrReport) {
					t.Fatalf("Marshal err = %v, want ErrReport", err)
				}
				return
			}
			got, err := gpu.ParseReport(b)
			if c.ok != (err == nil) {
				t.Fatalf("ParseReport err = %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				if !errors.Is(err, gpu.ErrReport) {
					t.Fatalf("err = %v, want ErrReport", err)
				}
				return
			}
			if r.Response.Opaque == nil {
				r.Response.Opaque = []byte{}
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("parsed %+v, built %+v", got, r)
			}
		})
	}
}

func TestParseOpaqueErrors(t *testing.T) {
	cases := []struct {
		name string
		b    string
	}{
		{"half a type", "03"},
		{"no size", "0300"},
		{"value past end", "030005003535"},
		{"repeated type", "0300010030" + "0300010030"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := gpu.ParseOpaque(mustHex(t, c.b)); !errors.Is(err, gpu.ErrReport) {
				t.Fatalf("err = %v, want ErrReport", err)
			}
		})
	}
	fields := []struct {
		name string
		op   gpu.Opaque
		get  func(gpu.Opaque) error
	}{
		{"no driver version", gpu.Opaque{}, func(o gpu.Opaque) error { _, err := o.DriverVersion(); return err }},
		{"empty driver version", gpu.Opaque{{Type: 3, Value: []byte{0}}}, func(o gpu.Opaque) error { _, err := o.DriverVersion(); return err }},
		{"NUL in driver version", gpu.Opaque{{Type: 3, Value: []byte("5\x0050\x00")}}, func(o gpu.Opaque) error { _, err := o.DriverVersion(); return err }},
		{"no VBIOS version", gpu.Opaque{}, func(o gpu.Opaque) error { _, err := o.VBIOSVersion(); return err }},
		{"short VBIOS version", gpu.Opaque{{Type: 6, Value: make([]byte, 7)}}, func(o gpu.Opaque) error { _, err := o.VBIOSVersion(); return err }},
		{"short FWID", gpu.Opaque{{Type: 20, Value: make([]byte, 32)}}, func(o gpu.Opaque) error { _, _, err := o.FWID(); return err }},
	}
	for _, c := range fields {
		t.Run(c.name, func(t *testing.T) {
			if err := c.get(c.op); !errors.Is(err, gpu.ErrReport) {
				t.Fatalf("err = %v, want ErrReport", err)
			}
		})
	}
}

func FuzzParseReport(f *testing.F) {
	for _, s := range samples {
		raw, _, _ := s.load(f)
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
	}
	minimal := &gpu.Report{
		Request: gpu.MeasurementRequest{Version: 0x11, Attributes: 1, Operation: 0xff},
		Response: gpu.MeasurementResponse{
			Version:   0x11,
			Blocks:    []gpu.MeasurementBlock{{Index: 7, ValueType: 0x83, Value: []byte{1, 2, 3}}},
			Opaque:    gpu.Opaque{{Type: 3, Value: []byte("1.0\x00")}}.Marshal(),
			Signature: make([]byte, gpu.SignatureSize),
		},
	}
	b, err := minimal.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := gpu.ParseReport(b)
		if err != nil {
			if !errors.Is(err, gpu.ErrReport) {
				t.Fatalf("error %v does not wrap ErrReport", err)
			}
			return
		}
		// Read-write-read: the parser accepts only one encoding.
		out, err := rep.Marshal()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("Marshal(ParseReport(b)) != b (err %v)", err)
		}
		if _, err := rep.SignedData(); err != nil {
			t.Fatal(err)
		}
		if op, err := gpu.ParseOpaque(rep.Response.Opaque); err == nil {
			if !bytes.Equal(op.Marshal(), rep.Response.Opaque) {
				t.Fatal("opaque data does not round-trip")
			}
			_, _ = op.DriverVersion()
			_, _ = op.VBIOSVersion()
			_, _, _ = op.FWID()
		}
	})
}

func FuzzParseOpaque(f *testing.F) {
	for _, s := range samples {
		raw, _, _ := s.load(f)
		rep, err := gpu.ParseReport(raw)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rep.Response.Opaque)
	}
	f.Add([]byte{3, 0, 2, 0, '1', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := gpu.ParseOpaque(b)
		if err != nil {
			if !errors.Is(err, gpu.ErrReport) {
				t.Fatalf("error %v does not wrap ErrReport", err)
			}
			return
		}
		if !bytes.Equal(op.Marshal(), b) {
			t.Fatal("Marshal(ParseOpaque(b)) != b")
		}
	})
}
