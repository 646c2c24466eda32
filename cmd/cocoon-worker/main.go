// Command cocoon-worker is the worker process of the appliance, installed at
// /usr/bin/cocoon-worker on the verity-protected root filesystem and started
// (and restarted) by the init once every boot check passed.
//
// The inference gateway, attestation and receipts are built in guest/; until
// they land this binary only answers health checks.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

// version is the worker's protocol version, reported to the init and, later,
// to clients.
const version = "0.1.0"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cocoon-worker:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("cocoon-worker", flag.ContinueOnError)
	showVersion := fl.Bool("version", false, "print the version and exit")
	listen := fl.String("listen", ":8080", "address to serve on")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "cocoon-worker", version)
		return nil
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cocoon-worker: listening on %s\n", *listen)
	return http.Serve(ln, handler())
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "ok cocoon-worker %s\n", version)
	})
	return mux
}
