package gateway

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// A strict reader of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): stricter
// than Prometheus itself (no blank lines, no trailing commas, no
// timestamps, which this writer never emits) so that anything it accepts,
// Prometheus accepts.

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

type promFamily struct {
	typ, help string
	samples   []promSample
}

type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s promSample) key() string {
	return s.name + fmt.Sprint(s.labels) // fmt sorts map keys
}

func parseExposition(text string) (map[string]*promFamily, error) {
	if text == "" || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("output does not end with a line feed")
	}
	fams := map[string]*promFamily{}
	var cur string // the family of the last TYPE line
	seen := map[string]bool{}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", n+1, line, fmt.Sprintf(format, a...))
		}
		if !utf8.ValidString(line) {
			return nil, fail("not UTF-8")
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kw, rest, _ := strings.Cut(rest, " ")
			name, arg, ok := strings.Cut(rest, " ")
			if !ok || !metricName.MatchString(name) {
				return nil, fail("bad metric name")
			}
			f := fams[name]
			if f == nil {
				f = &promFamily{}
				fams[name] = f
			}
			switch kw {
			case "HELP":
				if f.help != "" {
					return nil, fail("second HELP")
				}
				h, err := unescape(arg, false)
				if err != nil {
					return nil, fail("%v", err)
				}
				f.help = h
			case "TYPE":
				if f.typ != "" || len(f.samples) > 0 {
					return nil, fail("TYPE repeated or after samples")
				}
				switch arg {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, fail("unknown type")
				}
				f.typ, cur = arg, name
			default:
				return nil, fail("unknown comment keyword")
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fail("%v", err)
		}
		f := fams[cur]
		if f == nil {
			return nil, fail("sample before any TYPE")
		}
		base := s.name
		if f.typ == "histogram" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(s.name, suf); ok && b == cur {
					base = b
				}
			}
		}
		if base != cur {
			return nil, fail("sample of %s inside family %s", s.name, cur)
		}
		if seen[s.key()] {
			return nil, fail("series repeated")
		}
		seen[s.key()] = true
		if f.typ == "counter" && !(s.value >= 0) {
			return nil, fail("counter below zero")
		}
		f.samples = append(f.samples, s)
	}
	for name, f := range fams {
		if f.typ == "" || f.help == "" {
			return nil, fmt.Errorf("family %s lacks TYPE or HELP", name)
		}
		if f.typ == "histogram" {
			if err := checkHistogram(name, f); err != nil {
				return nil, err
			}
		}
	}
	return fams, nil
}

func parseSample(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !metricName.MatchString(s.name) {
		return s, fmt.Errorf("bad name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				return s, fmt.Errorf("label without =")
			}
			name := rest[:eq]
			if !labelName.MatchString(name) || strings.HasPrefix(name, "__") {
				return s, fmt.Errorf("bad label name %q", name)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %q twice", name)
			}
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return s, fmt.Errorf("label value not quoted")
			}
			end := 1
			for ; end < len(rest) && rest[end] != '"'; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			if end >= len(rest) {
				return s, fmt.Errorf("unterminated label value")
			}
			v, err := unescape(rest[1:end], true)
			if err != nil {
				return s, err
			}
			s.labels[name] = v
			rest = rest[end+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
				continue
			}
			if !strings.HasPrefix(rest, "}") {
				return s, fmt.Errorf("want , or } after a label")
			}
			rest = rest[1:]
			break
		}
	}
	v, ok := strings.CutPrefix(rest, " ")
	if !ok || strings.Contains(v, " ") {
		return s, fmt.Errorf("want exactly one space and a value")
	}
	switch v {
	case "+Inf":
		s.value = math.Inf(1)
	case "-Inf":
		s.value = math.Inf(-1)
	case "NaN":
		s.value = math.NaN()
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || strings.ContainsAny(v, "_xXpP") || strings.EqualFold(v, "inf") || strings.EqualFold(v, "+inf") {
			return s, fmt.Errorf("bad value %q", v)
		}
		s.value = f
	}
	return s, nil
}

