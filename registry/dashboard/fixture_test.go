package dashboard

import "time"

// fixture is a fixed View used by the golden and screenshot tests. It has one
// worker of each status and a simulated one, so every badge colour is drawn.
func fixture() *View {
	gen := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	return &View{
		Title:     "Cocoon registry — testnet",
		Generated: gen,
		Wallet: WalletInfo{
			Address: "EQD4FPq-PRDieyQKkizFTRtSDyucUIqrj0v_zXJmqaDp6_0t",
			Balance: 1234567890,
			Chain:   "emulated",
		},
		Totals: TotalsInfo{
			Workers: 4, Attested: 2,
			Earned: 7_500_000_001, Unpaid: 2_250_000_000, Paid: 5_250_000_001, Fees: 12_345_678,
		},
		Workers: []WorkerRow{
			{
				ID: "w-alpha-01", Endpoint: "10.0.0.11:8443", Models: []string{"llama-3.1-8b", "qwen2.5-7b"},
				Kind: "tdx", ImageHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				Status: "attested", Reputation: 0.97, Price: 150_000_000,
				Earned: 5_000_000_000, Unpaid: 1_000_000_000, Paid: 4_000_000_000,
				LastSeen: gen.Add(-12 * time.Second),
			},
			{
				ID: "3b2f9c1e0d7a4b5c8e6f1a2d3c4b5a69", Endpoint: "worker-b.example.net:443", Models: []string{"mistral-7b"},
				Kind: "vtpm", ImageHash: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
				Status: "attested", Reputation: 0.82, Price: 120_000_000,
				Earned: 2_500_000_001, Unpaid: 1_250_000_000, Paid: 1_250_000_001,
				LastSeen: gen.Add(-3 * time.Minute),
			},
			{
				ID: "w-gamma-07", Endpoint: "10.0.0.17:8443", Models: []string{"llama-3.1-70b"},
				Kind: "tdx", ImageHash: "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13",
				Status: "expired", Reputation: 0.55, Price: 900_000_000,
				LastSeen: gen.Add(-2 * time.Hour),
			},
			{
				ID: "w-sim-dev", Endpoint: "127.0.0.1:9000", Models: []string{"tiny-echo"},
				Kind: "sim", ImageHash: "0000000000000000000000000000000000000000000000000000000000000000",
				Simulated: true, Status: "offline", Reputation: 0.1, Price: 1,
				LastSeen: gen.Add(-50 * time.Hour),
			},
		},
		Batches: []BatchRow{
			{ID: 42, State: "confirmed", Items: 2, Total: 5_250_000_001, Fees: 9_876_543,
				TxHash: "c0ffee00deadbeef0123456789abcdef0123456789abcdef0123456789abcdef", Updated: gen.Add(-20 * time.Minute)},
			{ID: 43, State: "sent", Items: 1, Total: 1_000_000_000, Fees: 2_469_135,
				TxHash: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90", Updated: gen.Add(-1 * time.Minute)},
			{ID: 41, State: "expired", Items: 1, Total: 1_250_000_000, Fees: 0,
				Updated: gen.Add(-3 * time.Hour), Error: "message expired before inclusion; re-planned as #43"},
		},
		Events: []EventRow{
			{At: gen.Add(-65 * time.Second), Level: "error", Worker: "w-gamma-07", Message: "attestation expired: TDX quote older than 24h"},
			{At: gen.Add(-3 * time.Minute), Level: "warn", Worker: "w-sim-dev", Message: "simulated evidence accepted (dev policy)"},
			{At: gen.Add(-20 * time.Minute), Level: "info", Message: "batch #42 confirmed"},
		},
	}
}
