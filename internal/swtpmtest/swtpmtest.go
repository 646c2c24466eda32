// Package swtpmtest starts a software TPM 2.0 (swtpm + libtpms) for tests,
// on a unix socket that carries raw TPM commands, as /dev/tpm0 does.
//
// not-need-init: no CMD_INIT on the control channel; startup-clear: swtpm
// sends TPM2_Startup(CLEAR) itself (dev-docs/notes.md).
package swtpmtest

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// TPM is a running swtpm.
type TPM struct {
	T    transport.TPM // raw TPM 2.0 commands
	Dir  string        // its state directory
	stop func()
}

// Start starts swtpm with its state in dir (a new temporary directory when
// dir is ""). A fresh state directory is a new TPM: libtpms manufactures
// it with random seeds; a stopped TPM restarted on the same directory is
// the same TPM. The process is stopped at cleanup, or earlier by Stop. It
// skips the test when swtpm is not installed.
func Start(t testing.TB, dir string) *TPM {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed")
	}
	if dir == "" {
		dir = t.TempDir()
	}
	sock := t.TempDir() // short path: unix socket names are limited to 108 bytes
	srv := filepath.Join(sock, "srv")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "socket", "--tpm2",
		"--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+srv,
		"--ctrl", "type=unixio,path="+filepath.Join(sock, "ctrl"),
		"--flags", "not-need-init,startup-clear")
	// SIGTERM lets swtpm write its state.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	s := &TPM{Dir: dir}
	s.stop = func() {
		if conn != nil {
			conn.Close()
		}
		cancel()
		_ = cmd.Wait()
	}
	t.Cleanup(s.Stop)
	// Polling for the socket; the deadline is a safety net, not a clock
	// the code under test reads.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if conn, err = net.Dial("unix", srv); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not listen on %s: %v; output: %s", srv, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.T = transport.FromReadWriter(conn)
	return s
}

// Stop ends the swtpm process; its state stays in Dir.
func (s *TPM) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}
