package hostlink

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 500, time.UTC)

func logMsg(line string) Message { return Message{V: Version, Type: TypeLog, Time: t0, Line: line} }

func healthMsg(s State, detail string) Message {
	return Message{V: Version, Type: TypeHealth, Time: t0, State: s, Detail: detail}
}

func TestEncodeGolden(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{logMsg("worker: listening on :8080 <ok> & \x1b[0m"), `{"v":1,"type":"log","time":"2026-11-02T10:00:00.0000005Z","line":"worker: listening on :8080 <ok> & \u001b[0m"}` + "\n"},
		{logMsg(""), `{"v":1,"type":"log","time":"2026-11-02T10:00:00.0000005Z"}` + "\n"},
		{healthMsg(Ready, ""), `{"v":1,"type":"health","time":"2026-11-02T10:00:00.0000005Z","state":"ready"}` + "\n"},
		{healthMsg(Failed, "verity: bad block"), `{"v":1,"type":"health","time":"2026-11-02T10:00:00.0000005Z","state":"failed","detail":"verity: bad block"}` + "\n"},
	} {
		b, err := tc.m.Encode()
		if err != nil || string(b) != tc.want {
			t.Errorf("Encode(%+v) = %s, %v; want %s", tc.m, b, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"version 0", Message{Type: TypeLog, Time: t0}},
		{"version 2", Message{V: 2, Type: TypeLog, Time: t0}},
		{"no time", Message{V: 1, Type: TypeLog}},
		{"no type", Message{V: 1, Time: t0}},
		{"unknown type", Message{V: 1, Type: "exec", Time: t0}},
		{"log with state", Message{V: 1, Type: TypeLog, Time: t0, State: Ready}},
		{"log with detail", Message{V: 1, Type: TypeLog, Time: t0, Detail: "x"}},
		{"newline in line", logMsg("a\nb")},
		{"carriage return in line", logMsg("a\rb")},
		{"long line", logMsg(strings.Repeat("x", MaxText+1))},
		{"health with line", Message{V: 1, Type: TypeHealth, Time: t0, State: Ready, Line: "x"}},
		{"health without state", healthMsg("", "")},
		{"unknown state", healthMsg("degraded", "")},
		{"newline in detail", healthMsg(Failed, "a\nb")},
		{"long detail", healthMsg(Failed, strings.Repeat("x", MaxText+1))},
	} {
		if err := tc.m.Validate(); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: Validate = %v, want ErrBadMessage", tc.name, err)
		}
		if _, err := tc.m.Encode(); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: Encode = %v, want ErrBadMessage", tc.name, err)
		}
	}
	// The longest text, all of it escaped, still fits in a message.
	worst := logMsg(strings.Repeat("\x01", MaxText))
	if b, err := worst.Encode(); err != nil || len(b) > MaxMessage {
		t.Fatalf("worst-case line: %d bytes, %v", len(b), err)
	}
}

// next is one expected result of Decoder.Next.
type next struct {
	line string // the log line, for a message
	bad  string // part of the error, for a bad line
}

func TestDecoder(t *testing.T) {
	enc := func(m Message) string { b, _ := m.Encode(); return string(b) }
	long := `{"v":1,"type":"log","time":"2026-11-02T10:00:00Z","line":"` + strings.Repeat("x", MaxMessage) + "\"}\n"
	for _, tc := range []struct {
		name string
		in   string
		want []next
	}{
		{"messages", enc(logMsg("a")) + enc(logMsg("b")), []next{{line: "a"}, {line: "b"}}},
		{"blank lines skipped", "\n\r\n  \n" + enc(logMsg("a")) + "\n", []next{{line: "a"}}},
		{"not json", "hello\n" + enc(logMsg("a")), []next{{bad: "line 1: invalid character"}, {line: "a"}}},
		{"too long", enc(logMsg("a")) + long + enc(logMsg("b")), []next{{line: "a"}, {bad: "line 2: more than 65536 bytes"}, {line: "b"}}},
		{"too long at the end", long[:MaxMessage+10], []next{{bad: "more than 65536 bytes"}}},
		{"unknown field", `{"v":1,"type":"log","time":"2026-11-02T10:00:00Z","exec":"rm"}` + "\n" + enc(logMsg("a")), []next{{bad: "unknown field"}, {line: "a"}}},
		{"two values", enc(logMsg("a"))[:len(enc(logMsg("a")))-1] + " {}\n", []next{{bad: "data after"}}},
		{"invalid message", `{"v":2,"type":"log","time":"2026-11-02T10:00:00Z"}` + "\n", []next{{bad: "version 2, want 1"}}},
		{"escaped newline", `{"v":1,"type":"log","time":"2026-11-02T10:00:00Z","line":"a\nb"}` + "\n", []next{{bad: "line break"}}},
		{"bad time", `{"v":1,"type":"log","time":"yesterday"}` + "\n", []next{{bad: "cannot parse"}}},
		{"unterminated", enc(logMsg("a")) + `{"v":1,"ty`, []next{{line: "a"}, {bad: "line 2: unterminated"}}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tc.in))
			for i, w := range tc.want {
				m, err := d.Next()
				switch {
				case w.bad != "" && (!errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), w.bad)):
					t.Fatalf("result %d: %v, want a bad message error with %q", i, err, w.bad)
				case w.bad == "" && (err != nil || m.Line != w.line):
					t.Fatalf("result %d: %+v, %v; want line %q", i, m, err, w.line)
				}
			}
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the last: %v, want EOF", err)
			}
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("EOF is not sticky: %v", err)
			}
		})
	}
}

// FuzzDecode: the decoder makes progress on any input, returns only valid
// messages, and what it returns encodes and decodes to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, m := range []Message{logMsg("worker: ready"), healthMsg(Failed, "no gpu")} {
		b, _ := m.Encode()
		f.Add(b)
	}
	f.Add(bytes.Repeat([]byte("x"), MaxMessage+1))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		for calls := 0; ; calls++ {
			if calls > len(data)+1 {
				t.Fatalf("%d calls on %d bytes: no progress", calls, len(data))
			}
			m, err := d.Next()
			if errors.Is(err, ErrBadMessage) {
				continue
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("returned an invalid message: %v", err)
			}
			b, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode of a decoded message: %v", err)
			}
			m2, err := NewDecoder(bytes.NewReader(b)).Next()
			if err != nil {
				t.Fatalf("decode of %s: %v", b, err)
			}
			if b2, _ := m2.Encode(); !bytes.Equal(b, b2) {
				t.Fatalf("round trip:\n%s\n%s", b, b2)
			}
		}
	})
}
