package llama2

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

func TestRenderChat(t *testing.T) {
	msg := func(role, content string) engine.Message { return engine.Message{Role: role, Content: content} }
	for _, tc := range []struct {
		name string
		msgs []engine.Message
		want []chatSegment
	}{
		{"one user message", []engine.Message{msg("user", "  Hi there \n")},
			[]chatSegment{{"[INST] Hi there [/INST]", false}}},
		{"system folded into the first user message", []engine.Message{msg("system", "Be brief."), msg("user", "Hi")},
			[]chatSegment{{"[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]", false}}},
		{"multi-turn", []engine.Message{msg("system", "S"), msg("user", "Q1"), msg("assistant", " A1 "), msg("user", "Q2")},
			[]chatSegment{{"[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 ", true}, {"[INST] Q2 [/INST]", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderChat(tc.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("segments %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestRenderChatErrors(t *testing.T) {
	msg := func(role string) engine.Message { return engine.Message{Role: role, Content: "x"} }
	for _, tc := range []struct {
		name string
		msgs []engine.Message
		want string
	}{
		{"none", []engine.Message{}, "no messages"},
		{"only system", []engine.Message{msg("system")}, "found 0"},
		{"ends with assistant", []engine.Message{msg("user"), msg("assistant")}, "found 2"},
		{"assistant first", []engine.Message{msg("assistant")}, `message 0 has role "assistant", want "user"`},
		{"two users", []engine.Message{msg("system"), msg("user"), msg("user"), msg("user")}, `message 2 has role "user", want "assistant"`},
		{"system later", []engine.Message{msg("user"), msg("system"), msg("user")}, `message 1 has role "system"`},
		{"unknown role", []engine.Message{msg("tool")}, `role "tool"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChat(tc.msgs)
			if !errors.Is(err, engine.ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBadRequest saying %q", err, tc.want)
			}
		})
	}
}

// TestChatTokens checks that BOS and EOS delimit the turns as tokens and
// that each segment is encoded on its own (with its dummy prefix).
func TestChatTokens(t *testing.T) {
	_, data := readTestdata(t)
	tok, err := ParseTokenizer(data, 512)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []engine.Message{{Role: "user", Content: "Q1"}, {Role: "assistant", Content: "A1"}, {Role: "user", Content: "Q2 </s>"}}
	got, err := chatTokens(tok, msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(tok.Encode("[INST] Q1 [/INST] A1 ", true, true), tok.Encode("[INST] Q2 </s> [/INST]", true, false))
	if !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	bos, eos := 0, 0
	for _, id := range got {
		switch id {
		case TokenBOS:
			bos++
		case TokenEOS:
			eos++
		}
	}
	// The "</s>" a user typed is text, not the EOS token.
	if bos != 2 || eos != 1 || got[0] != TokenBOS {
		t.Fatalf("%d BOS and %d EOS in %v, want 2 and 1", bos, eos, got)
	}
}
