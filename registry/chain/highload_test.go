package chain

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

func TestNewHighloadRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     []byte
		timeout time.Duration
	}{
		{"short key", testKey(1)[:31], time.Hour},
		{"timeout 5s", testKey(1), 5 * time.Second},
		{"timeout zero", testKey(1), 0},
		{"timeout 2^22 s", testKey(1), (1 << 22) * time.Second},
		{"timeout not whole seconds", testKey(1), time.Hour + time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHighload(tc.key, 0x10ad, tc.timeout); !errors.Is(err, ErrBatch) {
				t.Fatalf("NewHighload = %v, want ErrBatch", err)
			}
		})
	}
	for _, d := range []time.Duration{MinTimeout, time.Hour, MaxTimeout} {
		if _, err := NewHighload(testKey(1), 0x10ad, d); err != nil {
			t.Errorf("NewHighload(timeout %v) = %v, want ok", d, err)
		}
	}
}

func TestBatchRejects(t *testing.T) {
	h, err := NewHighload(testKey(1), 0x10ad, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ok := Transfer{To: freshAddrs(1, "x")[0], Amount: 1}
	many := make([]Transfer, MaxBatch+1)
	for i := range many {
		many[i] = ok
	}
	for _, tc := range []struct {
		name      string
		queryID   uint32
		createdAt time.Time
		transfers []Transfer
	}{
		{"no transfers", 1, t0, nil},
		{"too many transfers", 1, t0, many},
		{"query id 1<<23", 1 << 23, t0, []Transfer{ok}},
		{"query id bit_number 1023", 1023, t0, []Transfer{ok}},
		{"zero amount", 1, t0, []Transfer{ok, {To: ok.To, Amount: 0}}},
		{"nil address", 1, t0, []Transfer{{Amount: 1}}},
		{"none address", 1, t0, []Transfer{{To: address.NewAddressNone(), Amount: 1}}},
		{"to itself", 1, t0, []Transfer{{To: h.Address(), Amount: 1}}},
		{"sum overflows", 1, t0, []Transfer{{To: ok.To, Amount: 1 << 63}, {To: ok.To, Amount: 1 << 63}}},
		{"created_at at epoch", 1, time.Unix(0, 0), []Transfer{ok}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boc, hash, err := h.Batch(tc.queryID, tc.createdAt, tc.transfers, false)
			if !errors.Is(err, ErrBatch) || boc != nil || hash != nil {
				t.Fatalf("Batch = %d bytes, %x, %v; want ErrBatch and nothing", len(boc), hash, err)
			}
		})
	}
}

func TestBatchDeterministic(t *testing.T) {
	h, err := NewHighload(testKey(1), 0x10ad, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := transfersTo(freshAddrs(300, "det"))
	for _, init := range []bool{false, true} {
		a, ha, err := h.Batch(42, t0, tr, init)
		if err != nil {
			t.Fatal(err)
		}
		h2, _ := NewHighload(testKey(1), 0x10ad, time.Hour)
		b, hb, err := h2.Batch(42, t0, tr, init)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || !bytes.Equal(ha, hb) {
			t.Fatalf("init=%v: two builds differ", init)
		}
		c, err := cell.FromBOC(a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Hash(), ha) {
			t.Fatalf("msgHash %x, want root cell hash %x", ha, c.Hash())
		}
		var ext tlb.ExternalMessage
		if err := tlb.Parse(&ext, c); err != nil {
			t.Fatal(err)
		}
		if !sameAccount(ext.DstAddr, h.Address()) || (ext.StateInit != nil) != init {
			t.Fatalf("init=%v: message to %s with StateInit %v", init, ext.DstAddr, ext.StateInit != nil)
		}
	}
	// Everything signed changes the bytes.
	base, _, _ := h.Batch(42, t0, tr, false)
	for name, f := range map[string]func() ([]byte, []byte, error){
		"query id":   func() ([]byte, []byte, error) { return h.Batch(43, t0, tr, false) },
		"created_at": func() ([]byte, []byte, error) { return h.Batch(42, t0.Add(time.Second), tr, false) },
		"amount": func() ([]byte, []byte, error) {
			return h.Batch(42, t0, append([]Transfer{{To: tr[0].To, Amount: 7}}, tr[1:]...), false)
		},
	} {
		other, _, err := f()
		if err != nil || bytes.Equal(other, base) {
			t.Errorf("changing %s: %v, same bytes %v", name, err, bytes.Equal(other, base))
		}
	}
}

func TestHighloadAddress(t *testing.T) {
	a, _ := NewHighload(testKey(1), 0x10ad, time.Hour)
	for name, f := range map[string]func() (*Highload, error){
		"key":       func() (*Highload, error) { return NewHighload(testKey(2), 0x10ad, time.Hour) },
		"subwallet": func() (*Highload, error) { return NewHighload(testKey(1), 0x10ae, time.Hour) },
		"timeout":   func() (*Highload, error) { return NewHighload(testKey(1), 0x10ad, 2*time.Hour) },
	} {
		b, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if sameAccount(a.Address(), b.Address()) {
			t.Errorf("another %s gives the same address %s", name, a.Address())
		}
	}
	if a.Address().IsBounceable() || a.Address().Workchain() != 0 {
		t.Errorf("address %s: want non-bounceable basechain", a.Address())
	}
	if a.Timeout() != time.Hour {
		t.Errorf("Timeout = %v", a.Timeout())
	}
}
