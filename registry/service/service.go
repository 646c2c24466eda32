// Package service assembles a registry from its config file: the store,
// the chain, the hot wallet, the payout engine, the API and the dashboard;
// and runs it until its context ends. cmd/cocoon's `registry serve` is a
// thin wrapper around it; tests and the demo start it in-process.
package service

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/cocoon-appliance/cocoon/guest/ratls"
	"github.com/cocoon-appliance/cocoon/measure/policy"
	"github.com/cocoon-appliance/cocoon/measure/quote"
	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/chain"
	"github.com/cocoon-appliance/cocoon/registry/config"
	"github.com/cocoon-appliance/cocoon/registry/dashboard"
	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/payout"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// Options are the outside world a registry gets.
type Options struct {
	Now  func() time.Time // nil: time.Now
	Rand io.Reader        // for a new wallet key; nil: crypto/rand
	Log  *slog.Logger
}

// Service is an assembled registry.
type Service struct {
	Config *config.Config
	Store  store.Store
	Chain  chain.Chain
	Ledger *chain.Emulated // the emulated ledger, nil on lite
	Wallet *chain.Highload
	Payout *payout.Engine
	API    *api.Server
	log    *slog.Logger
	closer []func() error
}

// New opens everything the config names. Close releases it.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *Service, err error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	s := &Service{Config: cfg, log: o.Log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var pol *policy.Policy
	if cfg.Policy != "" {
		if pol, err = policy.Load(cfg.Policy); err != nil {
			return nil, fmt.Errorf("%w: %w", config.ErrConfig, err)
		}
	}
	token, err := cfg.AdminToken()
	if err != nil {
		return nil, err
	}
	var simRoot *x509.Certificate
	if cfg.SimulatorRoot != "" {
		if simRoot, err = loadCert(cfg.SimulatorRoot); err != nil {
			return nil, err
		}
	}
	var vtpm *ratls.VTPMPolicy
	if cfg.VTPMPolicy != "" {
		if vtpm, err = ratls.LoadVTPMPolicy(cfg.VTPMPolicy); err != nil {
			return nil, err
		}
	}
	if s.Store, err = store.Open(ctx, cfg.Store); err != nil {
		return nil, err
	}
	s.closer = append(s.closer, s.Store.Close)
	for _, h := range cfg.Allow {
		if err := s.Store.AllowImage(ctx, store.AllowedImage{Hash: h, Note: "config", Added: o.Now()}); err != nil {
			return nil, err
		}
	}
	for m, p := range cfg.Models {
		if err := s.Store.SetPrice(ctx, store.Price{Model: m, Base: p.Base, Min: p.Min, Max: p.Max}); err != nil {
			return nil, err
		}
	}
	seed, created, err := cfg.WalletKey(o.Rand)
	if err != nil {
		return nil, err
	}
	if s.Wallet, err = chain.NewHighload(ed25519.NewKeyFromSeed(seed), cfg.Wallet.Subwallet, cfg.Wallet.Timeout()); err != nil {
		return nil, err
	}
	if created {
		o.Log.Warn("created a new hot wallet key: back it up; fund the wallet's address", "file", cfg.Wallet.KeyFile, "address", s.Wallet.Address().String())
	}
	switch cfg.Chain.Kind {
	case "emulated":
		if s.Ledger, err = chain.NewEmulated(chain.EmulatedOptions{Path: cfg.Chain.State, Now: o.Now}); err != nil {
			return nil, err
		}
		s.Chain = s.Ledger
		acc, err := s.Ledger.Account(ctx, s.Wallet.Address())
		if err != nil {
			return nil, err
		}
		if !acc.Exists && cfg.Chain.Fund > 0 {
			if err := s.Ledger.Fund(ctx, s.Wallet.Address(), cfg.Chain.Fund); err != nil {
				return nil, err
			}
			o.Log.Info("emulated ledger: funded the hot wallet", "address", s.Wallet.Address().String(), "nanoton", cfg.Chain.Fund)
		}
	case "lite":
		lite, err := chain.NewLite(ctx, cfg.Chain.GlobalConfig)
		if err != nil {
			return nil, err
		}
		s.Chain = lite
	}
	s.Payout = &payout.Engine{
		Store: s.Store, Chain: s.Chain, Wallet: s.Wallet, Timeout: cfg.Wallet.Timeout(),
		MinPayout: cfg.Payout.Min, Every: cfg.Payout.Every(), Max: cfg.Payout.MaxBatch,
		Now: o.Now, Log: o.Log,
	}
	mkt := market.DefaultParams()
	// Real TDX quotes chain to Intel's root (measure/quote). Offline: no
	// collateral is fetched (this host reaches no network but the chain),
	// so TCB level and revocation are not checked; see measure/quote.
	quotes := quote.NewVerifier(quote.VerifierOptions{})
	src := &viewSource{store: s.Store, chain: s.Chain, chainKind: cfg.Chain.Kind, wallet: s.Wallet.Address(), market: mkt, now: o.Now}
	s.API = &api.Server{
		Store: s.Store, Now: o.Now, Log: o.Log, AdminToken: token,
		Policy: pol, SimRoot: simRoot, Quotes: quotes, VTPM: vtpm, Market: mkt,
		Payouts: s.Payout, Dashboard: dashboard.Handler(src.view),
	}
	return s, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: simulator root: %w", config.ErrConfig, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: simulator root %s: no PEM CERTIFICATE", config.ErrConfig, path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Serve serves the API on l and runs the payout loop until ctx ends.
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.API.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	if every := s.Config.Payout.Interval(); every > 0 {
		go s.payoutLoop(loopCtx, every)
	}
	s.log.Info("registry serving", "addr", l.Addr().String(), "store", storeKind(s.Config.Store), "chain", s.Config.Chain.Kind, "hot_wallet", s.Wallet.Address().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func storeKind(dsn string) string {
	if len(dsn) >= 7 && dsn[:7] == "sqlite:" {
		return "sqlite"
	}
	return "postgres"
}

func (s *Service) payoutLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := s.Payout.Run(ctx)
		switch {
		case err != nil:
			s.log.Error("payout run failed", "err", err)
		case rep.Confirmed+rep.Expired > 0 || len(rep.Pending) > 0:
			s.log.Info("payout run", "confirmed", rep.Confirmed, "expired", rep.Expired, "pending", len(rep.Pending), "paid_nanoton", rep.Paid, "fees_nanoton", rep.Fees)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close releases the store.
func (s *Service) Close() error {
	var errs []error
	for i := len(s.closer) - 1; i >= 0; i-- {
		errs = append(errs, s.closer[i]())
	}
	s.closer = nil
	return errors.Join(errs...)
}
