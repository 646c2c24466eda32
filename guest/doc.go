// Package guest holds what runs inside the appliance besides the init:
// attestation providers (TDX, vTPM, simulator), RA-TLS, the GPU gate, the
// OpenAI-compatible inference gateway, token accounting and signed work
// receipts. The code arrives with its issue.
package guest
