package dashboard

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

const nanoPerTON = 1_000_000_000

// formatTON renders nanoton as TON with all 9 decimals. It uses integer
// division only: a float64 cannot hold every uint64 nanoton amount exactly,
// and an operator reconciling payouts must see the exact figure.
func formatTON(n uint64) string {
	return fmt.Sprintf("%d.%09d TON", n/nanoPerTON, n%nanoPerTON)
}

// shortLen is how many characters of a long hash or ID the tables show; the
// full value goes in a title attribute so it can still be read and copied.
const shortLen = 12

// isLong reports whether s is shortened by short.
func isLong(s string) bool { return utf8.RuneCountInString(s) > shortLen+2 }

// short cuts s to shortLen characters plus an ellipsis. It counts runes, not
// bytes, because IDs are worker-supplied and may not be plain hex.
func short(s string) string {
	if !isLong(s) {
		return s
	}
	i, n := 0, 0
	for i = range s {
		if n == shortLen {
			break
		}
		n++
	}
	return s[:i] + "…"
}

// timeLayout is fixed and always UTC so the page (and its golden file) does
// not depend on the server's time zone.
const timeLayout = "2006-01-02 15:04:05 UTC"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(timeLayout)
}

// ago renders how long before the page's own timestamp t was. It is relative
// to View.Generated rather than the wall clock so output is deterministic.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if now.IsZero() {
		return formatTime(t)
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now" // clocks of the data sources may disagree slightly
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
	}
}

// percent turns a 0..1 reputation into a whole percentage, clamped, so a bad
// value cannot stretch the bar outside its track.
func percent(r float64) int {
	if math.IsNaN(r) || r <= 0 {
		return 0
	}
	if r >= 1 {
		return 100
	}
	return int(math.Round(r * 100))
}

// The class helpers map free-form states to a fixed set of CSS classes, so an
// unexpected value still renders (as a neutral badge) and never injects a class.

func statusClass(s string) string {
	switch s {
	case "attested":
		return "ok"
	case "expired":
		return "warn"
	default: // "offline" and anything unknown
		return "off"
	}
}

func batchClass(s string) string {
	switch s {
	case "confirmed":
		return "ok"
	case "signed", "sent":
		return "info"
	case "expired":
		return "bad"
	default: // "planned"
		return "off"
	}
}

func levelClass(s string) string {
	switch s {
	case "error":
		return "bad"
	case "warn", "warning":
		return "warn"
	default:
		return "off"
	}
}

func chainClass(s string) string {
	if s == "lite" {
		return "info"
	}
	return "warn" // emulated: not real money, worth noticing
}
