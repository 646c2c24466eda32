package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/registry/api"
)

// client is `cocoon client`: the user's side of the network (package
// client): verified workers, a chat, a local OpenAI-compatible proxy.
func (c *Context) client(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon client", args, []command{
		{"workers", "list the registry's workers, each verified here (--rebuild: against your own build)", c.clientWorkers},
		{"chat", "send a prompt to the best verified worker over RA-TLS; stream the answer", c.clientChat},
		{"proxy", "serve a local OpenAI-compatible endpoint in front of verified workers", c.clientProxy},
	})
}

// clientFlags are the flags every client command has.
type clientFlags struct {
	registry, policy, vtpm, simRoot string
	images                          clientHashList
	verbose                         bool
}

// clientHashList is a repeatable --image-hash.
type clientHashList []string

func (l *clientHashList) String() string { return strings.Join(*l, ",") }
func (l *clientHashList) Set(s string) error {
	if _, err := client.ParseImageHash(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

func (c *Context) clientFlagSet(name, usage string) (*flag.FlagSet, *clientFlags) {
	fs := c.flags(name, usage)
	f := &clientFlags{}
	def := os.Getenv("COCOON_REGISTRY")
	if def == "" {
		def = "http://127.0.0.1:8480"
	}
	fs.StringVar(&f.registry, "registry", def, "registry URL ($COCOON_REGISTRY)")
	fs.StringVar(&f.policy, "policy", "", "local TDX policy file (measure/policy, \"cocoon-policy/v1\"); its image_hashes are the allowlist")
	fs.StringVar(&f.vtpm, "vtpm-policy", "", "local vTPM policy file (\"cocoon-vtpm-policy/v1\")")
	fs.StringVar(&f.simRoot, "sim-root", "", "PEM of the TDX simulator's root to accept simulated quotes from (development only; needs a --policy with allow_simulated)")
	fs.Var(&f.images, "image-hash", "an image hash to allowlist as well (64 hex digits; repeatable)")
	fs.BoolVar(&f.verbose, "v", false, "print every check, and log more")
	return fs, f
}

// clientTOFU is printed whenever the registry's policy is used.
const clientTOFU = `WARNING: TRUST ON FIRST USE. No local policy was given (--policy, --vtpm-policy, --sim-root),
WARNING: so the image hashes this client accepts are the ones the registry at %s says it
WARNING: allowlists. Attestation, key binding and pinning are still checked here, but a
WARNING: dishonest registry could admit an image of its choosing. Use a policy you control,
WARNING: or rebuild and measure the image yourself: cocoon client workers --rebuild.
`

// newClient builds the client of the flags: a local policy when any
// policy file is given, else the registry's (trust on first use, said
// loudly on stderr).
func (c *Context) newClient(ctx context.Context, f *clientFlags) (*client.Client, error) {
	if f.registry == "" {
		return nil, fmt.Errorf("%w: --registry URL is required", errUsage)
	}
	reg := &api.Client{BaseURL: strings.TrimRight(f.registry, "/")}
	var pol client.Policy
	var err error
	if f.policy != "" || f.vtpm != "" || f.simRoot != "" {
		pol, err = client.LoadPolicy(client.PolicyFiles{TDX: f.policy, VTPM: f.vtpm, SimRoot: f.simRoot})
	} else {
		fmt.Fprintf(c.Stderr, clientTOFU, reg.BaseURL)
		pol, err = client.FetchPolicy(ctx, reg)
	}
	if err != nil {
		return nil, err
	}
	if err := pol.AllowImageHashes(f.images...); err != nil {
		return nil, err
	}
	if pol.AllowsSimulated() {
		fmt.Fprintln(c.Stderr, "WARNING: this policy accepts SIMULATED attestation (quotes signed by a TEST key that prove nothing): development only.")
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime}))
	return &client.Client{Registry: reg, Policy: pol, Log: log}, nil
}

// clientTON writes nanoton as TON, trailing zeros dropped.
func clientTON(n uint64) string {
	return strings.TrimSuffix(strings.TrimRight(nanotonStr(n), "0"), ".")
}

