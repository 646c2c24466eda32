package ratls

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	now := t0
	v := f.verifier(f.dev)
	v.Now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(f.der()); err != nil {
			t.Fatal(err)
		}
	}
	if st := v.CacheStats(); st.Hits != 2 || st.Misses != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v, want 2 hits, 1 miss, 1 entry", st)
	}
	// A cached result is not used past the certificate's validity.
	now = f.cert.Leaf.NotAfter.Add(DefaultSkew + time.Second)
	if _, err := v.Verify(f.der()); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry: %v, want ErrExpired", err)
	}
	if st := v.CacheStats(); st.Entries != 0 {
		t.Fatalf("expired entry kept: %+v", st)
	}
	// Failures are not cached: each attempt is verified again.
	now = t0
	bad := append([]byte(nil), f.der()...)
	bad[len(bad)-1] ^= 1 // the Ed25519 signature
	for i := 0; i < 2; i++ {
		if _, err := v.Verify(bad); !errors.Is(err, ErrCertificate) {
			t.Fatalf("bad signature: %v", err)
		}
	}
	if st := v.CacheStats(); st.Entries != 0 || st.Misses != 4 {
		t.Fatalf("stats after failures %+v", st)
	}
}

func TestCacheBound(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	var ders [][]byte
	for i := 0; i < 3; i++ {
		c, err := NewCertificate(context.Background(), f.sim, f.claims, f.key, t0.Add(time.Duration(i)*time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, c.Certificate[0])
	}
	v := f.verifier(f.dev)
	v.CacheSize = 2
	for _, d := range ders {
		if _, err := v.Verify(d); err != nil {
			t.Fatal(err)
		}
	}
	if st := v.CacheStats(); st.Entries != 2 {
		t.Fatalf("entries %d, want 2", st.Entries)
	}
	// The least recently used (the first) was dropped; the last is there.
	if _, err := v.Verify(ders[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ders[0]); err != nil {
		t.Fatal(err)
	}
	if st := v.CacheStats(); st.Hits != 1 || st.Misses != 4 {
		t.Fatalf("stats %+v, want 1 hit (third) and 4 misses", st)
	}

	off := f.verifier(f.dev)
	off.CacheSize = -1
	for i := 0; i < 2; i++ {
		if _, err := off.Verify(ders[0]); err != nil {
			t.Fatal(err)
		}
	}
	if st := off.CacheStats(); st.Hits != 0 || st.Entries != 0 {
		t.Fatalf("disabled cache: %+v", st)
	}
}

func TestVerifierConcurrent(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	v := f.verifier(f.dev)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(f.der())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := v.CacheStats(); st.Hits+st.Misses != 16 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestVerifierNoClock(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	v := f.verifier(f.dev)
	v.Now = nil
	if _, err := v.Verify(f.der()); err == nil {
		t.Fatal("verified without a clock")
	}
}
