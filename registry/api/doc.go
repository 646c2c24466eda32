// Package api is the registry's HTTP API (/v1) and the mount point of the
// operator's dashboard. openapi.yaml in this directory documents every
// endpoint; a test keeps it in step with the routes. The wire format and
// the Go client are registry/wire, re-exported here (api.Client is
// wire.Client); programs that only call a registry import wire, which does
// not link the store.
//
//	POST   /v1/workers                    register, or renew a certificate (signed)
//	GET    /v1/workers[?model=M]          every worker with certificate and evidence
//	GET    /v1/workers/{id}               one worker
//	POST   /v1/workers/{id}/heartbeat     liveness (signed)
//	POST   /v1/workers/{id}/receipts      signed work receipts, all or nothing
//	GET    /v1/prices                     market price per model, with bounds
//	GET    /v1/policy                     allowlist, models, evidence kinds accepted
//	GET    /v1/admin/allowlist            } operator endpoints:
//	PUT    /v1/admin/allowlist/{hash}     } Authorization: Bearer <admin token>;
//	DELETE /v1/admin/allowlist/{hash}     } with no token configured every one
//	PUT    /v1/admin/prices/{model}       } answers 403 (never open by default)
//	GET    /v1/admin/balances             }
//	GET    /v1/admin/payouts              }
//	POST   /v1/admin/payouts/run          }
//	GET    /healthz                       the store answers
//	GET    /                              the dashboard (Server.Dashboard), when set
//
// # Requests
//
// Bodies are JSON (Content-Type application/json, else 415), read the
// strict way of internal/strictjson: size-limited (413), unknown fields
// and trailing data refused (400). Errors are
// {"error":{"code":"...","message":"..."}}; the codes are the Code*
// constants, and the client returns them as *Error, which errors.Is
// matches against the status sentinels (ErrNotFound, ...).
//
// # Admission
//
// A registration carries the worker's RA-TLS certificate (guest/ratls) and
// a signature by the certificate's key over "cocoon-register/v1\x00" and
// the registration's JSON. Certificates are public (every client gets
// them from GET /v1/workers), so the signature is what stops anyone from
// registering a worker's certificate with their own payout address. The
// certificate is verified by a fresh ratls.Verifier at each registration
// (no cache: the allowlist may have changed), with the configured policy
// as a template whose image hashes are the store's allowlist at that
// moment; a TDX or simulated quote must then also measure an allowlisted
// image hash, whatever measurement sets the template lists. Simulated
// evidence needs both a pinned simulator root and a policy that sets
// allow_simulated. The worker's ID is the hex SHA-256 of its key, so a
// renewed certificate for the same key updates the same worker; an older
// certificate than the one held is refused (a replayed registration).
//
// Signed requests carry "at" (Unix ms), which must be within MaxClockSkew
// of the registry's clock; heartbeats must also be newer than the last one
// accepted (409).
//
// # Receipts
//
// A batch (at most MaxBatch) is checked in full before anything is
// stored: every receipt names this worker's key and verifies
// (receipt.Signed.Verify), ends before the worker's certificate expired
// (plus a minute of skew) and not in the future, and is for a model the
// worker registered. Each is credited by market.Credit at the lower of the
// worker's asking price and the model's market price when the batch
// arrives (the market is recomputed at most every PriceTTL). The store
// adds the batch in one transaction; a receipt already held with the same
// bytes is a duplicate, and a batch already held is acknowledged again
// with the same acked_through and added 0. Any refused receipt refuses
// the batch, and the books do not change.
//
// # Status and reputation
//
// A worker is "expired" once its certificate is, "offline" after
// market.ReputationParams.Offline() without a heartbeat or receipt batch,
// and "attested" otherwise; only attested workers count as supply in the
// price. Reputation is market.Reputation.
//
// Refused registrations and receipt batches are also written as store
// events for the dashboard, at most 20 at once and one per 3 s after
// that; admin changes are written as events too (the audit trail).
package api
