// Package client is the user's side of the Cocoon network: it lists the
// workers a registry publishes, verifies each one's attestation itself,
// picks a worker, and talks to it over RA-TLS (guest/ratls), as a Go API
// (Client.Chat) and as a local OpenAI-compatible endpoint (Client.Proxy)
// that any OpenAI SDK can point its base URL at.
//
// # Trust model
//
// The registry is not trusted with confidentiality (DESIGN.md, "Trust
// model"): it must never be able to make this client send a prompt to
// anything but an attested worker running an allowlisted image.
//
// Verified here, locally, for every worker, from the certificate bytes
// alone (the registry's own verdict, WorkerInfo.Evidence, is never read):
//
//   - the RA-TLS certificate: Ed25519, self-signed, our critical extensions,
//     inside its validity at Client.Now (ratls.ErrCertificate, ErrExpired);
//   - the evidence is genuine: a TDX quote chaining to Intel's root
//     (measure/quote), a simulator quote chaining to a pinned simulator root,
//     or a vTPM quote by a pinned attestation key (ratls.ErrQuote);
//   - the evidence binds SHA-512 of the claims, which name the certificate's
//     key (ratls.ErrBinding);
//   - the local Policy accepts the measurements (ratls.ErrPolicy), and the
//     measured image hash is on the local allowlist (ErrImage) — as the
//     registry does at admission (registry/api), a policy's measurement sets
//     alone do not admit an image; TDX and simulated evidence must measure an
//     image hash, vTPM evidence is pinned by its PCR sets instead;
//   - the listed worker ID is wire.WorkerID of the certificate's key
//     (ErrIdentity), and the worker offers the model asked for (ErrModel).
//
// Then every connection is checked again in the TLS handshake, by the same
// verifier, and pinned: the peer's key must be the key verified from the
// listing (ErrPinned). The registry chooses the endpoint a worker is dialled
// at, so pinning is what stops it from pointing a listed, verified worker's
// entry at another machine: a swapped endpoint fails the handshake before a
// byte of the request is sent. TLS 1.3's CertificateVerify proves the peer
// holds the pinned key, and the attestation proves that key lives in the TD.
//
// Taken from the registry, because nothing better exists and none of it
// can expose a prompt: the list of workers and their endpoints (an omitted
// worker is a denial of service, not a leak), prices, reputation and
// status (they only order the candidates), and, when the user gives no
// local policy, the policy itself (PolicyFromRegistry). That last one is
// TRUST ON FIRST USE: a registry that lies about its policy could admit an
// image of its choosing. Callers must say so loudly; the safe path is a
// local policy (LoadPolicy), or an image hash the user rebuilt and measured
// from source (`cocoon client workers --rebuild`).
//
// # Simulated evidence
//
// A worker running the TDX quote simulator (guest/attest/sim) presents
// quotes signed by a TEST key that anyone holds: they prove nothing about
// the machine. They are accepted only when the policy both pins the
// simulator's root (Policy.SimRoot) and sets allow_simulated, which a
// production policy never does. Checked.Simulated reports such workers, the
// evidence check's detail says it, the proxy marks their answers with
// X-Cocoon-Simulated, and the client logs a warning for each.
//
// # Failover
//
// A request goes to the best verified worker (Rank). It is retried on the
// next one only while it is safe: when nothing of the answer has reached
// the caller yet — the connection was refused or reset, the handshake or
// its attestation failed, or the worker answered 5xx or 429 before any
// output. Once output was delivered (a streamed token, or a proxied
// response's headers) the request is never retried, so an answer is
// never duplicated or spliced from two workers. Answers with other 4xx
// statuses are returned as they are: another worker would refuse the same
// request.
//
// Nothing here logs prompts, answers or request bodies; logs carry worker
// IDs, endpoints, models, statuses and errors.
package client
