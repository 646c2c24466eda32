// Package vtpm is the attestation provider of the development boot path
// (QEMU + swtpm + OVMF, no TDX) and the verifier of its evidence.
//
// The Provider quotes with a TPM 2.0 through go-tpm: TPM2_Quote (TPM 2.0
// Part 3 §18.4) over the SHA-256 PCRs DefaultPCRs (0-9 and 15,
// configurable) by an attestation key (AK), then TPM2_PCR_Read of the same
// PCRs. The registers side (PCR read, firmware log, PCR 15 extend) is
// init/measured.TPM's.
//
// # The attestation key
//
// The AK is a primary key created from a fixed template (ECC P-256 /
// ECDSA-SHA256 by default, RSA-2048 / RSASSA-SHA256 as an option) under the
// endorsement hierarchy: a restricted signing key that is fixedTPM,
// fixedParent and sensitiveDataOrigin. A primary key is derived from the
// hierarchy's seed and the template, so the same TPM gives the same AK on
// every boot, without persisting a handle or a key blob.
//
// A vTPM's AK is not certified by anyone here. swtpm has no manufacturer:
// its endorsement key certificate, when swtpm_setup writes one, is signed by
// a local CA that the host operator controls, and the host operator runs
// the swtpm process and can read its state. Nothing in this package shows
// that the AK lives in a TPM (TPM2_ActivateCredential against a certified EK
// would, for a hardware TPM). Trust in an AK is therefore policy: the
// verifier pins AK names it recorded on a machine it controls
// (Verified.CheckAK), or accepts any AK on a development network. This path
// is for development and tests; production attestation is TDX.
//
// # Binding report data
//
// TPM2_Quote's qualifyingData is QualifyingData(reportData) = SHA-256 of
// the 64 bytes of report data, not the bytes themselves: a TPM2B_DATA holds
// at most 2 + the largest digest the TPM implements, 34 bytes on a TPM with
// only SHA-256, 50 with SHA-384, so 64 bytes are refused by many TPMs even
// though swtpm (with SHA-512) takes them.
//
// # Evidence and Verify
//
// Evidence (guest/attest) carries Quote = the TPMS_ATTEST bytes exactly as
// the TPM signed them, Signature = TPMT_SIGNATURE, AKPublic = TPMT_PUBLIC
// (all in the TPM's own marshalling, TPM 2.0 Part 2), PCRs = the quoted
// values, and the firmware and runtime logs for replay.
//
// Verify checks, in this order, with typed errors:
//
//	ErrAK         AKPublic is not a restricted, fixedTPM, fixedParent,
//	              TPM-generated signing key with an ECDSA, RSASSA or RSAPSS scheme
//	ErrSignature  the signature over Quote does not verify with the AK
//	              (or uses another scheme than the AK's)
//	ErrAttest     Quote is not a TPM-generated TPM_ST_ATTEST_QUOTE (also attest.ErrEvidence)
//	ErrNonce      extraData is not QualifyingData(reportData)
//	ErrPCRDigest  the evidence's PCR values do not hash to the quoted digest
//
// and attest.ErrEvidence for evidence that is malformed or inconsistent
// (wrong kind, PCR values missing, extra or of the wrong size, a bank other
// than SHA-256). PCR values are checked, not trusted: only the quoted ones
// are returned, and whether they are the expected boot is measure/tpm's and
// the policy's question.
package vtpm
