package boot

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

type fakeStep struct {
	name string
	took time.Duration
	err  error
	ran  *[]string
	clk  *time.Time
}

func (f fakeStep) String() string { return f.name }
func (f fakeStep) Run(_ context.Context, _ *State) error {
	*f.ran = append(*f.ran, f.name)
	*f.clk = f.clk.Add(f.took)
	return f.err
}

func TestRun(t *testing.T) {
	var ran []string
	clk := time.Unix(0, 0)
	s := &State{Now: func() time.Time { return clk }}
	errBoom := errors.New("boom")
	steps := []Step{
		fakeStep{"mount -t proc proc /proc", 3 * time.Millisecond, nil, &ran, &clk},
		fakeStep{"insmod a.ko", 12*time.Millisecond + 900*time.Microsecond, nil, &ran, &clk},
		fakeStep{"veritysetup open", time.Second, errBoom, &ran, &clk},
		fakeStep{"never", 0, nil, &ran, &clk},
	}
	var out bytes.Buffer
	err := Run(context.Background(), steps, s, &out)
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want boom", err)
	}
	want := "cocoon-init: [1/4] mount -t proc proc /proc ok (3ms)\n" +
		"cocoon-init: [2/4] insmod a.ko ok (12ms)\n" +
		"cocoon-init: FATAL: veritysetup open: boom\n"
	if out.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", out.String(), want)
	}
	if len(ran) != 3 {
		t.Errorf("ran %q, want to stop after the failing step", ran)
	}
	if s.Log != &out {
		t.Error("State.Log not defaulted to the console")
	}
}

func TestRunAllOK(t *testing.T) {
	var ran []string
	clk := time.Unix(0, 0)
	var out bytes.Buffer
	steps := []Step{fakeStep{"a", 0, nil, &ran, &clk}, fakeStep{"b", 0, nil, &ran, &clk}}
	if err := Run(context.Background(), steps, &State{Now: func() time.Time { return clk }}, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "cocoon-init: [1/2] a ok (0ms)\ncocoon-init: [2/2] b ok (0ms)\n" {
		t.Errorf("console %q", got)
	}
}