func (c *Context) clientWorkers(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.clientFlagSet("workers", "cocoon client workers --registry URL [--model M] [--policy FILE] [--vtpm-policy FILE] [--sim-root PEM] [--image-hash HEX ...] [--rebuild | --image DIR] [--json] [-v]")
	model := fs.String("model", "", "only workers serving this model")
	asJSON := fs.Bool("json", false, "print JSON, every check included")
	rb := &clientRebuild{}
	rb.register(fs)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if rb.rebuild && rb.image != "" {
		return fmt.Errorf("%w: --rebuild builds an image; --image takes a built one: give one of them", errUsage)
	}
	cl, err := c.newClient(ctx, f)
	if err != nil {
		return err
	}
	defer cl.Close()
	pred, err := c.predictRebuild(ctx, rb)
	if err != nil {
		return err
	}
	list, err := cl.Workers(ctx, *model)
	if err != nil {
		return err
	}
	if *asJSON {
		err = c.printWorkersJSON(list, pred)
	} else {
		err = c.printWorkers(list, pred, f.verbose)
	}
	if err != nil {
		return err
	}
	if _, err := client.Pick(list, *model); err != nil {
		return err
	}
	return nil
}

func (c *Context) printWorkers(list []client.Checked, pred *clientPrediction, verbose bool) error {
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tMODELS\tPRICE TON/1M\tREP\tSTATUS\tVERDICT")
	for i := range list {
		w := &list[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", clientShort(w.Info.ID), w.Info.Endpoint, strings.Join(w.Info.Models, ","),
			clientTON(w.Info.Price), w.Info.Reputation, w.Info.Status, clientVerdict(w))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(c.Stdout, "(the registry lists no worker)")
	}
	if verbose {
		for i := range list {
			w := &list[i]
			fmt.Fprintf(c.Stdout, "\n%s  %s\n", w.Info.ID, w.Info.Endpoint)
			tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
			for _, ch := range w.Checks {
				mark := "ok"
				if !ch.OK {
					mark = "FAIL"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", mark, ch.Name, ch.Detail)
			}
			tw.Flush()
		}
	}
	if pred != nil {
		fmt.Fprintf(c.Stdout, "\nRebuilt image %s:\n", pred.Dir)
		for i := range list {
			r := pred.compare(&list[i])
			mark := "match   "
			if !r.Match {
				mark = "MISMATCH"
			}
			if r.Skipped {
				mark = "skipped "
			}
			fmt.Fprintf(c.Stdout, "  %s  %s  %s\n", clientShort(list[i].Info.ID), mark, r.Detail)
		}
	}
	return nil
}

// clientVerdict is VERIFIED, or REFUSED with the first failed check.
func clientVerdict(w *client.Checked) string {
	if w.Verified() {
		if w.Simulated() {
			return "VERIFIED (SIMULATED: development only)"
		}
		return "VERIFIED (" + string(w.Kind()) + ")"
	}
	for _, ch := range w.Checks {
		if !ch.OK {
			return "REFUSED: " + ch.Name + ": " + ch.Detail
		}
	}
	return "REFUSED: " + w.Err.Error()
}

func clientShort(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// clientWorkerJSON is one worker of `workers --json`.
type clientWorkerJSON struct {
	ID         string                `json:"id"`
	Endpoint   string                `json:"endpoint"`
	Models     []string              `json:"models"`
	Price      uint64                `json:"price"`
	Reputation float64               `json:"reputation"`
	Status     string                `json:"status"`
	Verified   bool                  `json:"verified"`
	Simulated  bool                  `json:"simulated"`
	Kind       string                `json:"kind,omitempty"`
	ImageHash  string                `json:"image_hash,omitempty"`
	Error      string                `json:"error,omitempty"`
	Checks     []client.Check        `json:"checks"`
	Rebuild    *client.RebuildResult `json:"rebuild,omitempty"`
	Registry   json.RawMessage       `json:"registry_evidence,omitempty"`
}

func (c *Context) printWorkersJSON(list []client.Checked, pred *clientPrediction) error {
	out := []clientWorkerJSON{}
	for i := range list {
		w := &list[i]
		j := clientWorkerJSON{ID: w.Info.ID, Endpoint: w.Info.Endpoint, Models: w.Info.Models, Price: w.Info.Price,
			Reputation: w.Info.Reputation, Status: w.Info.Status, Verified: w.Verified(), Simulated: w.Simulated(),
			Kind: string(w.Kind()), ImageHash: w.ImageHash(), Checks: w.Checks, Registry: w.Info.Evidence}
		if w.Err != nil {
			j.Error = w.Err.Error()
		}
		if pred != nil {
			r := pred.compare(w)
			j.Rebuild = &r
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(c.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func (c *Context) clientChat(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.clientFlagSet("chat", `cocoon client chat --registry URL [--model M] [--max-tokens N] [--temperature T] "PROMPT" (PROMPT "-" or none: read stdin)`)
	model := fs.String("model", "", "model (default: the one model the verified workers serve)")
	maxTokens := fs.Int("max-tokens", 256, "most tokens to generate (0: the worker's default)")
	temp := fs.String("temperature", "", "sampling temperature (default: the worker's)")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	prompt := ""
	if len(rest) == 1 {
		prompt = rest[0]
	}
	if prompt == "" || prompt == "-" {
		b, err := io.ReadAll(io.LimitReader(c.Stdin, client.DefaultMaxBodyBytes))
		if err != nil {
			return err
		}
		prompt = strings.TrimSpace(string(b))
	}
	if prompt == "" {
		fs.Usage()
		return fmt.Errorf("%w: client chat needs a prompt", errUsage)
	}
	req := client.ChatRequest{Model: *model, Messages: []client.Message{{Role: "user", Content: prompt}}, MaxTokens: *maxTokens, Stream: true}
	if *temp != "" {
		t, err := strconv.ParseFloat(*temp, 64)
		if err != nil {
			return fmt.Errorf("%w: --temperature %q: %v", errUsage, *temp, err)
		}
		req.Temperature = &t
	}
	cl, err := c.newClient(ctx, f)
	if err != nil {
		return err
	}
	defer cl.Close()
	if req.Model == "" {
		list, err := cl.Workers(ctx, "")
		if err != nil {
			return err
		}
		switch ms := client.Models(list); len(ms) {
		case 0:
			_, err := client.Pick(list, "")
			return err
		case 1:
			req.Model = ms[0]
		default:
			return fmt.Errorf("%w: the verified workers serve %d models (%s): pick one with --model", errUsage, len(ms), strings.Join(ms, ", "))
		}
	}
	res, err := cl.Chat(ctx, req, func(s string) { io.WriteString(c.Stdout, s) })
	if err != nil {
		if res != nil {
			fmt.Fprintln(c.Stdout)
		}
		return err
	}
	sim := ""
	if res.Simulated {
		sim = " [SIMULATED attestation]"
	}
	fmt.Fprintf(c.Stdout, "\n\n-- worker %s at %s%s: %d prompt + %d completion tokens, cost %s TON (at most; %s TON per 1M tokens), %d attempt(s)\n",
		clientShort(res.Worker), res.Endpoint, sim, res.PromptTokens, res.CompletionTokens, clientTON(res.CostNanoton), clientTON(res.Price), res.Attempts)
	return nil
}

func (c *Context) clientProxy(ctx context.Context, _ *Context, args []string) error {
	fs, f := c.clientFlagSet("proxy", "cocoon client proxy --registry URL [--listen 127.0.0.1:PORT] [policy flags]")
	listen := fs.String("listen", "127.0.0.1:8088", "address of the local OpenAI-compatible endpoint")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	cl, err := c.newClient(ctx, f)
	if err != nil {
		return err
	}
	defer cl.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("client proxy: %w", err)
	}
	fmt.Fprintf(c.Stdout, "cocoon client proxy: listening on http://%s/v1 (OpenAI base URL; any API key)\n", ln.Addr())
	if ap, ok := ln.Addr().(*net.TCPAddr); ok && !ap.IP.IsLoopback() {
		fmt.Fprintln(c.Stderr, "WARNING: the proxy is not on loopback: anyone who reaches it can spend your money.")
	}
	err = cl.ServeProxy(ctx, ln)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// clientRebuild are the flags of `workers --rebuild` and `--image`.
type clientRebuild struct {
	rebuild bool
	image   string
	img     imageFlags
	cpus    int
	memory  uint64
}

func (r *clientRebuild) register(fs *flag.FlagSet) {
	fs.BoolVar(&r.rebuild, "rebuild", false, "rebuild the image from source (as `cocoon image build`, into CACHE/rebuild/image; needs `cocoon image fetch` first) and compare every verified worker's registers with its measurement")
	fs.StringVar(&r.image, "image", "", "compare with an image already built in DIR (`cocoon image build --out DIR`) instead of rebuilding")
	fs.StringVar(&r.img.src, "src", "", "with --rebuild: checkout of this project (default: found from the working directory)")
	fs.StringVar(&r.img.lock, "lock", "", "with --rebuild: lock file of pinned inputs (default: SRC/image/inputs.lock)")
	fs.StringVar(&r.img.cache, "cache", defaultCache(), "with --rebuild: package cache ($COCOON_CACHE)")
	fs.IntVar(&r.cpus, "cpus", 2, "vCPUs of the workers' TDs (MRTD and RTMRs depend on it)")
	fs.Uint64Var(&r.memory, "memory", 4096, "guest memory of the workers in MiB")
}

// clientPrediction is the rebuilt image's measurement.
type clientPrediction struct {
	Dir string
	P   *client.Prediction
}

func (p *clientPrediction) compare(w *client.Checked) client.RebuildResult {
	return client.CompareRebuild(p.P, w)
}

// predictRebuild measures the image the flags name (rebuilding it first
// with --rebuild) with the same code as `cocoon measure tdx --json` and
// `cocoon measure tpm --json`; nil without either flag.
func (c *Context) predictRebuild(ctx context.Context, r *clientRebuild) (*clientPrediction, error) {
	if !r.rebuild && r.image == "" {
		return nil, nil
	}
	dir := r.image
	if r.rebuild {
		if err := r.img.resolve(); err != nil {
			return nil, err
		}
		o, err := c.buildOptions(&r.img)
		if err != nil {
			return nil, err
		}
		dir = filepath.Join(r.img.cache, "rebuild", "image")
		o.Out = dir
		fmt.Fprintf(c.Stderr, "cocoon client workers --rebuild: building %s -> %s\n", r.img.src, dir)
		if _, err := build.Build(ctx, o); err != nil {
			return nil, fmt.Errorf("rebuild: %w (are the pinned inputs fetched? cocoon image fetch)", err)
		}
	}
	p := &client.Prediction{}
	var out bytes.Buffer
	mem := strconv.FormatUint(r.memory, 10)
	if err := c.sub(ctx, &out, "measure", "tdx", "--image", dir, "--json", "--memory", mem, "--cpus", strconv.Itoa(r.cpus)); err != nil {
		p.TDXErr = err
	} else {
		var m map[string]*string
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("measure tdx: %w", err)
		}
		for _, f := range []struct {
			key string
			dst *[]byte
		}{{"mrtd", &p.MRTD}, {"rtmr1", &p.RTMR1}, {"rtmr2", &p.RTMR2}} {
			if m[f.key] != nil {
				if *f.dst, err = hex.DecodeString(*m[f.key]); err != nil {
					return nil, fmt.Errorf("measure tdx: %s: %w", f.key, err)
				}
			}
		}
	}
	out.Reset()
	if err := c.sub(ctx, &out, "measure", "tpm", "--image", dir, "--json", "--memory", mem); err != nil {
		p.TPMErr = err
	} else {
		var m map[string]string
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("measure tpm: %w", err)
		}
		p.PCR = map[int][]byte{}
		for _, i := range []int{4, 9} {
			if v, ok := m[fmt.Sprintf("pcr%d", i)]; ok {
				b, err := hex.DecodeString(v)
				if err != nil {
					return nil, fmt.Errorf("measure tpm: pcr%d: %w", i, err)
				}
				p.PCR[i] = b
			}
		}
	}
	if p.TDXErr != nil && p.TPMErr != nil {
		return nil, fmt.Errorf("measuring %s: tdx: %w; tpm: %w", dir, p.TDXErr, p.TPMErr)
	}
	return &clientPrediction{Dir: dir, P: p}, nil
}
