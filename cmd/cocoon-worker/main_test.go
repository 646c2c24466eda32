package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/cocoon-appliance/cocoon/guest/worker"
)

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-version"}, &out); err != nil || out.String() != "cocoon-worker "+worker.Version+"\n" {
		t.Errorf("-version: %q %v", out.String(), err)
	}
}

func TestBadConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-config", "main.go"}, &out); err == nil {
		t.Error("a Go file accepted as the worker config")
	}
}
