// Command cocoon is the operator CLI of the Cocoon appliance: build and
// verify images (and, as they land, measure, host, registry, client, dev).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cocoon-appliance/cocoon/cmd/cocoon/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := cli.Context{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Args: os.Args[1:]}
	os.Exit(c.Execute(ctx))
}
