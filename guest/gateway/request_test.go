package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

func TestParseEnvelope(t *testing.T) {
	for _, tc := range []struct {
		body string
		want envelope // obj and the stream_options span are not compared
	}{
		{`{"model":"m"}`, envelope{model: "m"}},
		{` { "model" : "m\u00e9" , "stream" : true } `, envelope{model: "mé", stream: true}},
		{`{"model":"m","stream":null,"stream_options":null,"max_tokens":null}`, envelope{model: "m"}},
		{`{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}`, envelope{model: "m", stream: true, includeUsage: true}},
		{`{"model":"m","stream":true,"stream_options":{}}`, envelope{model: "m", stream: true}},
		{`{"model":"m","max_tokens":7}`, envelope{model: "m", maxTokens: 7}},
		{`{"model":"m","max_completion_tokens":7}`, envelope{model: "m", maxTokens: 7}},
		{`{"model":"m","max_tokens":7,"max_completion_tokens":7}`, envelope{model: "m", maxTokens: 7}},
		{`{"messages":[{"model":"x","stream":"no"}],"model":"m","extra":{"model":1}}`, envelope{model: "m"}},
	} {
		got, err := parseEnvelope([]byte(tc.body))
		got.obj, got.soStart, got.soEnd = objectSpan{}, 0, 0
		tc.want.soStart = 0
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.body, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		body  string
		param string
		err   error
	}{
		{``, "", ErrBadJSON},
		{`null`, "", ErrBadJSON},
		{`"m"`, "", ErrBadJSON},
		{`{"model":"m"}{}`, "", ErrBadJSON},
		{`{"model":"m",}`, "", ErrBadJSON},
		{`{"model":NaN}`, "model", ErrBadParam},
		{`{"model" "m"}`, "", ErrBadJSON},
		{`{"model":"m" "stream":true}`, "", ErrBadJSON},
		{`{"model":"m","messages":[}`, "", ErrBadJSON},
		{`{"model":"m","messages":"\"}`, "", ErrBadJSON},
		{`{"model":"m"`, "", ErrBadJSON},
		{`{}`, "model", ErrBadParam},
		{`{"model":""}`, "model", ErrBadParam},
		{`{"model":null}`, "model", ErrBadParam},
		{`{"model":["m"]}`, "model", ErrBadParam},
		{`{"model":"m","stream":1}`, "stream", ErrBadParam},
		{`{"model":"m","stream":true,"stream":false}`, "stream", ErrBadParam},
		{`{"model":"m","stream":true,"stream_options":[]}`, "stream_options", ErrBadParam},
		{`{"model":"m","stream":true,"stream_options":{"include_usage":"yes"}}`, "stream_options", ErrBadParam},
		{`{"model":"m","stream":false,"stream_options":{}}`, "stream_options", ErrBadParam},
		{`{"model":"m","stream_options":{},"stream_optio\u006es":null}`, "stream_options", ErrBadParam},
		{`{"model":"m","max_tokens":-1}`, "max_tokens", ErrBadParam},
		{`{"model":"m","max_tokens":1e3}`, "max_tokens", ErrBadParam},
		{`{"model":"m","max_tokens":4294967296}`, "max_tokens", ErrBadParam},
		{`{"model":"m","max_completion_tokens":true}`, "max_completion_tokens", ErrBadParam},
		{`{"model":"m","max_tokens":1,"max_completion_tokens":2}`, "max_completion_tokens", ErrBadParam},
	} {
		_, err := parseEnvelope([]byte(tc.body))
		var e *apiError
		if !errors.Is(err, tc.err) || !errors.As(err, &e) || e.param != tc.param || e.status != 400 {
			t.Errorf("%s: err = %v, want %v on %q", tc.body, err, tc.err, tc.param)
		}
	}
}

