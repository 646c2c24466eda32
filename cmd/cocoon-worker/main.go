// Command cocoon-worker is the worker process of the appliance, installed at
// /usr/bin/cocoon-worker on the verity-protected root filesystem and started
// by the init once every boot check passed.
//
// The inference gateway, attestation and receipts are built in guest/; until
// they land this binary only identifies itself.
package main

import (
	"flag"
	"fmt"
	"os"
)

// version is the worker's protocol version, reported to the init and, later,
// to clients.
const version = "0.1.0"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("cocoon-worker", version)
		return
	}
	fmt.Fprintln(os.Stderr, "cocoon-worker: no engine configured in this build")
	os.Exit(1)
}
