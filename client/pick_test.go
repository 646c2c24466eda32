package client

import (
	"errors"
	"math"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/registry/wire"
)

// verified is a Checked that passed, as Rank sees it.
func verified(id string, price uint64, rep float64, status string, models ...string) Checked {
	if len(models) == 0 {
		models = []string{"m"}
	}
	return Checked{Info: wire.WorkerInfo{ID: id, Price: price, Reputation: rep, Status: status, Models: models}, Result: &ratls.Result{Attested: &ratls.Attested{}}}
}

func TestRank(t *testing.T) {
	refused := verified("r", 1, 1, wire.StatusAttested)
	refused.Result, refused.Err = nil, ErrRefused
	for _, tc := range []struct {
		name  string
		in    []Checked
		model string
		want  []string
	}{
		{"cheapest first", []Checked{verified("a", 3, 1, "attested"), verified("b", 1, 1, "attested"), verified("c", 2, 1, "attested")}, "m", []string{"b", "c", "a"}},
		{"refused never", []Checked{refused, verified("a", 9, 0, "attested")}, "m", []string{"a"}},
		{"model filter", []Checked{verified("a", 1, 1, "attested", "x"), verified("b", 2, 1, "attested", "m", "x")}, "m", []string{"b"}},
		{"any model", []Checked{verified("a", 2, 1, "attested", "x"), verified("b", 1, 1, "attested", "m")}, "", []string{"b", "a"}},
		// 100 × (2 − 1) = 100 beats 60 × (2 − 0) = 120.
		{"reputation weighs", []Checked{verified("new", 60, 0, "attested"), verified("old", 100, 1, "attested")}, "m", []string{"old", "new"}},
		// 100 × 1 = 100 loses to 45 × 2 = 90: more than twice the price.
		{"up to twice the price", []Checked{verified("new", 45, 0, "attested"), verified("old", 100, 1, "attested")}, "m", []string{"new", "old"}},
		{"offline last", []Checked{verified("off", 1, 1, "offline"), verified("on", 50, 0.5, "attested")}, "m", []string{"on", "off"}},
		// Equal effective price (100 × 1.5 = 150 × 1 = 150): lower asking price, then higher reputation.
		{"tie: asking price", []Checked{verified("b", 150, 1, "attested"), verified("a", 100, 0.5, "attested")}, "m", []string{"a", "b"}},
		{"tie: id", []Checked{verified("c", 5, 0.5, "attested"), verified("a", 5, 0.5, "attested"), verified("b", 5, 0.5, "attested")}, "m", []string{"a", "b", "c"}},
		{"bad reputations clamp", []Checked{verified("nan", 10, math.NaN(), "attested"), verified("neg", 10, -3, "attested"), verified("big", 10, 7, "attested")}, "m", []string{"big", "nan", "neg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Rank(tc.in, tc.model)
			var ids []string
			for _, c := range got {
				ids = append(ids, c.Info.ID)
			}
			if len(ids) != len(tc.want) {
				t.Fatalf("Rank = %q, want %q", ids, tc.want)
			}
			for i := range ids {
				if ids[i] != tc.want[i] {
					t.Fatalf("Rank = %q, want %q", ids, tc.want)
				}
			}
		})
	}
	if _, err := Pick([]Checked{refused}, "m"); !errors.Is(err, ErrNoWorker) || !errors.Is(err, ErrRefused) {
		t.Errorf("Pick of refused only: %v", err)
	}
	if _, err := Pick(nil, "m"); !errors.Is(err, ErrNoWorker) {
		t.Errorf("Pick of nothing: %v", err)
	}
}

func TestCost(t *testing.T) {
	for _, tc := range []struct {
		tokens int64
		price  uint64
		want   uint64
	}{
		{0, 1_000_000, 0},
		{-5, 1_000_000, 0},
		{1, 999_999, 0}, // rounded down, as registry/market credits
		{1, 1_000_000, 1},
		{17, 2_000_000, 34},
		{1_000_000, 3_500_000_000, 3_500_000_000},
		{math.MaxInt64, math.MaxUint64, math.MaxUint64}, // saturates
	} {
		if got := Cost(tc.tokens, tc.price); got != tc.want {
			t.Errorf("Cost(%d, %d) = %d, want %d", tc.tokens, tc.price, got, tc.want)
		}
	}
}
