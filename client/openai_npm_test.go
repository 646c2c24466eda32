package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/client/clienttest"
)

// openAINPMVersion is the openai npm package the test pins: the last 4.x
// (npm view openai versions), which runs on Node 18 and later.
const openAINPMVersion = "4.104.0"

// TestOpenAINPM runs the real OpenAI Node SDK against the proxy: the
// proof that an unmodified OpenAI application works through it. It needs
// node, npm and the npm registry (once: the package is kept in the cache),
// so it runs only with COCOON_OPENAI_NPM=1.
func TestOpenAINPM(t *testing.T) {
	if os.Getenv("COCOON_OPENAI_NPM") != "1" {
		t.Skip("set COCOON_OPENAI_NPM=1 to run the OpenAI Node SDK (openai@" + openAINPMVersion + ", installed from the npm registry into the cache) against the proxy")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("COCOON_OPENAI_NPM=1 but %s is missing: %v", tool, err)
		}
	}
	dir := npmDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pkg := filepath.Join(dir, "node_modules", "openai", "package.json")
	if !installed(pkg, openAINPMVersion) {
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", dir, "openai@"+openAINPMVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install openai@%s: %v\n%s", openAINPMVersion, err, out)
		}
		if !installed(pkg, openAINPMVersion) {
			t.Fatalf("npm installed no openai %s in %s", openAINPMVersion, dir)
		}
	}
	// ESM resolves "openai" from the script's own folder: run a copy
	// next to node_modules.
	script, err := os.ReadFile("testdata/openai_client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "openai_client.mjs")
	if err := os.WriteFile(run, script, 0o644); err != nil {
		t.Fatal(err)
	}

	n := clienttest.New(t)
	w := n.StartWorker(clienttest.WorkerOptions{Allow: true})
	n.Register(w, "", 1_000_000)
	c := tofu(t, n)
	defer c.Close()
	srv := httptest.NewServer(c.Proxy())
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", run, srv.URL+"/v1", clienttest.Model)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("openai@%s: %s", openAINPMVersion, stdout.String())
	var got struct {
		Models []string `json:"models"`
		Whole  struct {
			Object  string `json:"object"`
			Content string `json:"content"`
			Usage   struct {
				Prompt     int `json:"prompt_tokens"`
				Completion int `json:"completion_tokens"`
				Total      int `json:"total_tokens"`
			} `json:"usage"`
			Worker string `json:"worker"`
		} `json:"whole"`
		Stream struct {
			Chunks int    `json:"chunks"`
			Text   string `json:"text"`
			Usage  *struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		} `json:"stream"`
		NotFound *struct {
			Status     int    `json:"status"`
			Code       string `json:"code"`
			IsAPIError bool   `json:"isAPIError"`
		} `json:"notFound"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if len(got.Models) != 1 || got.Models[0] != clienttest.Model {
		t.Errorf("models %q", got.Models)
	}
	if w := got.Whole; w.Object != "chat.completion" || w.Content == "" || w.Usage.Prompt <= 0 || w.Usage.Completion <= 0 || w.Usage.Total != w.Usage.Prompt+w.Usage.Completion {
		t.Errorf("non-streaming: %+v", w)
	}
	if got.Whole.Worker != w.ID {
		t.Errorf("X-Cocoon-Worker %q, want %s", got.Whole.Worker, w.ID)
	}
	if s := got.Stream; s.Chunks < 3 || s.Text == "" || s.Usage == nil || s.Usage.Completion <= 0 {
		t.Errorf("streaming: %+v", s)
	}
	if got.Stream.Text != got.Whole.Content {
		t.Errorf("streamed %q, whole %q (temperature 0)", got.Stream.Text, got.Whole.Content)
	}
	if nf := got.NotFound; nf == nil || nf.Status != 404 || nf.Code != "model_not_found" || !nf.IsAPIError {
		t.Errorf("unknown model: %+v", nf)
	}
}

// npmDir is $COCOON_CACHE/npm/openai-VERSION, else the user cache's.
func npmDir(t *testing.T) string {
	base := os.Getenv("COCOON_CACHE")
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(d, "cocoon")
	}
	dir := filepath.Join(base, "npm", "openai-"+openAINPMVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func installed(pkgJSON, version string) bool {
	b, err := os.ReadFile(pkgJSON)
	if err != nil {
		return false
	}
	var p struct {
		Version string `json:"version"`
	}
	return json.Unmarshal(b, &p) == nil && p.Version == version
}
