package chain

import (
	_ "embed"
	"fmt"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// mainnetConfigBOC is a mainnet config root (mainnetconfig/README.md
// says where it comes from and how to check it).
//
//go:embed mainnetconfig/config.boc
var mainnetConfigBOC []byte

// MainnetConfig is the embedded mainnet blockchain config root: the fee,
// gas, size-limit and version parameters Emulated executes under.
func MainnetConfig() (*cell.Cell, error) {
	c, err := cell.FromBOC(mainnetConfigBOC)
	if err != nil {
		return nil, fmt.Errorf("chain: embedded mainnet config: %w", err)
	}
	return c, nil
}
