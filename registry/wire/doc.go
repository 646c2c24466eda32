// Package wire is the registry API's wire format (JSON bodies, signatures,
// error codes) and its Go client; what workers and clients link, without
// the server's store.
//
// The server (registry/api) re-exports every name here, so api.Client and
// wire.Client are the same type. A program that only calls a registry, the
// confidential VM's worker above all, imports this package: registry/api
// links the store and its database drivers (pgx, SQLite), which would
// nearly double the worker's binary. TestNoServerDeps keeps it so.
//
// The endpoints, the signing rules and the error codes are described in
// registry/api's package comment and openapi.yaml.
package wire
