package store

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testAllowlist(t *testing.T, h *harness) {
	a, b := hash64('b'), hash64('0')
	steps := []struct {
		name    string
		do      func() error
		wantErr error
		want    []AllowedImage
	}{
		{"empty", func() error { return nil }, nil, nil},
		{"allow", func() error {
			return h.s.AllowImage(h.ctx, AllowedImage{Hash: a, Note: "first", Added: at(time.Second)})
		}, nil, []AllowedImage{{a, "first", at(time.Second)}}},
		{"allow another, listed by hash", func() error {
			return h.s.AllowImage(h.ctx, AllowedImage{Hash: b, Note: "zero", Added: at(2 * time.Second)})
		}, nil, []AllowedImage{{b, "zero", at(2 * time.Second)}, {a, "first", at(time.Second)}}},
		{"allow again: new note, first Added", func() error {
			return h.s.AllowImage(h.ctx, AllowedImage{Hash: a, Note: "renamed", Added: at(time.Hour)})
		}, nil, []AllowedImage{{b, "zero", at(2 * time.Second)}, {a, "renamed", at(time.Second)}}},
		{"upper-case hash", func() error {
			return h.s.AllowImage(h.ctx, AllowedImage{Hash: strings.ToUpper(a)})
		}, ErrInvalid, nil},
		{"short hash", func() error { return h.s.AllowImage(h.ctx, AllowedImage{Hash: a[:63]}) }, ErrInvalid, nil},
		{"disallow", func() error { return h.s.DisallowImage(h.ctx, b) }, nil, []AllowedImage{{a, "renamed", at(time.Second)}}},
		{"disallow absent", func() error { return h.s.DisallowImage(h.ctx, b) }, ErrNotFound, nil},
	}
	var list []AllowedImage
	for _, st := range steps {
		err := st.do()
		if !errors.Is(err, st.wantErr) || (err != nil) != (st.wantErr != nil) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if err != nil {
			continue // the list is unchanged
		}
		list = st.want
		got, err := h.s.Allowlist(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, list) {
			t.Errorf("%s: Allowlist = %+v, want %+v", st.name, got, list)
		}
	}
}

func testPrices(t *testing.T, h *harness) {
	for _, c := range []struct {
		name    string
		p       Price
		wantErr error
	}{
		{"set", Price{Model: "qwen", Base: 10, Min: 5, Max: 20}, nil},
		{"another", Price{Model: "llama", Base: 100, Min: 50, Max: math.MaxInt64}, nil},
		{"replace", Price{Model: "qwen", Base: 11, Min: 6, Max: 21}, nil},
		{"empty model", Price{Base: 1}, ErrInvalid},
		{"base above int64", Price{Model: "x", Base: math.MaxInt64 + 1}, ErrInvalid},
		{"max above int64", Price{Model: "x", Max: math.MaxUint64}, ErrInvalid},
	} {
		if err := h.s.SetPrice(h.ctx, c.p); !errors.Is(err, c.wantErr) || (err != nil) != (c.wantErr != nil) {
			t.Errorf("%s: SetPrice(%+v) = %v, want %v", c.name, c.p, err, c.wantErr)
		}
	}
	got, err := h.s.Prices(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Price{{"llama", 100, 50, math.MaxInt64}, {"qwen", 11, 6, 21}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Prices = %+v, want %+v", got, want)
	}
}

func testEvents(t *testing.T, h *harness) {
	evs := []Event{
		{At: at(time.Second), Level: "info", Message: "started"},
		{At: at(3 * time.Second), Level: "error", Worker: "w1", Message: "bad receipt"},
		{At: at(2 * time.Second), Level: "warn", Worker: "w2", Message: "late"},
		{At: at(3 * time.Second), Level: "info", Message: "same millisecond, added later"},
	}
	for _, e := range evs {
		if err := h.s.AddEvent(h.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.s.AddEvent(h.ctx, Event{At: at(0), Level: "warning", Message: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AddEvent(level warning) = %v, want ErrInvalid", err)
	}
	for _, c := range []struct {
		limit int
		want  []Event
	}{
		{0, []Event{evs[3], evs[1], evs[2], evs[0]}},
		{2, []Event{evs[3], evs[1]}},
		{10, []Event{evs[3], evs[1], evs[2], evs[0]}},
	} {
		got, err := h.s.Events(h.ctx, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Events(%d) = %+v, want %+v", c.limit, got, c.want)
		}
	}
}
