package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/ton/wallet"

	"github.com/cocoon-appliance/cocoon/client"
	"github.com/cocoon-appliance/cocoon/guest/attest/sim"
	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/guest/worker"
	initconfig "github.com/cocoon-appliance/cocoon/init/config"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/config"
	"github.com/cocoon-appliance/cocoon/registry/payout"
	"github.com/cocoon-appliance/cocoon/registry/service"
)

// dev is `cocoon dev`: the whole network on this machine.
func (c *Context) dev(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon dev", args, []command{
		{"up", "build, boot, register, chat, pay: the whole network once, with a summary", c.devUp},
	})
}

// The demo's model and prices. The built-in engine serves the image's test
// checkpoint; the price is high so that the few tokens of one chat earn an
// amount worth more than the transfer's fee (nanoton per 1M tokens: 1000 TON).
const (
	devModel     = "cocoon-test"
	devPrice     = 1_000_000_000_000
	devFund      = 1_000_000_000_000 // 1000 TON minted to the hot wallet
	devMemoryMiB = 1024
)

// devNet is one `dev up` run.
type devNet struct {
	c       *Context
	dir     string
	src     string // where to look for the checkout ("" or "."; the working directory)
	noVM    bool
	start   time.Time
	log     *slog.Logger
	closers []func()

	image    string            // built image (VM path)
	tpm      map[string]string // predicted PCRs (VM path)
	tdxPred  map[string]any    // predicted TDX registers (VM path)
	simSeed  []byte            // no-VM path
	simHash  [32]byte
	simMeas  map[string]string
	regURL   string
	proxyURL string
	vmDone   chan struct{} // closed when the launcher returns (VM path)
	svc      *service.Service
	admin    *api.Client
	payout   *address.Address
	workerID string

	checked []client.Checked
	answer  string
	usage   struct{ Prompt, Completion int64 }
	picked  string
	earned  api.Balance
	report  payout.Report
	batch   *api.Batch
	paidBal uint64
}

