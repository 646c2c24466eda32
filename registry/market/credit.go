package market

import (
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/cocoon-appliance/cocoon/guest/receipt"
)

// PerTokens is the unit prices are quoted in: nanoton per this many tokens.
const PerTokens = 1_000_000

// Errors of Credit.
var (
	ErrUsage    = errors.New("market: invalid usage")
	ErrOverflow = errors.New("market: credit overflows")
)

// Credit is what a receipt with usage u earns a worker whose asking price
// is ask when the market price is mkt (package documentation, "Credit"):
// the billable tokens and the amount in nanoton.
func Credit(u receipt.Usage, ask, mkt uint64) (tokens int64, amount uint64, err error) {
	if u.Prompt < 0 || u.Completion < 0 {
		return 0, 0, fmt.Errorf("%w: prompt %d, completion %d", ErrUsage, u.Prompt, u.Completion)
	}
	if u.Prompt > math.MaxInt64-u.Completion {
		return 0, 0, fmt.Errorf("%w: %d + %d tokens", ErrOverflow, u.Prompt, u.Completion)
	}
	tokens = u.Prompt + u.Completion
	hi, lo := bits.Mul64(uint64(tokens), min(ask, mkt))
	if hi >= PerTokens { // the quotient would not fit in 64 bits
		return 0, 0, fmt.Errorf("%w: %d tokens at %d nanoton per 1M", ErrOverflow, tokens, min(ask, mkt))
	}
	amount, _ = bits.Div64(hi, lo, PerTokens)
	return tokens, amount, nil
}
