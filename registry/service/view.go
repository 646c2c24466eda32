package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-appliance/cocoon/registry/api"
	"github.com/cocoon-appliance/cocoon/registry/chain"
	"github.com/cocoon-appliance/cocoon/registry/dashboard"
	"github.com/cocoon-appliance/cocoon/registry/market"
	"github.com/cocoon-appliance/cocoon/registry/store"
)

// viewSource reads the dashboard's data from the books and the chain.
type viewSource struct {
	store     store.Store
	chain     chain.Chain
	chainKind string
	wallet    *address.Address
	market    market.Params
	now       func() time.Time
}

func (s *viewSource) view(ctx context.Context) (*dashboard.View, error) {
	now := s.now()
	v := &dashboard.View{Title: "Cocoon registry", Generated: now}
	v.Wallet = dashboard.WalletInfo{Address: s.wallet.String(), Chain: s.chainKind}
	if acc, err := s.chain.Account(ctx, s.wallet); err == nil {
		v.Wallet.Balance = acc.Balance
	}
	workers, err := s.store.Workers(ctx)
	if err != nil {
		return nil, err
	}
	bals, err := s.store.Balances(ctx)
	if err != nil {
		return nil, err
	}
	byWorker := map[string]store.Balance{}
	for _, b := range bals {
		byWorker[b.Worker] = b
		v.Totals.Earned += b.Earned
		v.Totals.Unpaid += b.Unpaid
		v.Totals.Paid += b.Paid
	}
	p := s.market.OrDefault().Reputation
	for i := range workers {
		w := &workers[i]
		var ev api.Evidence
		_ = json.Unmarshal(w.Evidence, &ev) // written by registry/api; a bad row shows blanks
		b := byWorker[w.ID]
		row := dashboard.WorkerRow{
			ID: w.ID, Endpoint: w.Endpoint, Models: w.Models, Kind: ev.Kind, ImageHash: ev.ImageHash,
			Simulated: ev.Simulated, Status: api.Status(w, now, p),
			Reputation: market.Reputation(w.Stats, w.RegisteredAt, now, p),
			Price:      w.Price, Earned: b.Earned, Unpaid: b.Unpaid, Paid: b.Paid, LastSeen: w.Stats.LastSeen,
		}
		if row.Status == "attested" {
			v.Totals.Attested++
		}
		v.Workers = append(v.Workers, row)
	}
	v.Totals.Workers = len(workers)
	batches, err := s.store.Batches(ctx, 50)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		v.Batches = append(v.Batches, dashboard.BatchRow{ID: b.ID, State: string(b.State), Items: len(b.Items),
			Total: b.Total(), Fees: b.Fees, TxHash: b.TxHash, Updated: b.Updated, Error: b.Error})
	}
	all, err := s.store.Batches(ctx, 1<<30)
	if err != nil {
		return nil, err
	}
	for _, b := range all {
		v.Totals.Fees += b.Fees
	}
	events, err := s.store.Events(ctx, 30)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		v.Events = append(v.Events, dashboard.EventRow{At: e.At, Level: e.Level, Worker: e.Worker, Message: e.Message})
	}
	return v, nil
}
