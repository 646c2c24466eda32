package llama2

import (
	"fmt"
	"strings"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// The Llama-2 chat format, as Meta's reference code
// (llama/generation.py, chat_completion) builds it.
const (
	instOpen  = "[INST]"
	instClose = "[/INST]"
	sysOpen   = "<<SYS>>\n"
	sysClose  = "\n<</SYS>>\n\n"
)

// chatSegment is one piece of a rendered dialog, encoded on its own with
// BOS (and EOS when eos is set), as Meta's code encodes each turn.
type chatSegment struct {
	text string
	eos  bool
}

// renderChat renders messages in the Llama-2 chat format:
//
//	<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
//
// An optional first system message is folded into the first user message;
// then user and assistant alternate, starting and ending with user. Each
// content is trimmed of surrounding white space. The tokens are each
// segment's encoding with BOS, and EOS after each answered turn; BOS and
// EOS are tokens, never text, so message content cannot forge them.
func renderChat(msgs []engine.Message) ([]chatSegment, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: no messages", engine.ErrBadRequest)
	}
	dialog := msgs
	system := ""
	hasSystem := false
	if msgs[0].Role == "system" {
		system, hasSystem = msgs[0].Content, true
		dialog = msgs[1:]
	}
	if len(dialog)%2 != 1 {
		return nil, fmt.Errorf("%w: messages must alternate user and assistant after an optional system message and end with user; found %d after it", engine.ErrBadRequest, len(dialog))
	}
	for i, m := range dialog {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			idx := i
			if hasSystem {
				idx++
			}
			return nil, fmt.Errorf("%w: message %d has role %q, want %q (system first if at all, then user and assistant alternating, ending with user)", engine.ErrBadRequest, idx, m.Role, want)
		}
	}
	var segs []chatSegment
	for i := 0; i < len(dialog); i += 2 {
		user := strings.TrimSpace(dialog[i].Content)
		if i == 0 && hasSystem {
			// Meta's code trims the combined message, not the system part.
			user = strings.TrimSpace(sysOpen + system + sysClose + dialog[i].Content)
		}
		if i+1 < len(dialog) {
			answer := strings.TrimSpace(dialog[i+1].Content)
			segs = append(segs, chatSegment{text: instOpen + " " + user + " " + instClose + " " + answer + " ", eos: true})
		} else {
			segs = append(segs, chatSegment{text: instOpen + " " + user + " " + instClose})
		}
	}
	return segs, nil
}

// chatTokens renders and encodes messages.
func chatTokens(tok *Tokenizer, msgs []engine.Message) ([]int, error) {
	segs, err := renderChat(msgs)
	if err != nil {
		return nil, err
	}
	var toks []int
	for _, s := range segs {
		toks = append(toks, tok.Encode(s.text, true, s.eos)...)
	}
	return toks, nil
}
