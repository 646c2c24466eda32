// Command benchverity formats one dm-verity hash file with package verity, the
// way `veritysetup format --salt=HEX --uuid=UUID DATA HASH` does, and prints
// the root hash. scripts/bench-verity.sh times it against veritysetup.
//
//	benchverity -salt HEX -uuid UUID DATA HASH
package main

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/google/uuid"

	"github.com/cocoon-appliance/cocoon/image/verity"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchverity:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchverity", flag.ContinueOnError)
	saltHex := fs.String("salt", "", "salt in hex (empty: no salt)")
	uuidStr := fs.String("uuid", "00000000-0000-0000-0000-000000000000", "superblock UUID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("want DATA HASH, got %d arguments", fs.NArg())
	}
	salt, err := hex.DecodeString(*saltHex)
	if err != nil {
		return fmt.Errorf("-salt: %w", err)
	}
	id, err := uuid.Parse(*uuidStr)
	if err != nil {
		return fmt.Errorf("-uuid: %w", err)
	}
	res, err := verity.FormatFile(fs.Arg(0), fs.Arg(1), verity.Params{Salt: salt, UUID: id})
	if err != nil {
		return err
	}
	fmt.Printf("Root hash: %x\n", res.RootHash)
	return nil
}