// unescape resolves the format's escapes: \\ and \n, and \" in label
// values; any other backslash is an error.
func unescape(s string, quote bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			if s[i] == '\n' || quote && s[i] == '"' {
				return "", fmt.Errorf("raw %q", s[i])
			}
			b.WriteByte(s[i])
			continue
		}
		i++
		switch {
		case i < len(s) && s[i] == '\\':
			b.WriteByte('\\')
		case i < len(s) && s[i] == 'n':
			b.WriteByte('\n')
		case quote && i < len(s) && s[i] == '"':
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("bad escape in %q", s)
		}
	}
	return b.String(), nil
}

// checkHistogram: per series, buckets in increasing le, cumulative counts
// that never fall, a +Inf bucket equal to _count, and a _sum.
func checkHistogram(name string, f *promFamily) error {
	type series struct {
		les, counts      []float64
		count, sum       float64
		hasCount, hasSum bool
	}
	all := map[string]*series{}
	get := func(labels map[string]string) *series {
		l := map[string]string{}
		for k, v := range labels {
			if k != "le" {
				l[k] = v
			}
		}
		k := fmt.Sprint(l)
		if all[k] == nil {
			all[k] = &series{}
		}
		return all[k]
	}
	for _, s := range f.samples {
		sr := get(s.labels)
		switch s.name {
		case name + "_bucket":
			le, ok := s.labels["le"]
			if !ok {
				return fmt.Errorf("%s: bucket without le", name)
			}
			v, err := strconv.ParseFloat(le, 64)
			if err != nil {
				return fmt.Errorf("%s: le %q", name, le)
			}
			if n := len(sr.les); n > 0 && (v <= sr.les[n-1] || s.value < sr.counts[n-1]) {
				return fmt.Errorf("%s: bucket le=%s out of order or decreasing", name, le)
			}
			sr.les, sr.counts = append(sr.les, v), append(sr.counts, s.value)
		case name + "_count":
			sr.count, sr.hasCount = s.value, true
		case name + "_sum":
			sr.sum, sr.hasSum = s.value, true
		}
	}
	for k, sr := range all {
		n := len(sr.les)
		if n == 0 || !math.IsInf(sr.les[n-1], 1) || !sr.hasCount || !sr.hasSum || sr.counts[n-1] != sr.count {
			return fmt.Errorf("%s%s: incomplete histogram %+v", name, k, sr)
		}
	}
	return nil
}

