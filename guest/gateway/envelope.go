package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// endpoint is which completion API a request came to.
type endpoint int

const (
	chatEndpoint endpoint = iota // POST /v1/chat/completions
	textEndpoint                 // POST /v1/completions
)

func (e endpoint) path() string {
	if e == chatEndpoint {
		return "/v1/chat/completions"
	}
	return "/v1/completions"
}

// envelope is what the gateway itself reads from every completion request,
// whichever backend serves it: enough to route, bound and account for it.
// Both backends see the same checks, so a request that one rejects the
// other rejects too, with the same error.
type envelope struct {
	model        string
	stream       bool
	includeUsage bool // stream_options.include_usage as the client sent it
	maxTokens    int  // max_tokens or max_completion_tokens; 0: not given
	// soStart, soEnd: the stream_options value's bytes; soStart < 0 when
	// the member is absent.
	soStart, soEnd int
	obj            objectSpan
}

// parseEnvelope checks body is one JSON object and reads the members the
// gateway needs. Each may appear once: with two "model" members the
// gateway and a Python upstream (which keeps the last) could disagree on
// what is served and billed, so duplicates are refused.
func parseEnvelope(body []byte) (envelope, error) {
	env := envelope{soStart: -1}
	var seen [5]bool
	var maxTok, maxCompl int
	once := func(i int, name string) error {
		if seen[i] {
			return invalid(ErrBadParam, name, "'%s' appears more than once", name)
		}
		seen[i] = true
		return nil
	}
	obj, err := scanObject(body, func(key, val []byte, start, end int) error {
		switch string(key) {
		case "model":
			if err := once(0, "model"); err != nil {
				return err
			}
			if isNull(val) {
				return nil
			}
			if val[0] != '"' {
				return invalid(ErrBadParam, "model", "'model' must be a string")
			}
			if bytes.IndexByte(val, '\\') < 0 {
				env.model = string(val[1 : len(val)-1])
			} else if json.Unmarshal(val, &env.model) != nil {
				return invalid(ErrBadParam, "model", "'model' must be a string")
			}
		case "stream":
			if err := once(1, "stream"); err != nil {
				return err
			}
			switch string(val) {
			case "true":
				env.stream = true
			case "false", "null":
			default:
				return invalid(ErrBadParam, "stream", "'stream' must be a boolean")
			}
		case "stream_options":
			if err := once(2, "stream_options"); err != nil {
				return err
			}
			env.soStart, env.soEnd = start, end
			if isNull(val) {
				return nil
			}
			var so struct {
				IncludeUsage *bool `json:"include_usage"`
			}
			if val[0] != '{' || json.Unmarshal(val, &so) != nil {
				return invalid(ErrBadParam, "stream_options", "'stream_options' must be an object whose 'include_usage' is a boolean")
			}
			env.includeUsage = so.IncludeUsage != nil && *so.IncludeUsage
		case "max_tokens":
			if err := once(3, "max_tokens"); err != nil {
				return err
			}
			n, err := parseCount(val, "max_tokens")
			maxTok = n
			return err
		case "max_completion_tokens":
			if err := once(4, "max_completion_tokens"); err != nil {
				return err
			}
			n, err := parseCount(val, "max_completion_tokens")
			maxCompl = n
			return err
		}
		return nil
	})
	if err != nil {
		if err == errScan {
			return env, invalid(ErrBadJSON, "", "the request body must be one JSON object")
		}
		return env, err
	}
	env.obj = obj
	if env.model == "" {
		return env, invalid(ErrBadParam, "model", "you must provide a model parameter")
	}
	if env.soStart >= 0 && !isNull(body[env.soStart:env.soEnd]) && !env.stream {
		return env, invalid(ErrBadParam, "stream_options", "'stream_options' is only allowed when 'stream' is true")
	}
	// max_completion_tokens is the newer name of max_tokens; a request
	// giving both must not leave the bound to whichever the backend reads.
	if maxTok != 0 && maxCompl != 0 && maxTok != maxCompl {
		return env, invalid(ErrBadParam, "max_completion_tokens", "'max_tokens' (%d) and 'max_completion_tokens' (%d) disagree", maxTok, maxCompl)
	}
	env.maxTokens = max(maxTok, maxCompl)
	return env, nil
}

// parseCount reads a token count: null (0, not given) or an integer >= 1.
func parseCount(val []byte, name string) (int, error) {
	if isNull(val) {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(val), 10, 32)
	if err != nil {
		return 0, invalid(ErrBadParam, name, "'%s' must be an integer, at most %d", name, int32(1<<31-1))
	}
	if n < 1 {
		return 0, invalid(ErrBadParam, name, "'%s' must be at least 1, got %d", name, n)
	}
	return int(n), nil
}

// includeUsageOption is what the gateway asks the upstream for: usage in
// the stream, always, since the tokens are what gets paid.
const includeUsageOption = `{"include_usage":true}`

// forceIncludeUsage returns body with stream_options.include_usage set to
// true when the request streams and does not already ask for usage; any
// other member of stream_options (vLLM's continuous_usage_stats) is kept.
// Otherwise it returns body itself: the common case costs no copy.
func forceIncludeUsage(body []byte, env *envelope) []byte {
	if !env.stream || env.includeUsage {
		return body
	}
	if env.soStart < 0 {
		// Insert as the first member, right after '{'.
		at := env.obj.open + 1
		member := `"stream_options":` + includeUsageOption
		if env.obj.members > 0 {
			member += ","
		}
		out := make([]byte, 0, len(body)+len(member))
		out = append(out, body[:at]...)
		out = append(out, member...)
		return append(out, body[at:]...)
	}
	value := []byte(includeUsageOption)
	if old := body[env.soStart:env.soEnd]; !isNull(old) {
		var m map[string]json.RawMessage
		if json.Unmarshal(old, &m) == nil { // parseEnvelope decoded it already
			m["include_usage"] = json.RawMessage("true")
			value, _ = json.Marshal(m)
		}
	}
	out := make([]byte, 0, len(body)+len(value))
	out = append(out, body[:env.soStart]...)
	out = append(out, value...)
	return append(out, body[env.soEnd:]...)
}
