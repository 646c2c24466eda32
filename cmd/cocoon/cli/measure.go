package cli

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cocoon-appliance/cocoon/image/build"
	"github.com/cocoon-appliance/cocoon/image/manifest"
	"github.com/cocoon-appliance/cocoon/measure/authenticode"
	"github.com/cocoon-appliance/cocoon/measure/imagehash"
	"github.com/cocoon-appliance/cocoon/measure/platform"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/qemukernel"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
	"github.com/cocoon-appliance/cocoon/measure/tdx"
	"github.com/cocoon-appliance/cocoon/measure/tpm"
)

func (c *Context) measure(ctx context.Context, _ *Context, args []string) error {
	return c.dispatch(ctx, "cocoon measure", args, []command{
		{"tdx", "predict MRTD, RTMR0-3 and the image hash of a TDX direct boot", c.measureTDX},
		{"tpm", "predict the vTPM PCRs of the development boot path", c.measureTPM},
		{"quote", "verify a TDX quote and validate it against a policy", c.measureQuote},
	})
}

// bootInputs are the flags shared by tdx and tpm.
type bootInputs struct {
	image, firmware, kernel, initrd, cmdline, cmdlineFile string
	cpus                                                  int
	memory                                                uint64
	profile, runtimeLog                                   string
	events, asJSON                                        bool
}

func (b *bootInputs) register(fs *flag.FlagSet, withFirmware bool) {
	fs.StringVar(&b.image, "image", "", "a built image directory: takes firmware, kernel, initrd and cmdline from its manifest")
	if withFirmware {
		fs.StringVar(&b.firmware, "firmware", "", "OVMF.fd (TDVF)")
	}
	fs.StringVar(&b.kernel, "kernel", "", "vmlinuz")
	fs.StringVar(&b.initrd, "initrd", "", "initrd")
	fs.StringVar(&b.cmdline, "cmdline", "", "kernel command line (the -append string)")
	fs.StringVar(&b.cmdlineFile, "cmdline-file", "", "file holding the kernel command line")
	fs.IntVar(&b.cpus, "cpus", 2, "vCPUs")
	fs.Uint64Var(&b.memory, "memory", 4096, "guest memory in MiB")
	fs.StringVar(&b.profile, "profile", tdx.DefaultProfile, "VM profile: "+profileNames())
	fs.StringVar(&b.runtimeLog, "runtime", "", "runtime event log (RTMR3 / PCR 15) the init will write; default: none")
	fs.BoolVar(&b.events, "events", false, "print every predicted event")
	fs.BoolVar(&b.asJSON, "json", false, "print JSON")
}

