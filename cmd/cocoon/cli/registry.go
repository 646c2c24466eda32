package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/config"
	"github.com/cocoon-appliance/cocoon/registry/payout"
	"github.com/cocoon-appliance/cocoon/registry/service"
)

// registry is `cocoon registry`: run one, and its operator's admin calls.
func (c *Context) registry(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon registry", args, []command{
		{"serve", "run the registry of a config file (API, dashboard, payout loop)", c.registryServe},
		{"allow", "allowlist an image hash (--remove: take it off; no argument: list)", c.registryAllow},
		{"payouts", "show balances and payout batches; --run runs a payout now", c.registryPayouts},
	})
}

func (c *Context) registryServe(ctx context.Context, _ *Context, args []string) error {
	fs := c.flags("cocoon registry serve --config FILE [--listen ADDR]", "")
	cfgPath := fs.String("config", "", "registry config file (registry/config, \"cocoon-registry/v1\"; required)")
	listen := fs.String("listen", "", "TCP address (default: the config's listen)")
	verbose := fs.Bool("v", false, "log every request")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return fmt.Errorf("%w: registry serve needs --config FILE", errUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	level := slog.LevelInfo
	if !*verbose {
		// Request lines are Info; operators see warnings, errors and the
		// payout loop's own lines.
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: level}))
	svc, err := service.New(ctx, cfg, service.Options{Log: log})
	if err != nil {
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	fmt.Fprintf(c.Stdout, "registry: serving http://%s (API /v1, dashboard /), store %s, chain %s, hot wallet %s\n",
		ln.Addr(), config.RedactDSN(cfg.Store), cfg.Chain.Kind, svc.Wallet.Address().String())
	err = svc.Serve(ctx, ln)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// adminFlags are the flags of the admin calls: where the registry is and
// its admin token, taken from the registry's own config when given.
type adminFlags struct {
	config, url, tokenFile *string
}

func (c *Context) adminFlagsOn(fs interface {
	String(name, value, usage string) *string
}) adminFlags {
	return adminFlags{
		config:    fs.String("config", "", "the registry's config file: its listen address and admin token file"),
		url:       fs.String("registry", "", "registry URL (default: http://LISTEN of --config, else http://127.0.0.1:8480)"),
		tokenFile: fs.String("token-file", "", "file holding the admin token (default: the config's admin_token_file, else $COCOON_ADMIN_TOKEN_FILE)"),
	}
}

func (a adminFlags) client() (*api.Client, error) {
	url, tokenFile := *a.url, *a.tokenFile
	if *a.config != "" {
		cfg, err := config.Load(*a.config)
		if err != nil {
			return nil, err
		}
		if url == "" {
			host, port, _ := net.SplitHostPort(cfg.Listen)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			url = "http://" + net.JoinHostPort(host, port)
		}
		if tokenFile == "" {
			tokenFile = cfg.AdminTokenFile
		}
	}
	if url == "" {
		url = "http://127.0.0.1:8480"
	}
	if tokenFile == "" {
		tokenFile = os.Getenv("COCOON_ADMIN_TOKEN_FILE")
	}
	if tokenFile == "" {
		return nil, fmt.Errorf("%w: the admin calls need the admin token: --config, --token-file or $COCOON_ADMIN_TOKEN_FILE", errUsage)
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	return &api.Client{BaseURL: strings.TrimRight(url, "/"), Token: strings.TrimSpace(string(b)), HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

var imageHashRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (c *Context) registryAllow(ctx context.Context, _ *Context, args []string) error {
	fs := c.flags("cocoon registry allow [--remove] [--note TEXT] [IMAGE_HASH]", "")
	a := c.adminFlagsOn(fs)
	note := fs.String("note", "", "why it is allowed (e.g. the release it was rebuilt from)")
	remove := fs.Bool("remove", false, "take the hash off the allowlist")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if len(rest) == 1 {
		h := strings.ToLower(rest[0])
		if !imageHashRE.MatchString(h) {
			return fmt.Errorf("%w: image hash %q: want 64 hex digits (`cocoon measure tdx` prints it)", errUsage, rest[0])
		}
		if *remove {
			if err := cl.DisallowImage(ctx, h); err != nil {
				return err
			}
			fmt.Fprintf(c.Stdout, "removed %s from the allowlist\n", h)
			return nil
		}
		if _, err := cl.AllowImage(ctx, h, *note); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "allowlisted %s\n", h)
		return nil
	}
	if *remove {
		return fmt.Errorf("%w: --remove needs the IMAGE_HASH", errUsage)
	}
	list, err := cl.Allowlist(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE HASH\tADDED\tNOTE")
	for _, im := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", im.Hash, im.Added.UTC().Format(time.RFC3339), im.Note)
	}
	return tw.Flush()
}

func (c *Context) registryPayouts(ctx context.Context, _ *Context, args []string) error {
	fs := c.flags("cocoon registry payouts [--run] [--limit N] [--json]", "")
	a := c.adminFlagsOn(fs)
	run := fs.Bool("run", false, "run a payout now (plan, sign, send, confirm) and print its report")
	limit := fs.Int("limit", 20, "most recent batches to show")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if *run {
		raw, err := cl.RunPayouts(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			fmt.Fprintf(c.Stdout, "%s\n", raw)
			return nil
		}
		var rep payout.Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("payout report: %w", err)
		}
		fmt.Fprintf(c.Stdout, "payout run: planned %d, sent %d, confirmed %d, expired %d; paid %s TON, fees %s TON; %d batches still open\n",
			rep.Planned, rep.Sent, rep.Confirmed, rep.Expired, nanotonStr(rep.Paid), nanotonStr(rep.Fees), len(rep.Pending))
		for _, e := range rep.Errors {
			fmt.Fprintln(c.Stdout, "  error:", e)
		}
		return nil
	}
	bal, err := cl.Balances(ctx)
	if err != nil {
		return err
	}
	batches, err := cl.Payouts(ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"balances": bal, "batches": batches})
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "WORKER\tEARNED\tUNPAID\tIN FLIGHT\tPAID\t")
	for _, b := range bal {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", shortHex(b.Worker), nanotonStr(b.Earned), nanotonStr(b.Unpaid), nanotonStr(b.InFlight), nanotonStr(b.Paid))
	}
	tw.Flush()
	fmt.Fprintln(c.Stdout)
	tw = tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BATCH\tSTATE\tTRANSFERS\tTOTAL TON\tFEES TON\tSENDS\tTX\tERROR")
	for _, b := range batches {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", b.ID, b.State, len(b.Items), nanotonStr(b.Total), nanotonStr(b.Fees), b.Sends, shortHex(b.TxHash), b.Error)
	}
	return tw.Flush()
}

// ton writes nanoton as TON with all nine decimals: payouts are exact.
func nanotonStr(n uint64) string { return fmt.Sprintf("%d.%09d", n/1e9, n%1e9) }

// short abbreviates a hex id for tables.
func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	if s == "" {
		return "-"
	}
	return s
}
