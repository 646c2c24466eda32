// Package registry is the network's lightweight service: it admits only
// workers whose RA-TLS certificate carries evidence its policy accepts,
// publishes them with that evidence so clients can check it themselves,
// ingests the workers' signed work receipts, keeps reputation and prices,
// and pays the workers in TON.
//
// Sub-packages:
//
//	store/     the books: workers, allowlist, receipts, balances, payout batches (SQLite or PostgreSQL)
//	chain/     the TON chain behind a small interface: lite servers, or an in-process ledger
//	           that runs the real wallet contracts with tonutils-go's TVM; highload-v3 batches
//	payout/    planned → signed → sent → confirmed payouts that survive a crash at any point
//	market/    reputation and price formulas
//	api/       the /v1 HTTP API, its Go client and OpenAPI document
//	dashboard/ the operator's HTML page
//	config/    the registry's config file
//	service/   all of it assembled from a config file (`cocoon registry serve`)
package registry