func profileNames() string {
	var n []string
	for _, p := range tdx.Profiles {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// files holds the loaded boot inputs.
type files struct {
	firmware, kernel, initrd []byte
	cmdline                  string
	runtime                  runtime.Log
}

func (b *bootInputs) load(needFirmware bool) (*files, error) {
	f := &files{}
	if b.image != "" {
		if b.firmware != "" || b.kernel != "" || b.initrd != "" || b.cmdline != "" || b.cmdlineFile != "" {
			return nil, fmt.Errorf("%w: --image takes the boot files from the image; do not combine it with --firmware/--kernel/--initrd/--cmdline", errUsage)
		}
		m, err := manifest.Load(filepath.Join(b.image, build.ManifestName))
		if err != nil {
			return nil, err
		}
		read := func(name string) ([]byte, error) { return readVerified(b.image, m, name) }
		if needFirmware {
			if f.firmware, err = read(build.FirmwareName); err != nil {
				return nil, err
			}
		}
		if f.kernel, err = read(build.VmlinuzName); err != nil {
			return nil, err
		}
		if f.initrd, err = read(build.InitrdName); err != nil {
			return nil, err
		}
		f.cmdline = m.Cmdline
	} else {
		missing := []string{}
		if needFirmware && b.firmware == "" {
			missing = append(missing, "--firmware")
		}
		if b.kernel == "" {
			missing = append(missing, "--kernel")
		}
		if b.initrd == "" {
			missing = append(missing, "--initrd")
		}
		if b.cmdline == "" && b.cmdlineFile == "" {
			missing = append(missing, "--cmdline")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%w: need --image, or %s", errUsage, strings.Join(missing, " "))
		}
		var err error
		if needFirmware {
			if f.firmware, err = os.ReadFile(b.firmware); err != nil {
				return nil, err
			}
		}
		if f.kernel, err = os.ReadFile(b.kernel); err != nil {
			return nil, err
		}
		if f.initrd, err = os.ReadFile(b.initrd); err != nil {
			return nil, err
		}
		f.cmdline = b.cmdline
		if b.cmdlineFile != "" {
			c, err := os.ReadFile(b.cmdlineFile)
			if err != nil {
				return nil, err
			}
			f.cmdline = strings.TrimRight(string(c), "\n")
		}
	}
	if b.runtimeLog != "" {
		r, err := os.Open(b.runtimeLog)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		if f.runtime, err = runtime.Parse(r); err != nil {
			return nil, fmt.Errorf("%s: %w", b.runtimeLog, err)
		}
	}
	return f, nil
}

// readVerified reads an image file and checks it against the manifest, so a
// prediction is always of the image the manifest names.
func readVerified(dir string, m *manifest.Manifest, name string) ([]byte, error) {
	o, ok := m.Output(name)
	if !ok {
		return nil, fmt.Errorf("manifest lists no %s", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	if got := sha256hex(b); got != o.SHA256 || int64(len(b)) != o.Size {
		return nil, fmt.Errorf("%s: sha256 %s (%d bytes), manifest says %s (%d bytes)", filepath.Join(dir, name), got, len(b), o.SHA256, o.Size)
	}
	return b, nil
}

func hexOrNull(b []byte) any {
	if b == nil {
		return nil
	}
	return hex.EncodeToString(b)
}

func parseHex8(s, what string) ([8]byte, error) {
	var out [8]byte
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil || len(b) != 8 {
		return out, fmt.Errorf("%w: %s %q: want 16 hex digits (8 bytes as in the TD report, little endian)", errUsage, what, s)
	}
	copy(out[:], b)
	return out, nil
}

func (c *Context) measureTDX(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("tdx", "cocoon measure tdx (--image DIR | --firmware F --kernel K --initrd I --cmdline C) [--cpus N] [--memory MiB] [--profile P] [--acpi-tables FILE] [--runtime LOG] [--events] [--json]")
	var b bootInputs
	b.register(fs, true)
	acpi := fs.String("acpi-tables", "", "platform capture: QEMU's ACPI blobs and boot variables (RTMR0 is unknown without it; see measure/platform)")
	attrs := fs.String("td-attributes", "0000001000000000", "TDATTRIBUTES for the image hash, as quoted (default: SEPT_VE_DISABLE only)")
	xfam := fs.String("xfam", "", "XFAM for the image hash, as quoted (the image hash is null without it)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	prof, err := tdx.LookupProfile(b.profile)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	f, err := b.load(true)
	if err != nil {
		return err
	}
	in := tdx.Inputs{Firmware: f.firmware, Kernel: f.kernel, Initrd: f.initrd, Cmdline: f.cmdline,
		CPUs: b.cpus, MemoryMiB: b.memory, Profile: prof, Runtime: f.runtime}
	if *acpi != "" {
		if in.Platform, err = platform.Load(*acpi); err != nil {
			return err
		}
	}
	p, err := tdx.Predict(in)
	if err != nil {
		return err
	}
	var imageHash []byte
	if *xfam != "" && p.Known[0] {
		var m imagehash.Measurements
		if m.TDAttributes, err = parseHex8(*attrs, "--td-attributes"); err != nil {
			return err
		}
		if m.XFAM, err = parseHex8(*xfam, "--xfam"); err != nil {
			return err
		}
		copy(m.MRTD[:], p.MRTD)
		for i := range p.RTMR {
			copy(m.RTMR[i][:], p.RTMR[i])
		}
		h := m.ImageHash()
		imageHash = h[:]
	}
	if b.asJSON {
		out := map[string]any{"mrtd": hexOrNull(p.MRTD), "rtmr0": hexOrNull(p.RTMR[0]), "rtmr1": hexOrNull(p.RTMR[1]),
			"rtmr2": hexOrNull(p.RTMR[2]), "rtmr3": hexOrNull(p.RTMR[3]), "image_hash": hexOrNull(imageHash)}
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.Stdout, "profile     %s (%s), %d vCPUs, %d MiB\n", prof.Name, prof.Description, b.cpus, b.memory)
		fmt.Fprintf(c.Stdout, "mrtd        %x\n", p.MRTD)
		for i, r := range p.RTMR {
			if r == nil {
				fmt.Fprintf(c.Stdout, "rtmr%d       unknown: needs --acpi-tables (QEMU's ACPI tables and boot variables, captured once per VM profile)\n", i)
				continue
			}
			fmt.Fprintf(c.Stdout, "rtmr%d       %x\n", i, r)
		}
		if imageHash != nil {
			fmt.Fprintf(c.Stdout, "image_hash  %x\n", imageHash)
		} else {
			fmt.Fprintln(c.Stdout, "image_hash  unknown: needs every register and --xfam")
		}
	}
	if b.events {
		w := c.Stdout
		if b.asJSON {
			w = c.Stderr
		}
		printTDXEvents(w, p)
	}
	return nil
}

func printTDXEvents(w io.Writer, p *tdx.Prediction) {
	fmt.Fprintln(w, "\nMRTD (TDH.MEM.PAGE.ADD / TDH.MR.EXTEND per TDVF section)")
	for _, s := range p.MRTDEvents {
		fmt.Fprintln(w, "  "+s)
	}
	fmt.Fprintf(w, "\nkernel as OVMF loads it: %s\n", p.KernelSource)
	for _, f := range p.KernelFields {
		fmt.Fprintln(w, "  "+f.String())
	}
	fmt.Fprintf(w, "load options measured: %q\n\nEvents\n", p.LoadOptions)
	for _, e := range p.Events {
		fmt.Fprintln(w, "  "+e.String())
	}
}

func (c *Context) measureTPM(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("tpm", "cocoon measure tpm (--image DIR | --kernel K --initrd I --cmdline C) [--memory MiB] [--qemu VERSION] [--runtime LOG] [--events] [--json]")
	var b bootInputs
	b.register(fs, false)
	qemu := fs.String("qemu", "7.2", "QEMU version of the development host (Debian bookworm: 7.2)")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	f, err := b.load(false)
	if err != nil {
		return err
	}
	qp := qemukernel.Params{QEMUVersion: *qemu, Machine: qemukernel.MachineQ35, MemoryMiB: b.memory, InitrdSize: uint64(len(f.initrd)), Cmdline: f.cmdline}
	patched, err := qemukernel.Patch(f.kernel, qp)
	if err != nil {
		return err
	}
	kd, err := authenticode.Digest(patched, crypto.SHA256)
	if err != nil {
		return err
	}
	p, err := tpm.Predict(tpm.Inputs{KernelAuthenticode: kd, Cmdline: qemukernel.LoadOptions(qp), Initrd: f.initrd, Runtime: f.runtime})
	if err != nil {
		return err
	}
	if b.asJSON {
		out := map[string]string{}
		for i, v := range p.PCR {
			out[fmt.Sprintf("pcr%d", i)] = hex.EncodeToString(v)
		}
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, i := range []int{tpm.PCRKernel, tpm.PCRLinux, runtime.PCR} {
		if v, ok := p.PCR[i]; ok {
			fmt.Fprintf(c.Stdout, "pcr%-2d %x\n", i, v)
		}
	}
	if b.events {
		for _, e := range p.Events {
			fmt.Fprintln(c.Stdout, "  "+e.String())
		}
	}
	return nil
}

// collateralFiles are the file names `measure quote --collateral DIR`
// reads: Intel PCS responses as fetched, with their issuer-chain headers
// saved as PEM files.
var collateralFiles = map[string]func(*quote.Collateral) *[]byte{
	"tcb_info.json":                func(c *quote.Collateral) *[]byte { return &c.TCBInfo },
	"tcb_info_issuer_chain.pem":    func(c *quote.Collateral) *[]byte { return &c.TCBInfoIssuerChain },
	"qe_identity.json":             func(c *quote.Collateral) *[]byte { return &c.QEIdentity },
	"qe_identity_issuer_chain.pem": func(c *quote.Collateral) *[]byte { return &c.QEIdentityIssuerChain },
	"pck_crl.der":                  func(c *quote.Collateral) *[]byte { return &c.PCKCRL },
	"pck_crl_issuer_chain.pem":     func(c *quote.Collateral) *[]byte { return &c.PCKCRLIssuerChain },
	"root_ca_crl.der":              func(c *quote.Collateral) *[]byte { return &c.RootCACRL },
}

func loadCollateral(dir string) (*quote.Collateral, error) {
	c := &quote.Collateral{}
	for name, field := range collateralFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		*field(c) = b
	}
	return c, nil
}

func (c *Context) measureQuote(_ context.Context, _ *Context, args []string) error {
	fs := c.flags("quote", "cocoon measure quote --policy FILE [--collateral DIR] [--now RFC3339] [--report-data HEX] QUOTE")
	policyPath := fs.String("policy", "", "policy file (see measure/policy; required)")
	collDir := fs.String("collateral", "", "directory with Intel PCS collateral ("+strings.Join(sortedKeys(collateralFiles), ", ")+"); without it only signatures and the certificate chain are checked")
	nowFlag := fs.String("now", "", "verification time, RFC 3339 (default: the current time)")
	rd := fs.String("report-data", "", "expected report data, hex (up to 64 bytes, zero-padded)")
	rest, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *policyPath == "" || len(rest) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: measure quote: want --policy FILE and one quote file", errUsage)
	}
	pol, err := policy.Load(*policyPath)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(rest[0])
	if err != nil {
		return err
	}
	now := time.Now()
	if *nowFlag != "" {
		if now, err = time.Parse(time.RFC3339, *nowFlag); err != nil {
			return fmt.Errorf("%w: --now: %v", errUsage, err)
		}
	}
	opts := quote.Options{Now: now}
	if *collDir != "" {
		if opts.Collateral, err = loadCollateral(*collDir); err != nil {
			return err
		}
	}
	var reportData []byte
	if *rd != "" {
		if reportData, err = hex.DecodeString(*rd); err != nil || len(reportData) > 64 {
			return fmt.Errorf("%w: --report-data: want up to 64 bytes of hex", errUsage)
		}
	}
	q, err := quote.Verify(raw, opts)
	if err != nil {
		fmt.Fprintf(c.Stdout, "verify    FAILED: %v\n", err)
		return fmt.Errorf("measure quote: %s is not a genuine TDX quote: %w", rest[0], err)
	}
	how := "signatures and PCK chain to Intel's root (no collateral: TCB level and revocation not checked)"
	if opts.Collateral != nil {
		how = "signatures, PCK chain, TCB info, QE identity and CRLs"
	}
	fmt.Fprintf(c.Stdout, "verify    ok: %s, at %s\n", how, now.UTC().Format(time.RFC3339))
	if m, err := imagehash.FromQuote(q); err == nil {
		h := m.ImageHash()
		fmt.Fprintf(c.Stdout, "image     %x\n", h)
	}
	if err := pol.Validate(policy.Evidence{Quote: q}, reportData); err != nil {
		fmt.Fprintf(c.Stdout, "validate  FAILED: %v\n", err)
		return fmt.Errorf("measure quote: %s does not satisfy %s: %w", rest[0], *policyPath, err)
	}
	fmt.Fprintf(c.Stdout, "validate  ok: %s\n", *policyPath)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
