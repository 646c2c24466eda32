package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

const (
	evA     = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"say \\\"usage\\\"\"},\"finish_reason\":null}]}\n\n"
	evFin   = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	evUsage = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
	evDone  = "data: [DONE]\n\n"
)

func relay(t testing.TB, in string, keep bool, r io.Reader) (string, *sseRelay, error) {
	var out bytes.Buffer
	s := &sseRelay{keepUsageChunk: keep}
	if r == nil {
		r = strings.NewReader(in)
	}
	err := s.run(r, &out, func() error { return nil }, make([]byte, 16), 1<<20)
	return out.String(), s, err
}

func TestSSERelay(t *testing.T) {
	want := engine.Usage{PromptTokens: 5, CachedTokens: 4, CompletionTokens: 2}
	for _, tc := range []struct {
		name  string
		in    string
		keep  bool
		out   string
		usage bool
		done  bool
	}{
		{"usage chunk removed", evA + evFin + evUsage + evDone, false, evA + evFin + evDone, true, true},
		{"usage chunk kept", evA + evFin + evUsage + evDone, true, evA + evFin + evUsage + evDone, true, true},
		{"no usage", evA + evFin + evDone, false, evA + evFin + evDone, false, true},
		{"CRLF", crlf(evA + evUsage + evDone), false, crlf(evA + evDone), true, true},
		{"CR only", strings.ReplaceAll(evA+evUsage+evDone, "\n", "\r"), false, strings.ReplaceAll(evA+evDone, "\n", "\r"), true, true},
		{"comments and other fields pass", ": ping\n\nevent: message\nid: 4\n" + evUsage[:len(evUsage)-1] + "retry: 10\n\n" + evDone, false, ": ping\n\n" + evDone, true, true},
		{"data split over lines", "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n", false, "", true, false},
		{"no space after colon", "data:" + evUsage[6:], false, "", true, false},
		{"unterminated last event passed on", evA + "data: [DO", false, evA + "data: [DO", false, false},
		{"usage null in a content chunk", "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n", false, "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n", false, false},
		{"bad usage is passed on, not counted", "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":2}}\n\n", false, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":2}}\n\n", false, false},
		{"not JSON", "data: {\"usage\":\n\n", false, "data: {\"usage\":\n\n", false, false},
		{"empty", "", false, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, s, err := relay(t, tc.in, tc.keep, nil)
			if err != nil || out != tc.out || s.gotUsage != tc.usage || s.done != tc.done || (tc.usage && s.usage != want) {
				t.Errorf("out %q (%v) usage %v %+v done %v; want %q usage %v done %v", out, err, s.gotUsage, s.usage, s.done, tc.out, tc.usage, tc.done)
			}
			// One byte at a time: the same result.
			out1, s1, err := relay(t, tc.in, tc.keep, iotest.OneByteReader(strings.NewReader(tc.in)))
			if err != nil || out1 != out || s1.usage != s.usage || s1.gotUsage != s.gotUsage {
				t.Errorf("byte by byte: %q %v", out1, err)
			}
		})
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestSSERelayErrors(t *testing.T) {
	var out bytes.Buffer
	s := &sseRelay{}
	err := s.run(strings.NewReader("data: "+strings.Repeat("x", 100)), &out, func() error { return nil }, make([]byte, 16), 64)
	if !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("err = %v, want ErrEventTooLarge", err)
	}
	boom := errors.New("boom")
	err = s.run(iotest.ErrReader(boom), &out, func() error { return nil }, make([]byte, 16), 64)
	if !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
	var werr clientWriteError
	err = s.run(strings.NewReader(evA), errWriter{boom}, func() error { return nil }, make([]byte, 16), 1<<20)
	if !errors.As(err, &werr) || !errors.Is(err, boom) {
		t.Errorf("write error: %v", err)
	}
	err = s.run(strings.NewReader(evA), &out, func() error { return boom }, make([]byte, 16), 1<<20)
	if !errors.As(err, &werr) {
		t.Errorf("flush error: %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// FuzzSSERelay: whatever the upstream sends and however it is cut into
// reads, the client gets the same bytes, which are the input less whole
// usage-only events, and the usage read is the same.
func FuzzSSERelay(f *testing.F) {
	f.Add([]byte(evA+evFin+evUsage+evDone), false, uint8(3))
	f.Add([]byte(crlf(evA+evUsage)), true, uint8(1))
	f.Add([]byte("data: x\r"), false, uint8(7))
	f.Add([]byte(": c\n\ndata:{\"choices\":null,\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0}}\r\n\r\n"), false, uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, keep bool, step uint8) {
		whole, s1, err1 := relay(t, string(in), keep, nil)
		cut, s2, err2 := relay(t, string(in), keep, &stepReader{b: in, n: int(step)%17 + 1})
		if err1 != nil || err2 != nil {
			t.Fatalf("errors %v %v", err1, err2)
		}
		if whole != cut || s1.usage != s2.usage || s1.gotUsage != s2.gotUsage || s1.done != s2.done {
			t.Fatalf("cut into %d-byte reads: %q, whole: %q", step, cut, whole)
		}
		if keep && whole != string(in) {
			t.Fatalf("keeping everything, yet %q became %q", in, whole)
		}
		if !bytes.Contains(in, usageKey) && whole != string(in) {
			t.Fatalf("no usage anywhere, yet %q became %q", in, whole)
		}
		if !keep && !isSubsequence(whole, string(in)) {
			t.Fatalf("output %q is not the input %q less some events", whole, in)
		}
		if u := s1.usage; u.PromptTokens < 0 || u.CachedTokens > u.PromptTokens || u.ReasoningTokens > u.CompletionTokens {
			t.Fatalf("usage %+v", u)
		}
	})
}

// stepReader returns n bytes per Read.
type stepReader struct {
	b []byte
	n int
}

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// isSubsequence: out is in with some byte ranges removed, in order.
func isSubsequence(out, in string) bool {
	for len(out) > 0 {
		i := strings.IndexByte(in, out[0])
		if i < 0 {
			return false
		}
		in, out = in[i+1:], out[1:]
	}
	return true
}

func TestParseUsage(t *testing.T) {
	for in, want := range map[string]engine.Usage{
		`{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2,"prompt_tokens_details":null}`: {PromptTokens: 7, CompletionTokens: 2},
		`{"prompt_tokens":7,"completion_tokens":2}`:                                               {PromptTokens: 7, CompletionTokens: 2},
		`{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":7},"completion_tokens_details":{"reasoning_tokens":5,"audio_tokens":0}}`: {PromptTokens: 7, CachedTokens: 7, CompletionTokens: 5, ReasoningTokens: 5},
		`{"prompt_tokens":0,"completion_tokens":0,"prompt_tokens_details":{},"completion_tokens_details":null}`:                                                                       {},
	} {
		if got, err := parseUsage([]byte(in)); err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		`null`, `[]`, `{}`, `{"prompt_tokens":7}`, `{"completion_tokens":7}`,
		`{"prompt_tokens":-1,"completion_tokens":2}`, `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":4}`,
		`{"prompt_tokens":1.5,"completion_tokens":2}`, `{"prompt_tokens":"1","completion_tokens":2}`,
		`{"prompt_tokens":3000000000,"completion_tokens":2}`,
		`{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":2}}`,
		`{"prompt_tokens":1,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":3}}`,
		`{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":-1}}`,
	} {
		if _, err := parseUsage([]byte(in)); !errors.Is(err, ErrBadUsage) {
			t.Errorf("%s: err = %v, want ErrBadUsage", in, err)
		}
	}
}

func FuzzParseUsage(f *testing.F) {
	f.Add([]byte(`{"prompt_tokens":7,"total_tokens":9,"completion_tokens":2,"prompt_tokens_details":null}`))
	f.Add([]byte(`{"prompt_tokens":7,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":7},"completion_tokens_details":{"reasoning_tokens":5}}`))
	f.Add([]byte(`{"prompt_tokens":1,"completion_tokens":2,"total_tokens":4}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		u, err := parseUsage(in)
		if err != nil {
			if !errors.Is(err, ErrBadUsage) {
				t.Fatalf("err %v", err)
			}
			return
		}
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.CachedTokens < 0 || u.ReasoningTokens < 0 ||
			u.CachedTokens > u.PromptTokens || u.ReasoningTokens > u.CompletionTokens || u.PromptTokens > maxCount || u.CompletionTokens > maxCount {
			t.Fatalf("usage %+v from %q", u, in)
		}
		// What the gateway writes back reads the same.
		b, _ := marshal(toUsageJSON(u))
		if again, err := parseUsage(b); err != nil || again != u {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", u, b, again, err)
		}
	})
}
