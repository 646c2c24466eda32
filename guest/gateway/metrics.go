package gateway

import (
	"bytes"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Metrics in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), written
// by hand: four families do not justify client_golang and its
// dependencies in the appliance image.
//
// Label values are bounded: model is a served model or "" (a request
// naming an unknown model must not mint a time series per name), status is
// an HTTP status code.

const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// latencyBuckets are the histogram's upper bounds in seconds: from a
// refused request (microseconds) to a long generation (minutes).
var latencyBuckets = []float64{0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Token kinds, the "kind" label.
var tokenKinds = []string{"prompt", "cached", "completion", "reasoning"}

type requestKey struct {
	model  string
	status int
}

type tokenKey struct {
	model string
	kind  int // index into tokenKinds
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; one extra for +Inf
	sum    float64
	count  uint64
}

type metrics struct {
	inFlight atomic.Int64

	mu          sync.Mutex
	requests    map[requestKey]uint64
	tokens      map[tokenKey]uint64
	unaccounted map[string]uint64
	cancelled   map[string]uint64
	latency     map[string]*histogram
}

func newMetrics() *metrics {
	return &metrics{
		requests:    map[requestKey]uint64{},
		tokens:      map[tokenKey]uint64{},
		unaccounted: map[string]uint64{},
		cancelled:   map[string]uint64{},
		latency:     map[string]*histogram{},
	}
}

// observe counts one finished request.
func (m *metrics) observe(r *Record) {
	secs := r.End.Sub(r.Start).Seconds()
	b, _ := slices.BinarySearch(latencyBuckets, secs) // first bound >= secs: "le" is inclusive
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{r.Model, r.Status}]++
	for i, n := range []int{r.Usage.PromptTokens, r.Usage.CachedTokens, r.Usage.CompletionTokens, r.Usage.ReasoningTokens} {
		if n > 0 {
			m.tokens[tokenKey{r.Model, i}] += uint64(n)
		}
	}
	if r.Unaccounted {
		m.unaccounted[r.Model]++
	}
	if r.Cancelled {
		m.cancelled[r.Model]++
	}
	h := m.latency[r.Model]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets)+1)}
		m.latency[r.Model] = h
	}
	h.counts[b]++
	h.sum += secs
	h.count++
}

// writeTo writes every family, series sorted, so the output is
// deterministic for a given state.
func (m *metrics) writeTo(w io.Writer) error {
	var b bytes.Buffer
	m.mu.Lock()
	family(&b, "cocoon_gateway_requests_total", "counter", "Completion requests finished, by served model and HTTP status.")
	for _, k := range sortedKeys(m.requests, func(a, b requestKey) int {
		return cmpBoth(strings.Compare(a.model, b.model), a.status-b.status)
	}) {
		sample(&b, "cocoon_gateway_requests_total", []string{"model", k.model, "status", strconv.Itoa(k.status)}, float64(m.requests[k]))
	}
	family(&b, "cocoon_gateway_tokens_total", "counter", "Tokens counted by the engine, by served model and kind (prompt, cached, completion, reasoning).")
	for _, k := range sortedKeys(m.tokens, func(a, b tokenKey) int {
		return cmpBoth(strings.Compare(a.model, b.model), a.kind-b.kind)
	}) {
		sample(&b, "cocoon_gateway_tokens_total", []string{"model", k.model, "kind", tokenKinds[k.kind]}, float64(m.tokens[k]))
	}
	family(&b, "cocoon_gateway_unaccounted_total", "counter", "Responses served without token counts (the upstream gave no usage).")
	for _, k := range sortedKeys(m.unaccounted, strings.Compare) {
		sample(&b, "cocoon_gateway_unaccounted_total", []string{"model", k}, float64(m.unaccounted[k]))
	}
	family(&b, "cocoon_gateway_cancelled_total", "counter", "Requests whose client went away before the response was complete.")
	for _, k := range sortedKeys(m.cancelled, strings.Compare) {
		sample(&b, "cocoon_gateway_cancelled_total", []string{"model", k}, float64(m.cancelled[k]))
	}
	family(&b, "cocoon_gateway_requests_in_flight", "gauge", "Completion requests being served now.")
	sample(&b, "cocoon_gateway_requests_in_flight", nil, float64(m.inFlight.Load()))
	const lat = "cocoon_gateway_request_duration_seconds"
	family(&b, lat, "histogram", "Time from request to the end of the response, by served model.")
	for _, model := range sortedKeys(m.latency, strings.Compare) {
		h := m.latency[model]
		var cum uint64
		for i, le := range latencyBuckets {
			cum += h.counts[i]
			sample(&b, lat+"_bucket", []string{"model", model, "le", formatFloat(le)}, float64(cum))
		}
		sample(&b, lat+"_bucket", []string{"model", model, "le", "+Inf"}, float64(h.count))
		sample(&b, lat+"_sum", []string{"model", model}, h.sum)
		sample(&b, lat+"_count", []string{"model", model}, float64(h.count))
	}
	m.mu.Unlock()
	_, err := w.Write(b.Bytes())
	return err
}

func cmpBoth(first, second int) int {
	if first != 0 {
		return first
	}
	return second
}

func sortedKeys[K comparable, V any](m map[K]V, cmp func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp)
	return keys
}

func family(b *bytes.Buffer, name, typ, help string) {
	b.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	b.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes `name{l1="v1",...} value`; labels alternate name, value.
func sample(b *bytes.Buffer, name string, labels []string, v float64) {
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// formatFloat writes a sample value as the format wants it: Go float
// syntax, with +Inf, -Inf and NaN spelled so.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// The format's escapes: in label values backslash, double quote and line
// feed; in HELP text backslash and line feed.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
