package receipt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func sample(key ed25519.PrivateKey) Receipt {
	return Receipt{
		V: Version, Worker: hex.EncodeToString(key.Public().(ed25519.PublicKey)), Seq: 1,
		Request: "chatcmpl-1", Model: "stories15M",
		Usage: Usage{Prompt: 12, Cached: 4, Completion: 30, Reasoning: 0},
		Start: 1767225600000, End: 1767225600250,
		Commitment: strings.Repeat("ab", 32),
	}
}

func TestSignVerify(t *testing.T) {
	key := testKey(1)
	s, err := Sign(sample(key), key)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(enc))
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, enc)
	}
	if got.Receipt != s.Receipt {
		t.Errorf("round trip %+v, want %+v", got.Receipt, s.Receipt)
	}
	// Every field is covered by the signature.
	for _, tc := range []struct {
		name string
		mod  func(r *Receipt)
	}{
		{"seq", func(r *Receipt) { r.Seq = 2 }},
		{"model", func(r *Receipt) { r.Model = "other" }},
		{"completion tokens", func(r *Receipt) { r.Usage.Completion++ }},
		{"cached tokens", func(r *Receipt) { r.Usage.Cached-- }},
		{"end", func(r *Receipt) { r.End++ }},
		{"commitment", func(r *Receipt) { r.Commitment = strings.Repeat("cd", 32) }},
		{"cancelled", func(r *Receipt) { r.Cancelled = true }},
		{"worker", func(r *Receipt) { r.Worker = hex.EncodeToString(testKey(2).Public().(ed25519.PublicKey)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := s
			tc.mod(&m.Receipt)
			if err := m.Verify(); !errors.Is(err, ErrSignature) {
				t.Errorf("altered %s: err = %v, want ErrSignature", tc.name, err)
			}
		})
	}
	if _, err := Sign(sample(key), testKey(2)); !errors.Is(err, ErrInvalid) {
		t.Errorf("signing another worker's receipt: %v", err)
	}
}

