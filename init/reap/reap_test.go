package reap

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestMain makes the test binary a child subreaper (prctl(2)
// PR_SET_CHILD_SUBREAPER): orphans of its children are re-parented to it
// as they would be to PID 1 in the guest. This package's tests are the only
// ones in this binary, so the reaper's wait4(-1) steals no one's child.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func TestStartWaitAndOrphans(t *testing.T) {
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	orphans := make(chan int, 4)
	r := New(func(pid int, ws syscall.WaitStatus) { orphans <- pid })
	defer r.Stop()

	var out syncBuf
	// The shell starts a grandchild that outlives it (an orphan once the
	// shell exits), prints the grandchild's pid and exits 3.
	p, err := r.Start(sh, []string{"-c", `sleep 0.2 & echo orphan=$!; echo to-stderr >&2; exit 3`}, []string{"PATH=/usr/bin:/bin"}, "/", &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || err.Error() != "exit status 3" {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	got := out.b.String()
	if !strings.Contains(got, "to-stderr") {
		t.Errorf("stderr not copied: %q", got)
	}
	_, pidStr, _ := strings.Cut(strings.Fields(got)[0], "orphan=")
	orphan, err := strconv.Atoi(pidStr)
	if err != nil {
		t.Fatalf("output %q", got)
	}
	select {
	case pid := <-orphans:
		if pid != orphan {
			t.Errorf("reaped orphan %d, want %d", pid, orphan)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a timing assertion
		t.Fatal("orphan never reaped")
	}
	if _, err := os.Stat("/proc/" + pidStr); err == nil {
		t.Errorf("orphan %s still has a /proc entry (zombie)", pidStr)
	}
	// Wait again returns the same result.
	if err := p.Wait(); err == nil || err.Error() != "exit status 3" {
		t.Errorf("second Wait = %v", err)
	}
}

func TestSignaledAndStartErrors(t *testing.T) {
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	r := New(nil)
	p, err := r.Start(sh, []string{"-c", "kill -TERM $$"}, nil, "/", &syncBuf{}, &syncBuf{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || err.Error() != "signal: terminated" {
		t.Errorf("Wait = %v, want signal: terminated", err)
	}
	if _, err := r.Start("/nonexistent/worker", nil, nil, "/", &syncBuf{}, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing program: %v", err)
	}
	// Output keeps the streams apart.
	o, e, err := r.Output(sh, []string{"-c", "echo result; echo complaint >&2; exit 1"}, nil)
	if string(o) != "result\n" || string(e) != "complaint\n" || err == nil || err.Error() != "exit status 1" {
		t.Errorf("Output = %q, %q, %v", o, e, err)
	}
	r.Stop()
	if _, err := r.Start(sh, nil, nil, "/", &syncBuf{}, nil); err != ErrStopped {
		t.Errorf("after Stop: %v", err)
	}
}

func lookSh() (string, error) {
	for _, p := range []string{"/bin/sh", "/usr/bin/sh"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}
