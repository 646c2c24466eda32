// Command cocoon-worker is the worker process of the appliance, installed at
// /usr/bin/cocoon-worker on the verity-protected root filesystem and started
// (and restarted) by the init once every boot check passed.
//
// It serves /healthz in plain HTTP for the host (-listen), and, with a
// worker config (guest/worker, default /etc/cocoon/worker.json), the
// OpenAI-compatible API over RA-TLS, with signed receipts for every
// completion. The assembly is guest/worker's; this is the main.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "cocoon-worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("cocoon-worker", flag.ContinueOnError)
	showVersion := fl.Bool("version", false, "print the version and exit")
	listen := fl.String("listen", "", "plain-HTTP health address (default: the config's health_listen, or :8080)")
	cfgPath := fl.String("config", worker.DefaultConfigPath, "worker config (guest/worker); absent: serve /healthz only")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "cocoon-worker", worker.Version)
		return nil
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))
	cfg, err := worker.LoadConfig(*cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no worker config: serving /healthz only", "config", *cfgPath)
		cfg = nil
	} else if err != nil {
		return err
	}
	healthAddr := ":8080"
	if cfg != nil {
		healthAddr = cfg.HealthListen
	}
	if *listen != "" {
		healthAddr = *listen
	}
	hl, err := net.Listen("tcp", healthAddr)
	if err != nil {
		return err
	}
	health := &http.Server{Handler: worker.HealthHandler(), ReadHeaderTimeout: 10 * time.Second}
	go health.Serve(hl)
	defer health.Close()
	fmt.Fprintf(stdout, "cocoon-worker: listening on %s\n", healthAddr)
	if cfg == nil {
		<-ctx.Done()
		return ctx.Err()
	}

	w, err := worker.New(ctx, cfg, worker.Deps{Logger: log})
	if err != nil {
		return err
	}
	defer w.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cocoon-worker: serving model %s over RA-TLS on %s (attestation %s, key %x)\n", cfg.Model.ID, cfg.Listen, w.Kind(), w.PublicKey())
	return w.Serve(ctx, ln)
}
