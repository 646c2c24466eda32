// Package registry is the network service that admits attested workers,
// publishes them with their evidence, ingests signed work receipts, keeps
// reputation and prices, and pays workers in TON. The code arrives with its
// issue.
package registry