func TestForceIncludeUsage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"model":"m"}`, `{"model":"m"}`}, // not streaming: untouched
		{`{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"  {\n\"model\":\"m\",\"stream\":true}", "  {\"stream_options\":{\"include_usage\":true},\n\"model\":\"m\",\"stream\":true}"},
		{`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{`{"model":"m","stream":true,"stream_options":{"include_usage":false}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{`{"model":"m","stream":true,"stream_options":null,"x":1}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true},"x":1}`},
		{`{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}`, `{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":true}}`},
	} {
		env, err := parseEnvelope([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := forceIncludeUsage([]byte(tc.in), &env); string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// Not copied when nothing changes.
	in := []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`)
	env, _ := parseEnvelope(in)
	if out := forceIncludeUsage(in, &env); &out[0] != &in[0] {
		t.Error("body copied without an edit")
	}
}

func TestDecodeChat(t *testing.T) {
	seed := int64(-3)
	for _, tc := range []struct {
		body string
		want engine.Request
	}{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			engine.Request{Model: "m", Messages: []engine.Message{{Role: "user", Content: "hi"}}, Temperature: 1, TopP: 1}},
		{`{"model":"m","messages":[{"role":"developer","content":"rules","name":"x"},{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":[{"type":"text","text":"a"}]}],
		  "temperature":0.2,"top_p":0,"seed":-3,"stop":["x","y"],"n":1,"presence_penalty":0,"frequency_penalty":0,"logit_bias":{},"logprobs":false,
		  "tools":[],"tool_choice":"none","response_format":{"type":"text"},"max_tokens":9,"user":"u","store":false,"unknown":{"deep":[1]}}`,
			engine.Request{Model: "m", Messages: []engine.Message{{Role: "system", Content: "rules"}, {Role: "assistant"}, {Role: "user", Content: "a"}},
				MaxTokens: 9, Temperature: 0.2, TopP: 0, Seed: &seed, Stop: []string{"x", "y"}}},
		{`{"model":"m","messages":[{"role":"user","content":""}],"stop":null,"temperature":null}`,
			engine.Request{Model: "m", Messages: []engine.Message{{Role: "user"}}, Temperature: 1, TopP: 1}},
	} {
		env, err := parseEnvelope([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeChat([]byte(tc.body), &env)
		if err != nil || !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%s:\n%+v, %v\nwant %+v", tc.body, got, err, tc.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		text  bool
		body  string
		param string
		err   error
	}{
		{false, `{"model":"m","messages":[]}`, "messages", ErrBadParam},
		{false, `{"model":"m","messages":{}}`, "messages", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":7}]}`, "messages[0].content", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":[]}]}`, "messages[0].content", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}`, "messages[0].content[0].type", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "messages[0].content[0].type", ErrUnsupported},
		{false, `{"model":"m","messages":[{"role":"user"}]}`, "messages[0].content", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":[{}]}]}`, "messages[0].tool_calls", ErrUnsupported},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":1.5}`, "top_p", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":-0.1}`, "temperature", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"seed":1.5}`, "seed", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}`, "n", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":""}`, "stop", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]}`, "stop", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"frequency_penalty":3}`, "frequency_penalty", ErrBadParam},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"logit_bias":{"1":5}}`, "logit_bias", ErrUnsupported},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}`, "top_logprobs", ErrUnsupported},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}`, "tool_choice", ErrUnsupported},
		{false, `{"model":"m","messages":[{"role":"user","content":"x"}],"functions":[{}]}`, "functions", ErrUnsupported},
		{true, `{"model":"m","prompt":7}`, "prompt", ErrBadParam},
		{true, `{"model":"m","prompt":["a","b"]}`, "prompt", ErrUnsupported},
		{true, `{"model":"m","prompt":[[1,2]]}`, "prompt", ErrUnsupported},
		{true, `{"model":"m","prompt":"x","suffix":"y"}`, "suffix", ErrUnsupported},
		{true, `{"model":"m","prompt":"x","best_of":2}`, "best_of", ErrUnsupported},
		{true, `{"model":"m","prompt":"x","logprobs":0}`, "logprobs", ErrUnsupported},
	} {
		env, err := parseEnvelope([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.text {
			_, err = decodeText([]byte(tc.body), &env)
		} else {
			_, err = decodeChat([]byte(tc.body), &env)
		}
		var e *apiError
		if !errors.Is(err, tc.err) || !errors.As(err, &e) || e.param != tc.param {
			t.Errorf("%s: err = %v, want %v on %q", tc.body, err, tc.err, tc.param)
		}
	}
}

func TestScanObject(t *testing.T) {
	type member struct{ key, val string }
	in := ` {"a" : 1 , "b\"c":"x\"}y", "d":{"e":[1,{"f":"]}"}]} ,"g":[] , "h":-1.5e3,"i":null} `
	var got []member
	span, err := scanObject([]byte(in), func(key, val []byte, start, end int) error {
		if string(val) != in[start:end] {
			t.Errorf("span %d:%d is %q, value %q", start, end, in[start:end], val)
		}
		got = append(got, member{string(key), string(val)})
		return nil
	})
	want := []member{{"a", "1"}, {`b"c`, `"x\"}y"`}, {"d", `{"e":[1,{"f":"]}"}]}`}, {"g", "[]"}, {"h", "-1.5e3"}, {"i", "null"}}
	if err != nil || !reflect.DeepEqual(got, want) || span.open != 1 || span.members != 6 {
		t.Errorf("got %q %+v %v, want %q", got, span, err, want)
	}
}

// FuzzChatRequest: any body either decodes into a request the engine can
// take (every bound checked) or fails with a named error; the upstream
// edit of the same body stays valid JSON and means the same request with
// usage switched on.
func FuzzChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":["x"],"max_tokens":5}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":true},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":true,"stream_options":null,"messages":[{"role":"assistant","content":null}],"temperature":2,"top_p":0.5,"seed":9}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}],"n":2}`,
		`{"model":"m","\u006dodel":"n"}`,
		`{"model":"m","max_tokens":1,"max_completion_tokens":1,"stream":false}`,
		` {"model":"\"}","messages":[]} `,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := parseEnvelope(body)
		if err != nil {
			checkAPIError(t, err)
			return
		}
		if env.model == "" || env.maxTokens < 0 || (env.includeUsage && !env.stream) {
			t.Fatalf("envelope %+v", env)
		}
		fwd := forceIncludeUsage(body, &env)
		if json.Valid(body) {
			checkForwarded(t, body, fwd, &env)
		}
		req, err := decodeChat(body, &env)
		if err != nil {
			checkAPIError(t, err)
			return
		}
		if req.Model != env.model || len(req.Messages) == 0 || len(req.Stop) > maxStop ||
			!(req.Temperature >= 0 && req.Temperature <= 2) || !(req.TopP >= 0 && req.TopP <= 1) || req.MaxTokens != env.maxTokens {
			t.Fatalf("request %+v from %q", req, body)
		}
		for _, m := range req.Messages {
			if m.Role != "system" && m.Role != "user" && m.Role != "assistant" {
				t.Fatalf("role %q", m.Role)
			}
		}
		for _, s := range req.Stop {
			if s == "" {
				t.Fatal("empty stop")
			}
		}
	})
}

func checkAPIError(t *testing.T, err error) {
	t.Helper()
	var e *apiError
	if !errors.As(err, &e) || e.status < 400 || e.msg == "" {
		t.Fatalf("error %v is not an API error", err)
	}
	for _, s := range []error{ErrBadJSON, ErrBadParam, ErrUnsupported} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no request sentinel", err)
}

// checkForwarded: fwd is valid JSON, and decodes (last key wins, as in
// Python) to body's members with stream_options.include_usage forced on
// for streams and nothing else changed.
func checkForwarded(t *testing.T, body, fwd []byte, env *envelope) {
	t.Helper()
	if !json.Valid(fwd) {
		t.Fatalf("forwarded body is not JSON: %q", fwd)
	}
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("body: %v", err)
	}
	if err := json.Unmarshal(fwd, &b); err != nil {
		t.Fatalf("forwarded: %v", err)
	}
	if !env.stream {
		if string(fwd) != string(body) {
			t.Fatalf("non-stream body edited: %q -> %q", body, fwd)
		}
		return
	}
	var so struct {
		IncludeUsage *bool `json:"include_usage"`
	}
	if err := json.Unmarshal(b["stream_options"], &so); err != nil || so.IncludeUsage == nil || !*so.IncludeUsage {
		t.Fatalf("forwarded stream_options %s", b["stream_options"])
	}
	for k, v := range a {
		if k == "stream_options" {
			continue
		}
		if string(b[k]) != string(v) {
			t.Fatalf("member %q changed: %s -> %s", k, v, b[k])
		}
	}
	if len(b) != len(a) && !(len(b) == len(a)+1 && a["stream_options"] == nil) {
		t.Fatalf("members %d -> %d", len(a), len(b))
	}
}

