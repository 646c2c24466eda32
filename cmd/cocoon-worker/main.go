// Command cocoon-worker is the worker process of the appliance, installed at
// /usr/bin/cocoon-worker on the verity-protected root filesystem and started
// (and restarted) by the init once every boot check passed.
//
// It serves /healthz in plain HTTP for the host (-listen), and, with a
// worker config (guest/worker, default /etc/cocoon/worker.json), the
// OpenAI-compatible API over RA-TLS, with signed receipts for every
// completion. The assembly is guest/worker's; this is the main.
//
// Flags override the config, or add to it:
//
//	-registry URL        join the registry at URL (creates the config's
//	                     "registry" section when it has none)
//	-payout ADDR         TON address earnings go to (registry.payout)
//	-endpoint HOST:PORT  what clients dial (registry.endpoint)
//	-price N             asking price, nanoton per 1M tokens (registry.price)
//	-sim-seed FILE       the simulator's seed, 64 hex digits (sim_seed_file):
//	                     a stable simulator root for a dev registry to pin
//
// The init passes -registry when the runtime config names a registry; the
// rest come from the image's config or the runtime config's worker_args.
// Without a worker config these flags are ignored (with a warning): the
// process then serves /healthz only.
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
	var o overrides
	o.define(fl)
	if err := fl.Parse(args); err != nil {
		return err
	}
	o.visit(fl)
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
	if cfg != nil {
		if err := o.apply(cfg); err != nil {
			return err
		}
	} else if o.any() {
		log.Warn("no worker config: -registry, -payout, -endpoint, -price and -sim-seed ignored")
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
	if r := cfg.Registry; r != nil {
		fmt.Fprintf(stdout, "cocoon-worker: joining the registry %s as worker %s (endpoint %s)\n", r.URL, w.ID(), cfg.Endpoint())
	}
	return w.Serve(ctx, ln)
}

// overrides are the flags that change the worker config; set names those
// given, so that only they override.
type overrides struct {
	registry, payout, endpoint, simSeed string
	price                               uint64
	receiptsEvery                       int
	set                                 map[string]bool
}

func (o *overrides) define(fl *flag.FlagSet) {
	fl.StringVar(&o.registry, "registry", "", "registry URL to join (registry.url)")
	fl.StringVar(&o.payout, "payout", "", "TON payout address (registry.payout)")
	fl.StringVar(&o.endpoint, "endpoint", "", "host:port clients dial (registry.endpoint)")
	fl.Uint64Var(&o.price, "price", 0, "asking price, nanoton per 1M tokens (registry.price)")
	fl.IntVar(&o.receiptsEvery, "receipts-every-s", 0, "seconds between receipt submissions once all are sent (registry.receipts_every_s)")
	fl.StringVar(&o.simSeed, "sim-seed", "", "simulator seed file, 64 hex digits (sim_seed_file)")
}

// visit notes which flags were given (after fl.Parse).
func (o *overrides) visit(fl *flag.FlagSet) {
	o.set = map[string]bool{}
	fl.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
}

func (o *overrides) any() bool {
	for _, n := range []string{"registry", "payout", "endpoint", "price", "receipts-every-s", "sim-seed"} {
		if o.set[n] {
			return true
		}
	}
	return false
}

// apply writes the flags given into cfg and validates the result.
func (o *overrides) apply(cfg *worker.Config) error {
	if o.set["sim-seed"] {
		cfg.SimSeedFile = o.simSeed
	}
	if o.set["registry"] {
		if cfg.Registry == nil {
			cfg.Registry = &worker.Registry{}
		}
		cfg.Registry.URL = o.registry
	}
	if (o.set["payout"] || o.set["endpoint"] || o.set["price"] || o.set["receipts-every-s"]) && cfg.Registry == nil {
		return fmt.Errorf("%w: -payout, -endpoint, -price and -receipts-every-s need -registry or a registry section in the config", worker.ErrConfig)
	}
	if r := cfg.Registry; r != nil {
		if o.set["payout"] {
			r.Payout = o.payout
		}
		if o.set["endpoint"] {
			r.Endpoint = o.endpoint
		}
		if o.set["price"] {
			r.Price = o.price
		}
		if o.set["receipts-every-s"] {
			r.ReceiptsEveryS = o.receiptsEvery
		}
	}
	return cfg.Validate()
}
