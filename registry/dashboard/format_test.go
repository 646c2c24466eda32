package dashboard

import (
	"math"
	"testing"
	"time"
)

func TestFormatTON(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{
		{0, "0.000000000 TON"},
		{1, "0.000000001 TON"},
		{999_999_999, "0.999999999 TON"},
		{1_000_000_000, "1.000000000 TON"},
		{1_234_567_890, "1.234567890 TON"},
		{7_500_000_001, "7.500000001 TON"},
		// 2^53+1 nanoton: a float64 would print ...992 here.
		{9_007_199_254_740_993, "9007199.254740993 TON"},
		{math.MaxUint64, "18446744073.709551615 TON"},
	} {
		if got := formatTON(tc.in); got != tc.want {
			t.Errorf("formatTON(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"w-alpha-01", "w-alpha-01"},
		{"12345678901234", "12345678901234"}, // shortening would save nothing
		{"9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c…"},
		{"ééééééééééééééééé", "éééééééééééé…"}, // cut on runes, not bytes
	} {
		if got := short(tc.in); got != tc.want {
			t.Errorf("short(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(time.Second), "just now"},
		{now.Add(-59 * time.Second), "59s ago"},
		{now.Add(-61 * time.Minute), "1h ago"},
		{now.Add(-3 * 24 * time.Hour), "3d ago"},
	} {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
	// A time in another zone still prints as UTC.
	cet := time.FixedZone("CET", 3600)
	if got := formatTime(time.Date(2026, 1, 2, 4, 4, 5, 0, cet)); got != "2026-01-02 03:04:05 UTC" {
		t.Errorf("formatTime = %q", got)
	}
}

func TestPercent(t *testing.T) {
	for in, want := range map[float64]int{-1: 0, 0: 0, 0.555: 56, 1: 100, 7: 100, math.NaN(): 0, math.Inf(1): 100} {
		if got := percent(in); got != want {
			t.Errorf("percent(%v) = %d, want %d", in, got, want)
		}
	}
}
