package payout_test

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cocoon-appliance/cocoon/registry/store"
)

// The crash test: a child process runs the registry's payout loop on a
// SQLite store and a persisted emulated ledger while this test SIGKILLs it
// at random moments, 20 times, restarting it each time. Then one more
// registry runs to completion, and the ledger's balances must show every
// credit paid exactly once.
const (
	crashChildEnv = "COCOON_PAYOUT_CRASH_CHILD"
	crashWorkers  = 60
	crashMaxRound = 100_000 // the child credits and pays round after round until killed
	crashFunded   = 10_000 * ton
	crashKills    = 20
)

// crashEpoch is the chain's and registry's clock in the child: wall time,
// so that runs of successive children see time move on.
func crashNow() time.Time { return time.Now().UTC() }

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("run by TestCrashPayouts")
	}
	e := open(t, dir, crashNow)
	e.eng.Max = 7 // many small batches: more moments to die in
	os.Stdout.WriteString("ready\n")
	// Rounds the earlier children credited are replays: they credit
	// nothing, and their payouts are already done or resumed by Run.
	for r := uint64(1); r <= crashMaxRound; r++ {
		e.credit(t, crashWorkers, r)
		if _, err := e.eng.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashPayouts(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: 20 SIGKILLs of a payout process (skipped with -short)")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COCOON_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (COCOON_CRASH_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	{
		e := open(t, dir, crashNow)
		e.addWorkers(t, crashWorkers)
		must(t, e.ledger.Fund(context.Background(), e.wallet.Address(), crashFunded))
		e.st.Close()
	}
	states := map[string]int{}
	for kill := 1; kill <= crashKills; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		must(t, err)
		cmd.Stderr = cmd.Stdout
		must(t, cmd.Start())
		lines := make(chan string, 64)
		go func() {
			s := bufio.NewScanner(out)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
		}()
		// Kill at a random moment after the child is up: while it
		// credits, plans, signs, sends, confirms.
		ready := false
		for l := range lines {
			if l == "ready" {
				ready = true
				break
			}
		}
		if !ready {
			cmd.Wait()
			t.Fatalf("child %d did not start", kill)
		}
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		var last string
		for l := range lines {
			last = l
		}
		cmd.Wait()
		// What did it leave behind?
		st, err := store.Open(context.Background(), "sqlite:"+dir+"/registry.db")
		must(t, err)
		open, err := st.OpenBatches(context.Background())
		must(t, err)
		st.Close()
		var left []string
		for _, b := range open {
			left = append(left, string(b.State))
			states[string(b.State)]++
		}
		if len(left) == 0 {
			states["none"]++
		}
		t.Logf("kill %2d after %3d ms (last output %q): open batches %v", kill, delay.Milliseconds(), last, strings.Join(left, ","))
	}
	t.Logf("states left by the kills: %v", states)
	if states["none"] == crashKills {
		t.Errorf("no kill landed while a batch was open: the test did not test crashes mid-payout")
	}
	// The last registry finishes what the killed ones left.
	e := open(t, dir, crashNow)
	for range 20 {
		rep, err := e.eng.Run(context.Background())
		must(t, err)
		if rep.Planned == 0 && len(rep.Pending) == 0 {
			break
		}
	}
	e.check(t, crashWorkers, crashFunded)
	// What was credited: each worker's receipts are rounds 1..n, each
	// worth amount(i, round), each once.
	var want uint64
	rounds := map[int]int{}
	for i := range crashWorkers {
		rs, err := e.st.Receipts(context.Background(), workerID(i), 0, 0)
		must(t, err)
		for k, r := range rs {
			if r.Seq != uint64(k+1) || r.Amount != amount(i, r.Seq) {
				t.Fatalf("worker %d receipt %d: seq %d amount %d", i, k, r.Seq, r.Amount)
			}
			want += r.Amount
		}
		rounds[len(rs)]++
	}
	t.Logf("workers by rounds credited: %v", rounds)
	var got uint64
	for i := range crashWorkers {
		got += e.balance(t, workerAddr(i)) + e.ledger.FeesPaid(workerAddr(i))
	}
	if got != want {
		t.Fatalf("workers received %d nanoton, the credits total %d", got, want)
	}
}