func TestValidate(t *testing.T) {
	key := testKey(1)
	for _, tc := range []struct {
		name string
		mod  func(r *Receipt)
	}{
		{"version", func(r *Receipt) { r.V = 2 }},
		{"seq 0", func(r *Receipt) { r.Seq = 0 }},
		{"worker short", func(r *Receipt) { r.Worker = "abcd" }},
		{"worker upper case", func(r *Receipt) { r.Worker = strings.ToUpper(r.Worker) }},
		{"no request", func(r *Receipt) { r.Request = "" }},
		{"no model", func(r *Receipt) { r.Model = "" }},
		{"negative", func(r *Receipt) { r.Usage.Prompt = -1 }},
		{"cached > prompt", func(r *Receipt) { r.Usage.Cached = 13 }},
		{"reasoning > completion", func(r *Receipt) { r.Usage.Reasoning = 31 }},
		{"end before start", func(r *Receipt) { r.End = r.Start - 1 }},
		{"commitment", func(r *Receipt) { r.Commitment = "zz" }},
		{"invalid utf-8", func(r *Receipt) { r.Model = "\xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sample(key)
			tc.mod(&r)
			if err := r.Validate(); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	key := testKey(1)
	s, _ := Sign(sample(key), key)
	enc, _ := s.Encode()
	for _, tc := range []struct{ name, doc string }{
		{"unknown field", strings.Replace(string(enc), `"sig"`, `"extra":1,"sig"`, 1)},
		{"trailing data", string(enc) + " {}"},
		{"short signature", strings.Replace(string(enc), s.Signature, s.Signature[:10], 1)},
		{"not json", "receipt"},
		{"too long", `{"receipt":{"model":"` + strings.Repeat("x", maxEncoded) + `"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(strings.NewReader(tc.doc)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	key := testKey(1)
	s, _ := Sign(sample(key), key)
	enc, _ := s.Encode()
	f.Add(enc)
	f.Add([]byte(`{"receipt":{},"sig":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		// Whatever verifies re-encodes and verifies again.
		again, err := got.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-encoded receipt refused: %v", err)
		}
	})
}

func appendN(t *testing.T, s *Store, key ed25519.PrivateKey, n int) []Signed {
	t.Helper()
	var out []Signed
	for i := 0; i < n; i++ {
		r := sample(key)
		r.Seq = 0 // the store numbers
		sr, err := s.Append(r, key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sr)
	}
	return out
}

func TestStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	key := testKey(1)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := appendN(t, s, key, 5)
	for i, r := range got {
		if r.Receipt.Seq != uint64(i+1) {
			t.Fatalf("receipt %d has seq %d", i, r.Receipt.Seq)
		}
	}
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Pending(100)
	if len(p) != 3 || p[0].Receipt.Seq != 3 || p[2] != got[4] {
		t.Fatalf("after restart pending %d from seq %d", len(p), p[0].Receipt.Seq)
	}
	// Numbering continues; an ack of everything empties the journal.
	more := appendN(t, s, testKey(2), 1)
	if more[0].Receipt.Seq != 6 {
		t.Fatalf("next seq %d, want 6", more[0].Receipt.Seq)
	}
	if err := s.Ack(6); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, journalName)); fi.Size() != 0 {
		t.Errorf("journal of %d bytes after everything was acknowledged", fi.Size())
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 0 || appendN(t, s, key, 1)[0].Receipt.Seq != 7 {
		t.Error("numbering restarted after the journal was emptied")
	}
	if err := s.Ack(99); !errors.Is(err, ErrAck) {
		t.Errorf("ack beyond the last receipt: %v", err)
	}
	if err := s.Ack(1); err != nil {
		t.Errorf("an old ack: %v", err)
	}
}

// A crash in the middle of a write leaves a torn record: Open drops it and
// keeps every whole one.
func TestStoreTornTail(t *testing.T) {
	key := testKey(1)
	for _, cut := range []int{1, headerSize - 1, headerSize, headerSize + 10} {
		dir := t.TempDir()
		s, _ := Open(dir)
		appendN(t, s, key, 3)
		s.Close()
		path := filepath.Join(dir, journalName)
		b, _ := os.ReadFile(path)
		// Append the first cut bytes of a fourth record.
		s2, _ := Open(t.TempDir())
		fourth := appendN(t, s2, key, 1)[0]
		s2.Close()
		payload, _ := fourth.Encode()
		rec := append(make([]byte, headerSize), payload...)
		binary.LittleEndian.PutUint32(rec, uint32(len(payload)))
		os.WriteFile(path, append(b, rec[:cut]...), 0o600)

		s, err := Open(dir)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if s.Len() != 3 || s.Truncated != int64(cut) {
			t.Errorf("cut %d: %d pending, %d bytes truncated", cut, s.Len(), s.Truncated)
		}
		if r := appendN(t, s, key, 1)[0]; r.Receipt.Seq != 4 {
			t.Errorf("cut %d: next seq %d", cut, r.Receipt.Seq)
		}
		s.Close()
	}
}

// A whole, checksummed record that does not verify was not written by the
// store: refuse to open rather than send or drop it silently.
func TestStoreRefusesForgedRecord(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	appendN(t, s, testKey(1), 2)
	s.Close()
	path := filepath.Join(dir, journalName)
	b, _ := os.ReadFile(path)
	i := bytes.Index(b, []byte(`"completion":30`))
	b[i+len(`"completion":`)] = '9' // 90 tokens instead of 30
	// Fix the CRC so only the signature can tell.
	n := int(b[0]) | int(b[1])<<8
	payload := b[headerSize : headerSize+n]
	c := crc32.Checksum(payload, castagnoli)
	b[4], b[5], b[6], b[7] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	os.WriteFile(path, b, 0o600)
	if _, err := Open(dir); !errors.Is(err, ErrJournal) || !errors.Is(err, ErrSignature) {
		t.Errorf("forged record: %v", err)
	}
}

type fakeRegistry struct {
	held    map[uint64]bool
	fail    error
	batches int
}

func (f *fakeRegistry) Submit(_ context.Context, batch []Signed) (uint64, error) {
	if f.fail != nil {
		return 0, f.fail
	}
	f.batches++
	var top uint64
	for _, r := range batch {
		if err := r.Verify(); err != nil {
			return 0, err
		}
		f.held[r.Receipt.Seq] = true
		top = r.Receipt.Seq
	}
	return top, nil
}

func TestSenderFlush(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	defer s.Close()
	appendN(t, s, testKey(1), 7)
	reg := &fakeRegistry{held: map[uint64]bool{}, fail: errors.New("registry down")}
	snd := &Sender{Store: s, Submit: reg, Batch: 3}
	if err := snd.Flush(context.Background()); err == nil || s.Len() != 7 {
		t.Fatalf("failed submission: err %v, %d pending", err, s.Len())
	}
	reg.fail = nil
	if err := snd.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 || len(reg.held) != 7 || reg.batches != 3 || s.Acked() != 7 {
		t.Errorf("after flush: %d pending, registry holds %d in %d batches, acked %d", s.Len(), len(reg.held), reg.batches, s.Acked())
	}
}

type tick struct{ c chan time.Time }

func (k tick) After(time.Duration) <-chan time.Time { return k.c }

func TestSenderRunStopsWithContext(t *testing.T) {
	s, _ := Open(t.TempDir())
	defer s.Close()
	appendN(t, s, testKey(1), 2)
	reg := &fakeRegistry{held: map[uint64]bool{}}
	k := tick{make(chan time.Time)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- (&Sender{Store: s, Submit: reg, Clock: k}).Run(ctx) }()
	k.c <- time.Time{} // the first round ran (Run flushes, then waits on After)
	if s.Len() != 0 {
		t.Errorf("%d pending after a round", s.Len())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}