func TestParseExpositionRejects(t *testing.T) {
	good := "# HELP a_total Help.\n# TYPE a_total counter\na_total{m=\"x\"} 1\n"
	if _, err := parseExposition(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"", "a_total 1", // no final newline
		"# TYPE a_total counter\na_total 1\n", // no HELP
		"# HELP a_total h\na_total 1\n",       // no TYPE
		"# HELP a_total h\n# TYPE a_total counter\na_total{m=\"x\"} -1\n",
		"# HELP a_total h\n# TYPE a_total counter\na_total{m=\"x\",} 1\n",
		"# HELP a_total h\n# TYPE a_total counter\na_total{m=\"x\\q\"} 1\n",
		"# HELP a_total h\n# TYPE a_total counter\na_total{m=\"x\"} 1\na_total{m=\"x\"} 2\n",
		"# HELP a_total h\n# TYPE a_total counter\na_total  1\n",
		"# HELP a_total h\n# TYPE a_total counter\nb_total 1\n",
		"# HELP a_total h\n# TYPE a_total counter\n\na_total 1\n",
		"# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestMetrics(t *testing.T) {
	eng := newFakeEngine("a", "b", "c")
	eng.usage.ReasoningTokens = 1
	// A model name the format must escape.
	eng.models = []engine.Model{{ID: "od\"d\\name\n", ContextLength: 64}}
	h := newHarness(t, Options{Engine: eng})
	name, _ := jsonQuote(eng.models[0].ID)
	for range 2 {
		readAll(t, h.post(t, "/v1/completions", `{"model":`+name+`,"prompt":"x"}`))
		h.recs.next(t)
	}
	readAll(t, h.post(t, "/v1/completions", `{"model":"other","prompt":"x"}`))
	h.recs.next(t)
	resp := h.get(t, "/metrics")
	text := string(readAll(t, resp))
	if resp.Header.Get("Content-Type") != metricsContentType {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	fams, err := parseExposition(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	value := func(metric string, labels map[string]string) float64 {
		base := metric
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(metric, suf); ok && fams[b] != nil {
				base = b
			}
		}
		f := fams[base]
		if f == nil {
			t.Fatalf("no family %s", base)
		}
		for _, s := range f.samples {
			if s.name == metric && fmt.Sprint(s.labels) == fmt.Sprint(labels) {
				return s.value
			}
		}
		t.Errorf("no sample %s%v in\n%s", metric, labels, text)
		return -1
	}
	m := eng.models[0].ID
	for _, c := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"cocoon_gateway_requests_total", map[string]string{"model": m, "status": "200"}, 2},
		{"cocoon_gateway_requests_total", map[string]string{"model": "", "status": "404"}, 1},
		{"cocoon_gateway_tokens_total", map[string]string{"model": m, "kind": "prompt"}, 22},
		{"cocoon_gateway_tokens_total", map[string]string{"model": m, "kind": "cached"}, 6},
		{"cocoon_gateway_tokens_total", map[string]string{"model": m, "kind": "completion"}, 6},
		{"cocoon_gateway_tokens_total", map[string]string{"model": m, "kind": "reasoning"}, 2},
		{"cocoon_gateway_requests_in_flight", map[string]string{}, 0},
		// The step clock makes each request take one second exactly.
		{"cocoon_gateway_request_duration_seconds_bucket", map[string]string{"model": m, "le": "0.5"}, 0},
		{"cocoon_gateway_request_duration_seconds_bucket", map[string]string{"model": m, "le": "1"}, 2},
		{"cocoon_gateway_request_duration_seconds_bucket", map[string]string{"model": m, "le": "+Inf"}, 2},
		{"cocoon_gateway_request_duration_seconds_sum", map[string]string{"model": m}, 2},
		{"cocoon_gateway_request_duration_seconds_count", map[string]string{"model": m}, 2},
	} {
		if got := value(c.metric, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	for _, f := range []string{"cocoon_gateway_unaccounted_total", "cocoon_gateway_cancelled_total"} {
		if fams[f] == nil || fams[f].typ != "counter" {
			t.Errorf("family %s missing", f)
		}
	}
	// Deterministic: the same state, the same bytes.
	if again := string(readAll(t, h.get(t, "/metrics"))); again != text {
		t.Errorf("output changed between two reads")
	}
}

func jsonQuote(s string) (string, error) {
	b, err := marshal(s)
	return string(b), err
}

// The histogram's buckets count a duration on a bound into that bound
// ("le" is less or equal).
func TestHistogramBucketBoundary(t *testing.T) {
	m := newMetrics()
	m.observe(&Record{Model: "a", Status: 200, Start: t0, End: t0.Add(time.Second)})
	m.observe(&Record{Model: "a", Status: 200, Start: t0, End: t0.Add(400 * time.Second)})
	var b bytes.Buffer
	m.writeTo(&b)
	for _, want := range []string{
		`cocoon_gateway_request_duration_seconds_bucket{model="a",le="0.5"} 0`,
		`cocoon_gateway_request_duration_seconds_bucket{model="a",le="1"} 1`,
		`cocoon_gateway_request_duration_seconds_bucket{model="a",le="300"} 1`,
		`cocoon_gateway_request_duration_seconds_bucket{model="a",le="+Inf"} 2`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("no %s in\n%s", want, b.String())
		}
	}
}
