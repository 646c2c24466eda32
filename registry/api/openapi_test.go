package api

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// openapiPaths reads the path items of openapi.yaml and their methods:
// the lines "  /path:" under "paths:" and "    method:" under each (a
// YAML subset, enough for a file this package writes by hand).
func openapiPaths(t *testing.T) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	paths := map[string]map[string]bool{}
	in, cur := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			in = true
		case !in:
		case strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":"):
			cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
			paths[cur] = map[string]bool{}
		case cur != "" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			k, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			switch k {
			case "get", "put", "post", "delete", "patch", "head", "options":
				paths[cur][strings.ToUpper(k)] = true
			}
		case line != "" && !strings.HasPrefix(line, " "):
			in = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return paths
}

// Every route the mux serves is documented, and nothing else is.
func TestOpenAPICoversRoutes(t *testing.T) {
	doc := openapiPaths(t)
	served := map[string]map[string]bool{"/": {"GET": true}} // the dashboard
	for _, r := range (&Server{}).routes() {
		p := strings.ReplaceAll(r.path, "...}", "}")
		if served[p] == nil {
			served[p] = map[string]bool{}
		}
		served[p][r.method] = true
	}
	for p, ms := range served {
		for m := range ms {
			if !doc[p][m] {
				t.Errorf("%s %s is served but not in openapi.yaml", m, p)
			}
		}
	}
	for p, ms := range doc {
		for m := range ms {
			if !served[p][m] {
				t.Errorf("%s %s is in openapi.yaml but not served", m, p)
			}
		}
	}
	if len(doc) < 10 {
		t.Fatalf("parsed only %d paths", len(doc))
	}
}