func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` {"a\"b" : [ "]" , {"}":1} ] , "c":null } `, `{}`, `{"a":}`, `{"a" 1}`, `"x"`, `{"a":1}}`, `{"a":"\`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		valid := json.Valid(in)
		last := map[string]string{}
		_, err := scanObject(in, func(key, val []byte, start, end int) error {
			// encoding/json turns each invalid UTF-8 byte of a key into
			// U+FFFD (Python refuses the body): no key of ours is affected.
			last[jsonUTF8(key)] = string(val)
			if start < 0 || end > len(in) || start >= end || string(in[start:end]) != string(val) {
				t.Fatalf("bad span %d:%d", start, end)
			}
			if valid && !json.Valid(val) {
				t.Fatalf("member value %q of a valid object is not JSON", val)
			}
			return nil
		})
		var m map[string]json.RawMessage
		trimmed := bytes.TrimSpace(in)
		isObject := valid && len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(in, &m) == nil
		if isObject && err != nil {
			t.Fatalf("valid object %q: %v", in, err)
		}
		if isObject {
			// The same members as encoding/json reads, the last of a
			// repeated key winning in both.
			if len(last) != len(m) {
				t.Fatalf("keys %q, encoding/json %q", last, m)
			}
			for k, v := range m {
				if w, ok := last[k]; !ok || w != string(v) {
					t.Fatalf("member %q: scanned %q, encoding/json %q", k, w, v)
				}
			}
		}
		if valid && !isObject && err == nil {
			t.Fatalf("valid non-object %q accepted", in)
		}
	})
}

// jsonUTF8 is s with each invalid UTF-8 byte replaced as encoding/json does.
func jsonUTF8(s []byte) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.Write(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}