func (c *Context) devUp(ctx context.Context, _ *Context, args []string) error {
	fs := c.flags("cocoon dev up [--no-vm] [--dir DIR] [--image DIR] [--prompt TEXT]", "")
	noVM := fs.Bool("no-vm", false, "run the worker inside this process with the simulated TEE (no image, no QEMU): the short version")
	dir := fs.String("dir", "", "working directory for the registry, ledger, keys and logs (default: a new one under the cache, kept)")
	image := fs.String("image", "out/image", "image directory to build into and boot (VM path)")
	prompt := fs.String("prompt", "Once upon a time", "what the client asks the worker")
	maxTokens := fs.Int("max-tokens", 48, "most tokens in the answer")
	src := fs.String("src", ".", "checkout of this project (for --no-vm: the bundled test model), searched upward from here")
	keep := fs.Bool("keep", false, "after the summary, keep the network running (registry, dashboard, worker, proxy) until interrupted")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	d := &devNet{c: c, noVM: *noVM, start: time.Now(), image: *image, src: *src}
	if *dir == "" {
		base := filepath.Join(defaultCache(), "dev")
		if err := os.MkdirAll(base, 0o700); err != nil {
			return err
		}
		var err error
		if *dir, err = os.MkdirTemp(base, time.Now().UTC().Format("20060102T150405-")); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	d.dir = *dir
	logf, err := os.Create(filepath.Join(d.dir, "dev.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	d.log = slog.New(slog.NewTextHandler(logf, nil))
	defer d.close()
	d.step("working directory %s (logs: dev.log, console.log)", d.dir)
	if err := d.run(ctx, *prompt, *maxTokens); err != nil {
		return fmt.Errorf("dev up: %w (logs in %s)", err, d.dir)
	}
	if *keep {
		d.keep(ctx)
	}
	return nil
}

// keep prints how to use the running network and waits for ctx.
func (d *devNet) keep(ctx context.Context) {
	rd := filepath.Join(d.dir, "registry")
	pol := "--vtpm-policy " + filepath.Join(rd, "vtpm-policy.json")
	if d.noVM {
		pol = "--policy " + filepath.Join(rd, "policy.json") + " --sim-root " + filepath.Join(d.dir, "sim-root.pem")
	}
	fmt.Fprintf(d.c.Stdout, `
The network keeps running; Ctrl-C stops it.
  dashboard        %[1]s/
  OpenAI endpoint  export OPENAI_BASE_URL=%[2]s OPENAI_API_KEY=unused
  workers          cocoon client workers --registry %[1]s %[3]s
  chat             cocoon client chat --registry %[1]s %[3]s "your prompt"
  payouts          cocoon registry payouts --registry %[1]s --token-file %[4]s [--run]
`, d.regURL, d.proxyURL, pol, filepath.Join(rd, "admin.token"))
	<-ctx.Done()
}

// step prints one progress line with the time since the start.
func (d *devNet) step(f string, a ...any) {
	fmt.Fprintf(d.c.Stdout, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(f, a...))
}

func (d *devNet) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

func (d *devNet) run(ctx context.Context, prompt string, maxTokens int) error {
	if !d.noVM {
		if err := d.buildImage(ctx); err != nil {
			return err
		}
	} else if err := d.simulator(); err != nil {
		return err
	}
	if err := d.startRegistry(ctx); err != nil {
		return err
	}
	if err := d.payoutAddress(); err != nil {
		return err
	}
	var err error
	if d.noVM {
		err = d.startLocalWorker(ctx)
	} else {
		err = d.bootWorker(ctx)
	}
	if err != nil {
		return err
	}
	if err := d.waitRegistered(ctx); err != nil {
		return err
	}
	cl, err := d.client()
	if err != nil {
		return err
	}
	if err := d.verify(ctx, cl); err != nil {
		return err
	}
	if err := d.chat(ctx, cl, prompt, maxTokens); err != nil {
		return err
	}
	if err := d.waitEarned(ctx); err != nil {
		return err
	}
	if err := d.pay(ctx); err != nil {
		return err
	}
	d.summary()
	return nil
}

// buildImage builds the image and predicts what its boot will measure:
// the vTPM PCRs the registry pins (the dev profile's attestation), and the
// TDX registers for the summary.
func (d *devNet) buildImage(ctx context.Context) error {
	d.step("building the image into %s (the first build fetches the pinned Debian inputs)", d.image)
	src, err := findSource(d.srcDir())
	if err != nil {
		return err
	}
	// The pinned Debian inputs: downloaded once, checked every time.
	if err := d.c.sub(ctx, io.Discard, "image", "fetch", "--quiet", "--src", src); err != nil {
		return err
	}
	if err := d.c.sub(ctx, io.Discard, "image", "build", "--quiet", "--src", src, "--out", d.image); err != nil {
		return err
	}
	d.step("image built; predicting its measurements")
	ver, err := installedQEMU(ctx)
	if err != nil {
		return err
	}
	// PCR 4 and 9 (kernel; command line and initrd) first: the static
	// config expects them, and PCR 15 measures that static config.
	predict := func(runtimeLog string) (map[string]string, error) {
		args := []string{"measure", "tpm", "--image", d.image, "--memory", fmt.Sprint(devMemoryMiB), "--qemu", ver, "--json"}
		if runtimeLog != "" {
			args = append(args, "--runtime", runtimeLog)
		}
		var out bytes.Buffer
		if err := d.c.sub(ctx, &out, args...); err != nil {
			return nil, err
		}
		var pcrs map[string]string
		if err := json.Unmarshal(out.Bytes(), &pcrs); err != nil {
			return nil, fmt.Errorf("measure tpm: %w", err)
		}
		return pcrs, nil
	}
	boot, err := predict("")
	if err != nil {
		return err
	}
	b, err := d.vmStatic(map[string]string{"pcr4": boot["pcr4"], "pcr9": boot["pcr9"]}).StaticBytes()
	if err != nil {
		return err
	}
	rl, err := runtime.BootLog(b, nil).Marshal()
	if err != nil {
		return err
	}
	rlPath := filepath.Join(d.dir, "runtime.log")
	if err := os.WriteFile(rlPath, rl, 0o644); err != nil {
		return err
	}
	if d.tpm, err = predict(rlPath); err != nil {
		return err
	}
	var out bytes.Buffer
	if err := d.c.sub(ctx, &out, "measure", "tdx", "--image", d.image, "--json"); err != nil {
		return err
	}
	if err := json.Unmarshal(out.Bytes(), &d.tdxPred); err != nil {
		return fmt.Errorf("measure tdx: %w", err)
	}
	return nil
}

// vmStatic is the guest's measured config: production policy (no
// simulator), and the boot registers it must find.
func (d *devNet) vmStatic(expect map[string]string) initconfig.Static {
	return initconfig.Static{Model: devModel, Policy: "production", Expect: expect}
}

// installedQEMU is "MAJOR.MINOR" of the installed QEMU: the kernel's setup
// header is patched by QEMU, so PCR 4 depends on it.
func installedQEMU(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "qemu-system-x86_64", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("qemu-system-x86_64 --version: %w (run `make setup`, or use --no-vm)", err)
	}
	m := regexp.MustCompile(`version (\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("qemu-system-x86_64 --version: no version in %q", out)
	}
	return string(m[1]), nil
}

// simulator makes the seed of the TDX simulator the local worker will use
// and computes the image hash its quotes will carry (after the worker
// replays the static config into RTMR3, as an init would).
func (d *devNet) simulator() error {
	d.simSeed = make([]byte, sim.SeedSize)
	if _, err := rand.Read(d.simSeed); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "sim-seed.hex"), []byte(hex.EncodeToString(d.simSeed)+"\n"), 0o600); err != nil {
		return err
	}
	s, err := sim.New(sim.Options{Seed: d.simSeed})
	if err != nil {
		return err
	}
	static, err := d.localStatic().StaticBytes()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "static.json"), static, 0o644); err != nil {
		return err
	}
	for _, e := range runtime.BootLog(static, nil) {
		if err := s.Extend(e); err != nil {
			return err
		}
	}
	m, err := s.Measurements()
	if err != nil {
		return err
	}
	d.simHash = m.ImageHash()
	d.simMeas = map[string]string{"mrtd": hex.EncodeToString(m.MRTD[:])}
	for i, r := range m.RTMR {
		d.simMeas[fmt.Sprintf("rtmr%d", i)] = hex.EncodeToString(r[:])
	}
	root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Root().Raw})
	return os.WriteFile(filepath.Join(d.dir, "sim-root.pem"), root, 0o644)
}

// localStatic is the static config of the local worker: the dev policy,
// the only one under which a worker uses the simulator.
func (d *devNet) localStatic() initconfig.Static {
	return initconfig.Static{Model: devModel, Policy: "dev"}
}

// startRegistry writes a registry config (SQLite, the emulated ledger with
// a funded hot wallet, the policy of this network) and serves it
// in-process on a loopback port.
func (d *devNet) startRegistry(ctx context.Context) error {
	rd := filepath.Join(d.dir, "registry")
	if err := os.MkdirAll(rd, 0o700); err != nil {
		return err
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(rd, "admin.token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	cfg := map[string]any{
		"schema": config.Schema, "listen": "127.0.0.1:0", "store": "sqlite:registry.db",
		"admin_token_file": "admin.token",
		"models":           map[string]any{devModel: map[string]uint64{"base": devPrice, "min": devPrice / 10, "max": devPrice * 10}},
		"chain":            map[string]any{"kind": "emulated", "state": "ledger.bin", "fund": devFund},
		"wallet":           map[string]any{"key_file": "hot-wallet.key"},
		// Payouts run when the demo asks (admin API), not on a timer.
		"payout": map[string]any{"min": 0, "every_s": 0, "interval_s": 0},
	}
	if d.noVM {
		pol := map[string]any{"schema": "cocoon-policy/v1", "allow_simulated": true, "image_hashes": []string{hex.EncodeToString(d.simHash[:])}}
		if err := writeJSON(filepath.Join(rd, "policy.json"), pol); err != nil {
			return err
		}
		cfg["policy"], cfg["simulator_root"] = "policy.json", filepath.Join(d.dir, "sim-root.pem")
		cfg["allow"] = []string{hex.EncodeToString(d.simHash[:])}
	} else {
		// The development boot path attests with the swtpm vTPM: its AK is
		// made fresh with every boot's TPM state and certified by nobody, so
		// the policy pins the predicted boot (PCR 4 kernel, PCR 9 command
		// line and initrd, PCR 15 the static config) and accepts any AK.
		// DEVELOPMENT ONLY: ratls.VTPMPolicy explains why.
		vp := map[string]any{"schema": ratls.VTPMPolicySchema, "allow_any_ak": true,
			"pcrs": []map[string]string{{"4": d.tpm["pcr4"], "9": d.tpm["pcr9"], "15": d.tpm["pcr15"]}}}
		if err := writeJSON(filepath.Join(rd, "vtpm-policy.json"), vp); err != nil {
			return err
		}
		cfg["vtpm_policy"] = "vtpm-policy.json"
	}
	cfgPath := filepath.Join(rd, "registry.json")
	if err := writeJSON(cfgPath, cfg); err != nil {
		return err
	}
	rc, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if d.svc, err = service.New(ctx, rc, service.Options{Log: d.log.With("part", "registry")}); err != nil {
		return err
	}
	d.closers = append(d.closers, func() { d.svc.Close() })
	// Listen on all of loopback's 127.0.0.1: QEMU's user network reaches
	// it from the guest as 10.0.2.2.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.svc.Serve(sctx, ln); close(done) }()
	d.closers = append(d.closers, func() { stop(); <-done })
	d.regURL = "http://" + ln.Addr().String()
	d.admin = &api.Client{BaseURL: d.regURL, Token: token, HTTP: &http.Client{Timeout: time.Minute}}
	d.step("registry serving %s (dashboard %s/); SQLite store, emulated TON ledger, hot wallet %s funded with %s TON",
		d.regURL, d.regURL, d.svc.Wallet.Address().String(), nanotonStr(devFund))
	return nil
}

// payoutAddress makes the GPU owner's wallet: a wallet v4r2 address of a
// fresh key (kept in the working directory), where earnings go.
func (d *devNet) payoutAddress() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "owner-wallet.key"), []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		return err
	}
	d.payout, err = wallet.AddressFromPubKey(pub, wallet.V4R2, wallet.DefaultSubwallet)
	if err != nil {
		return err
	}
	d.payout.SetBounce(false)
	return nil
}

// startLocalWorker runs guest/worker in this process with the simulator.
func (d *devNet) startLocalWorker(ctx context.Context) error {
	w, endpoint, err := d.localWorker(ctx, "dev-worker", filepath.Join(d.dir, "static.json"), true)
	if err != nil {
		return err
	}
	d.workerID = w.ID()
	d.step("worker %s serving %s over RA-TLS on %s (SIMULATED TDX quote: test key, dev policy only)", shortHex(d.workerID), devModel, endpoint)
	return nil
}

// localWorker starts a worker with the simulator (this run's seed) and
// the given static config; join gives it the registry section, so it
// registers, heartbeats and sends its receipts by itself.
func (d *devNet) localWorker(ctx context.Context, name, static string, join bool) (*worker.Worker, string, error) {
	src, err := findSource(d.srcDir())
	if err != nil {
		return nil, "", err
	}
	td := filepath.Join(src, "guest", "engine", "llama2", "testdata")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	endpoint := ln.Addr().String()
	cfg := &worker.Config{
		Schema: worker.ConfigSchema, WorkerID: name, Listen: endpoint, HealthListen: "127.0.0.1:0",
		Attestation: "sim", StaticConfig: static,
		Model:       worker.Model{ID: devModel, Engine: "builtin", Checkpoint: filepath.Join(td, "model.bin"), Tokenizer: filepath.Join(td, "tokenizer.bin")},
		ReceiptsDir: filepath.Join(d.dir, name+"-receipts"), MaxInFlight: 4, CertValidityS: 3600,
		SimSeedFile: filepath.Join(d.dir, "sim-seed.hex"),
	}
	if join {
		cfg.Registry = &worker.Registry{URL: d.regURL, Payout: d.payout.String(), Endpoint: endpoint, Price: devPrice, ReceiptsEveryS: 1}
	}
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, "", err
	}
	w, err := worker.New(ctx, cfg, worker.Deps{Logger: d.log.With("part", name)})
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Serve(wctx, ln); close(done) }()
	d.closers = append(d.closers, func() { stop(); <-done; w.Close() })
	return w, endpoint, nil
}

// bootWorker boots the image through the host launcher (dev profile: TCG,
// OVMF, swtpm) with a forward from a loopback port to the worker's RA-TLS
// port, and the worker told where the registry is.
func (d *devNet) bootWorker(ctx context.Context) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fwdPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.regURL, "http://"))
	static := d.vmStatic(map[string]string{"pcr4": d.tpm["pcr4"], "pcr9": d.tpm["pcr9"]})
	endpoint := fmt.Sprintf("127.0.0.1:%d", fwdPort)
	guest := map[string]any{"static": static, "runtime": map[string]any{
		"network": map[string]any{"mode": "dhcp"},
		// QEMU's user network: the host's loopback is 10.0.2.2.
		"worker_args": []string{"-registry", "http://10.0.2.2:" + port, "-payout", d.payout.String(),
			"-endpoint", endpoint, "-price", fmt.Sprint(devPrice), "-receipts-every-s", "1"}}}
	img, err := filepath.Abs(d.image)
	if err != nil {
		return err
	}
	// One vCPU: under TCG a second one saves little here, and SMP guests
	// have been seen to panic in the kernel's live code patching (int3
	// oops in sched_clock_cpu) under multi-threaded TCG.
	hostCfg := map[string]any{"schema": "cocoon-host/v1", "profile": "dev", "image": img, "cpus": 1, "memory_mib": devMemoryMiB,
		"restart":  map[string]any{"max": 0},
		"forwards": []map[string]any{{"host": endpoint, "guest_port": 8443}}, "guest": guest}
	cfgPath := filepath.Join(d.dir, "host.json")
	if err := writeJSON(cfgPath, hostCfg); err != nil {
		return err
	}
	console, err := os.Create(filepath.Join(d.dir, "console.log"))
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	lctx, stop := context.WithCancel(ctx)
	sub := &Context{Stdin: strings.NewReader(""), Stdout: io.MultiWriter(console, pw), Stderr: console,
		Args: []string{"host", "launch", "--state", filepath.Join(d.dir, "host-state"), cfgPath}}
	done := make(chan int, 1)
	d.vmDone = make(chan struct{})
	go func() { done <- sub.Execute(lctx); pw.Close(); close(d.vmDone) }()
	d.closers = append(d.closers, func() { stop(); <-done; console.Close() })
	d.step("booting the appliance under QEMU (dev profile: TCG, OVMF, swtpm; worker RA-TLS forwarded to %s)", endpoint)
	// Milestones of the console, as they come. The launcher prints the
	// guest's own log lines (host channel) prefixed "guest: ", and the serial
	// console unprefixed: each milestone once.
	go func() {
		seen := map[string]bool{}
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "guest: ")
			for _, m := range []string{"cocoon-init: registers", "cocoon-init: worker started", "FATAL", "serving model"} {
				if strings.Contains(line, m) && !seen[m] {
					seen[m] = true
					d.step("  console: %s", trimLine(line))
				}
			}
		}
	}()
	return nil
}

func trimLine(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// waitRegistered polls the registry until the worker is listed.
func (d *devNet) waitRegistered(ctx context.Context) error {
	limit := 30 * time.Second
	if !d.noVM {
		limit = 4 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ws, err := d.admin.Workers(wctx, devModel)
		if err == nil {
			for _, w := range ws {
				if d.workerID == "" || w.ID == d.workerID {
					d.workerID = w.ID
					var ev api.Evidence
					json.Unmarshal(w.Evidence, &ev)
					d.step("worker %s registered: %s evidence, admitted by %q", shortHex(w.ID), ev.Kind, ev.Policy.Rule)
					return nil
				}
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("the worker did not register within %s (see dev.log / console.log)", limit)
		case <-d.vmDone: // nil on the no-VM path: never ready
			return errors.New("the appliance stopped before its worker registered (see console.log)")
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// client is the app developer's side: its own copy of the network's policy
// (the files this run wrote), never the registry's verdict.
func (d *devNet) client() (*client.Client, error) {
	var p client.Policy
	rd := filepath.Join(d.dir, "registry")
	var err error
	if d.noVM {
		if p, err = client.LoadPolicy(client.PolicyFiles{TDX: filepath.Join(rd, "policy.json"), SimRoot: filepath.Join(d.dir, "sim-root.pem")}); err != nil {
			return nil, err
		}
	} else if p, err = client.LoadPolicy(client.PolicyFiles{VTPM: filepath.Join(rd, "vtpm-policy.json")}); err != nil {
		return nil, err
	}
	return &client.Client{Registry: &api.Client{BaseURL: d.regURL, HTTP: &http.Client{Timeout: time.Minute}}, Policy: p, Log: d.log.With("part", "client")}, nil
}

func (d *devNet) verify(ctx context.Context, cl *client.Client) error {
	checked, err := cl.Workers(ctx, devModel)
	if err != nil {
		return err
	}
	d.checked = checked
	ok := 0
	for _, ch := range checked {
		verdict := "VERIFIED"
		if ch.Err != nil {
			verdict = "REFUSED: " + ch.Err.Error()
		} else {
			ok++
		}
		d.step("client verified worker %s locally: %s", shortHex(ch.Info.ID), verdict)
		for _, k := range ch.Checks {
			mark := "ok  "
			if !k.OK {
				mark = "FAIL"
			}
			d.step("    %s %s: %s", mark, k.Name, k.Detail)
		}
	}
	if ok == 0 {
		return errors.New("the client verified no worker")
	}
	return nil
}

// chat runs the client's proxy on a loopback port and sends it what an
// OpenAI SDK sends: a streaming chat completion with usage in the last
// chunk.
func (d *devNet) chat(ctx context.Context, cl *client.Client, prompt string, maxTokens int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: cl.Proxy(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.closers = append(d.closers, func() { srv.Close() })
	base := "http://" + ln.Addr().String() + "/v1"
	d.proxyURL = base
	d.step("client proxy (OpenAI-compatible, attestation + RA-TLS on your behalf) on %s", base)
	body, _ := json.Marshal(map[string]any{
		"model": devModel, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"max_tokens": maxTokens, "stream": true, "stream_options": map[string]bool{"include_usage": true},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer unused")
	req.Header.Set("Accept", "application/json")
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(tctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("chat through the proxy: %s: %s", resp.Status, b)
	}
	d.picked = resp.Header.Get(client.HeaderWorker)
	d.step("chat: %q -> worker %s, streaming:", prompt, shortHex(d.picked))
	fmt.Fprint(d.c.Stdout, "          ")
	var text strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				Prompt     int64 `json:"prompt_tokens"`
				Completion int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("chat stream: %w", err)
		}
		for _, ch := range chunk.Choices {
			fmt.Fprint(d.c.Stdout, ch.Delta.Content)
			text.WriteString(ch.Delta.Content)
		}
		if chunk.Usage != nil {
			d.usage.Prompt, d.usage.Completion = chunk.Usage.Prompt, chunk.Usage.Completion
		}
	}
	fmt.Fprintln(d.c.Stdout)
	if err := sc.Err(); err != nil {
		return fmt.Errorf("chat stream: %w", err)
	}
	d.answer = text.String()
	if d.answer == "" || d.usage.Completion == 0 {
		return errors.New("chat: empty answer or no usage")
	}
	d.step("chat done: %d prompt + %d completion tokens", d.usage.Prompt, d.usage.Completion)
	return nil
}

// waitEarned waits for the worker's signed receipt to reach the registry
// and be credited.
func (d *devNet) waitEarned(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		bal, err := d.admin.Balances(wctx)
		if err == nil {
			for _, b := range bal {
				if b.Worker == d.workerID && b.Earned > 0 {
					d.earned = b
					d.step("receipt credited: worker %s earned %s TON", shortHex(d.workerID), nanotonStr(b.Earned))
					return nil
				}
			}
		}
		select {
		case <-wctx.Done():
			return errors.New("no receipt was credited within a minute")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pay runs a payout through the admin API and reads the ledger.
func (d *devNet) pay(ctx context.Context) error {
	raw, err := d.admin.RunPayouts(ctx)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &d.report); err != nil {
		return err
	}
	batches, err := d.admin.Payouts(ctx, 10)
	if err != nil {
		return err
	}
	for i := range batches {
		for _, it := range batches[i].Items {
			if it.Worker == d.workerID {
				d.batch = &batches[i]
			}
		}
	}
	if d.batch == nil || d.batch.State != "confirmed" {
		return fmt.Errorf("payout: no confirmed batch for the worker (report %+v)", d.report)
	}
	acc, err := d.svc.Ledger.Account(ctx, d.payout)
	if err != nil {
		return err
	}
	d.paidBal = acc.Balance
	d.step("payout batch %d confirmed on the ledger: tx %s, fees %s TON", d.batch.ID, d.batch.TxHash, nanotonStr(d.batch.Fees))
	return nil
}

func (d *devNet) summary() {
	w := d.c.Stdout
	fmt.Fprintf(w, "\n=== cocoon dev up: summary (%.1f s) ===\n", time.Since(d.start).Seconds())
	if d.noVM {
		fmt.Fprintln(w, "mode              --no-vm: local worker process, SIMULATED TDX quotes (test key)")
		fmt.Fprintf(w, "image hash        %x (of the simulator's registers)\n", d.simHash)
		for _, k := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
			fmt.Fprintf(w, "%-17s %s\n", k, d.simMeas[k])
		}
	} else {
		fmt.Fprintf(w, "mode              appliance under QEMU (TCG + OVMF + swtpm), vTPM evidence\n")
		fmt.Fprintf(w, "image             %s\n", d.image)
		for _, k := range []string{"pcr4", "pcr9", "pcr15"} {
			fmt.Fprintf(w, "%-17s %s (predicted, pinned by the registry and the client)\n", k, d.tpm[k])
		}
		for _, k := range []string{"mrtd", "rtmr1", "rtmr2"} {
			fmt.Fprintf(w, "tdx %-13s %v (predicted for a TDX host)\n", k, d.tdxPred[k])
		}
	}
	for _, ch := range d.checked {
		verdict := "VERIFIED"
		if ch.Err != nil {
			verdict = "REFUSED (" + ch.Err.Error() + ")"
		}
		fmt.Fprintf(w, "worker            %s at %s: %s by the client\n", ch.Info.ID, ch.Info.Endpoint, verdict)
	}
	fmt.Fprintf(w, "answer            %q (the bundled test checkpoint has random weights: token soup by design)\n", d.answer)
	fmt.Fprintf(w, "tokens            %d prompt + %d completion\n", d.usage.Prompt, d.usage.Completion)
	fmt.Fprintf(w, "earned            %s TON (asked %s TON per 1M tokens; credited at the lower of that and the market price)\n", nanotonStr(d.earned.Earned), nanotonStr(devPrice))
	fmt.Fprintf(w, "payout            batch %d: %s TON to %s, fees %s TON\n", d.batch.ID, nanotonStr(d.batch.Total), d.payout.String(), nanotonStr(d.batch.Fees))
	fmt.Fprintf(w, "ledger tx         %s\n", d.batch.TxHash)
	fmt.Fprintf(w, "owner balance     %s TON on the emulated ledger\n", nanotonStr(d.paidBal))
	fmt.Fprintf(w, "files             %s\n", d.dir)
}

// sub runs another cocoon command with its output to out.
func (c *Context) sub(ctx context.Context, out io.Writer, args ...string) error {
	s := &Context{Stdin: strings.NewReader(""), Stdout: out, Stderr: c.Stderr, Args: args}
	return s.dispatch(ctx, "cocoon", args, s.commands())
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// srcDir is where to look for the checkout: --src, else the working
// directory.
func (d *devNet) srcDir() string {
	if d.src == "" {
		return "."
	}
	return d.src
}
