package store

import (
	"fmt"
	"math"
	"time"
)

// The engines' integers are signed 64-bit: a uint64 above MaxInt64 is
// refused rather than wrapped into a negative number.
func toInt64(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%s = %d, want at most %d: %w", what, v, int64(math.MaxInt64), ErrInvalid)
	}
	return int64(v), nil
}

// ms is t as stored: Unix milliseconds, 0 for the zero time, so that a
// zero time reads back as the zero time (1970-01-01T00:00:00.000Z itself
// reads back as zero).
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms, in UTC.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// blob stores an empty byte slice as NULL and reads NULL back as nil, so
// that nil and empty round-trip alike on both engines.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
