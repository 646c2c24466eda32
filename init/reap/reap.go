// Package reap makes PID 1 a proper parent: it collects the exit status of
// every child, including orphans the kernel re-parents to init (a worker's
// own subprocesses that outlive their parent), so none stays a zombie.
//
// One goroutine owns wait4(-1): os/exec's Cmd.Wait would race it for the
// status of its own child (whichever waits first gets it; the other sees
// ECHILD). Children started here are therefore forked with syscall.ForkExec
// and their status is handed to whoever started them; every other child is
// reaped and logged.
package reap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrStopped is returned by Start after Stop.
var ErrStopped = errors.New("reap: reaper stopped")

// Reaper reaps all children of this process. Use New, then Start children
// through it.
type Reaper struct {
	// Orphan, when set, is called for each reaped child that was not
	// started through the reaper (pid and wait status).
	Orphan func(pid int, ws syscall.WaitStatus)

	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	sigs    chan os.Signal
	done    chan struct{}
	stopped bool
}

// New starts reaping: on every SIGCHLD, and once at once for children that
// exited before.
func New(orphan func(pid int, ws syscall.WaitStatus)) *Reaper {
	r := &Reaper{Orphan: orphan, waiting: map[int]chan syscall.WaitStatus{}, sigs: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(r.sigs, unix.SIGCHLD)
	r.sigs <- unix.SIGCHLD
	go r.loop()
	return r
}

// Stop stops reaping (tests; PID 1 never stops).
func (r *Reaper) Stop() {
	signal.Stop(r.sigs)
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	close(r.done)
}

func (r *Reaper) loop() {
	for {
		select {
		case <-r.done:
			return
		case <-r.sigs:
		}
		r.reapAll()
	}
}

// reapAll collects every exited child. It holds the lock across wait4 so a
// child that Start has forked but not yet registered cannot be mistaken for
// an orphan: Start holds the same lock from fork to registration.
func (r *Reaper) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: no children; 0: none exited
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			delete(r.waiting, pid)
			ch <- ws // buffered
			continue
		}
		if r.Orphan != nil {
			r.Orphan(pid, ws)
		}
	}
}

// Process is a child started through the reaper.
type Process struct {
	pid    int
	status chan syscall.WaitStatus
	copied chan struct{}
	once   sync.Once
	err    error
}

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.pid }

// Wait waits for the child to exit and its output to drain. The error is
// nil for exit status 0, else it says how the child ended.
func (p *Process) Wait() error {
	p.once.Do(func() {
		ws := <-p.status
		<-p.copied
		switch {
		case ws.Exited() && ws.ExitStatus() == 0:
		case ws.Exited():
			p.err = fmt.Errorf("exit status %d", ws.ExitStatus())
		case ws.Signaled():
			p.err = fmt.Errorf("signal: %v", ws.Signal())
		default:
			p.err = fmt.Errorf("wait status %#x", uint32(ws))
		}
	})
	return p.err
}

// Start starts path with args and env in dir, stdin /dev/null, its stdout
// copied to stdout and its stderr to stderr (one pipe when they are the
// same writer, so the lines keep their order).
func (r *Reaper) Start(path string, args, env []string, dir string, stdout, stderr io.Writer) (*Process, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	outs := []io.Writer{stdout}
	if stderr != stdout {
		outs = append(outs, stderr)
	}
	var readers, writers []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for range outs {
		pr, pw, err := os.Pipe()
		if err != nil {
			closeAll(readers)
			closeAll(writers)
			return nil, err
		}
		readers, writers = append(readers, pr), append(writers, pw)
	}
	errFd := writers[len(writers)-1].Fd()
	attr := &syscall.ProcAttr{Dir: dir, Env: env, Files: []uintptr{null.Fd(), writers[0].Fd(), errFd},
		// Its own process group, so a signal for the worker reaches its
		// subprocesses and not the init.
		Sys: &syscall.SysProcAttr{Setpgid: true}}

	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		closeAll(readers)
		closeAll(writers)
		return nil, ErrStopped
	}
	pid, err := syscall.ForkExec(path, append([]string{path}, args...), attr)
	var p *Process
	if err == nil {
		p = &Process{pid: pid, status: make(chan syscall.WaitStatus, 1), copied: make(chan struct{})}
		r.waiting[pid] = p.status
	}
	r.mu.Unlock()
	closeAll(writers)
	if err != nil {
		closeAll(readers)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	var wg sync.WaitGroup
	for i, pr := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(outs[i], pr)
			pr.Close()
		}()
	}
	go func() { wg.Wait(); close(p.copied) }()
	return p, nil
}

// Output runs path to completion and returns its stdout and stderr.
func (r *Reaper) Output(path string, args, env []string) (stdout, stderr []byte, err error) {
	var o, e bytes.Buffer
	p, err := r.Start(path, args, env, "/", &o, &e)
	if err != nil {
		return nil, nil, err
	}
	err = p.Wait()
	return o.Bytes(), e.Bytes(), err
}
