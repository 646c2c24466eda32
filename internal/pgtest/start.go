package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds initdb plus server start; both take about a second.
const startTimeout = 60 * time.Second

// reaper is the server's parent. A watcher waits until the reaper's
// standard input reaches end of file (the test binary closed its end, or
// exited however it exited) and then stops the server (SIGINT: fast
// shutdown); when the server is gone, for that reason or its own, the
// reaper removes the directory and exits. A server that stopped unasked
// leaves its log on the reaper's standard error.
const reaper = `dir=$1; log=$2; shift 2
exec 3<&0 </dev/null
"$@" >"$log" 2>&1 3<&- &
pid=$!
{ cat <&3; : >"$dir/stopping"; kill -INT "$pid"; } >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$pid"
[ -e "$dir/stopping" ] || { kill "$watcher" 2>/dev/null; cat "$log" >&2; }
rm -rf "$dir"`

// owner is who the server runs as.
type owner struct {
	cred    *syscall.Credential // nil: as ourselves
	setpriv []string            // prefix that switches to cred in the reaper
}

func start() (*server, error) {
	bin, err := bindir()
	if err != nil {
		return nil, err
	}
	own, err := serverOwner()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	data, sock, logf := filepath.Join(dir, "data"), filepath.Join(dir, "sock"), filepath.Join(dir, "log")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if own.cred != nil {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, int(own.cred.Uid), int(own.cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir // the server user may not enter our working directory
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: own.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", reaper, "pgtest-reaper", dir, logf}, own.setpriv...)
	args = append(args, filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=",
		// Durability is not what a test checks; speed is what it needs.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd := exec.Command("/bin/sh", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdin = pr
	var stderr bytes.Buffer // read only after the reaper exited
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // should a grandchild keep stderr open
	// Its own process group: a ^C meant for the test binary must not
	// kill the reaper before it cleans up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	pr.Close()
	ok = true // the reaper owns dir now
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	s := &server{sock: sock, stop: pw}
	if err := s.connect(ctx, exited); err != nil {
		pw.Close()
		select {
		case <-exited:
			return nil, fmt.Errorf("%w; postgres log: %s", err, strings.TrimSpace(stderr.String()))
		case <-time.After(5 * time.Second):
			return nil, err
		}
	}
	return s, nil
}

// connect waits for the server to accept connections. Polling: postgres
// has no readiness notification a child can use without systemd.
func (s *server) connect(ctx context.Context, exited <-chan struct{}) error {
	admin, err := sql.Open("pgx", s.dsn("postgres"))
	if err != nil {
		return err
	}
	admin.SetMaxOpenConns(4)
	for {
		var version int
		err = admin.QueryRowContext(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version)
		if err == nil {
			s.admin = admin
			s.createOpts = " TEMPLATE template0"
			if version >= 150000 {
				s.createOpts += " STRATEGY FILE_COPY"
			}
			return nil
		}
		select {
		case <-exited:
			admin.Close()
			return fmt.Errorf("postgres exited before accepting connections on %s: %v", s.sock, err)
		case <-ctx.Done():
			admin.Close()
			return fmt.Errorf("postgres did not accept connections on %s within %v: %v", s.sock, startTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serverOwner: ourselves, unless we are root, which postgres refuses;
// then the postgres system user that Debian's package creates.
func serverOwner() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return owner{}, fmt.Errorf("running as root, and postgres refuses root: want a postgres user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return owner{}, fmt.Errorf("postgres user: uid %q gid %q, want numbers", u.Uid, u.Gid)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return owner{}, fmt.Errorf("running as root: want setpriv (util-linux) to run postgres as user postgres: %w", err)
	}
	return owner{
		cred:    &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		setpriv: []string{setpriv, "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"},
	}, nil
}
