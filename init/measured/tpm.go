package measured

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"github.com/cocoon-appliance/cocoon/measure/eventlog"
	"github.com/cocoon-appliance/cocoon/measure/runtime"
)

// TPM device nodes, the resource manager first (it lets other users share
// the TPM), and the kernel's copy of the firmware's TCG2 log.
var (
	TPMDevices = []string{"/dev/tpmrm0", "/dev/tpm0"}
	TPMLogPath = "/sys/kernel/security/tpm0/binary_bios_measurements"
)

// TPM is the vTPM of the development boot path (QEMU + swtpm + OVMF).
type TPM struct {
	// T carries the commands.
	T transport.TPM
	// LogPath is the firmware log; TPMLogPath when empty.
	LogPath string
}

// OpenTPM opens the first TPM device present. Close the returned closer
// when done.
func OpenTPM() (*TPM, transport.TPMCloser, error) {
	for _, p := range TPMDevices {
		t, err := linuxtpm.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("measured: opening %s: %w", p, err)
		}
		return &TPM{T: t, LogPath: TPMLogPath}, t, nil
	}
	return nil, nil, fmt.Errorf("%w: none of %v exists", ErrNotSupported, TPMDevices)
}

// Kind implements Registers.
func (*TPM) Kind() eventlog.Kind { return eventlog.TPM }

// pcrBatch: TPM2_PCR_Read (TPM 2.0 Part 3 §22.4) returns its values in a
// TPML_DIGEST, which holds at most 8 digests (Part 2 §10.9.2), so the 24
// PCRs are read in three selections.
const pcrBatch = 8

// Read implements Registers: PCRs 0-23 of the SHA-256 bank.
func (t *TPM) Read() (map[int][]byte, error) {
	out := make(map[int][]byte, 24)
	for lo := 0; lo < 24; lo += pcrBatch {
		var want []uint
		for i := lo; i < lo+pcrBatch; i++ {
			want = append(want, uint(i))
		}
		// The TPM may return fewer PCRs than selected; ask again for the rest.
		for len(want) > 0 {
			rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
				{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(want...)},
			}}}.Execute(t.T)
			if err != nil {
				return nil, fmt.Errorf("TPM2_PCR_Read %v: %w", want, err)
			}
			got, err := selected(rsp.PCRSelectionOut)
			if err != nil {
				return nil, err
			}
			if len(got) != len(rsp.PCRValues.Digests) {
				return nil, fmt.Errorf("TPM2_PCR_Read: %d PCRs selected in the response, %d digests", len(got), len(rsp.PCRValues.Digests))
			}
			if len(got) == 0 {
				return nil, fmt.Errorf("TPM2_PCR_Read %v: the SHA-256 bank returned no PCRs (bank not allocated?)", want)
			}
			done := map[uint]bool{}
			for j, i := range got {
				d := rsp.PCRValues.Digests[j].Buffer
				if len(d) != crypto.SHA256.Size() {
					return nil, fmt.Errorf("TPM2_PCR_Read: PCR %d has a %d-byte SHA-256 value", i, len(d))
				}
				out[int(i)] = append([]byte(nil), d...)
				done[i] = true
			}
			rest := want[:0:0]
			for _, i := range want {
				if !done[i] {
					rest = append(rest, i)
				}
			}
			want = rest
		}
	}
	return out, nil
}

// selected lists the SHA-256 PCRs a selection names, in ascending order
// (the order of the digests in TPM2_PCR_Read's response).
func selected(l tpm2.TPMLPCRSelection) ([]uint, error) {
	var out []uint
	for _, s := range l.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			return nil, fmt.Errorf("TPM2_PCR_Read: response selects bank 0x%x, asked for SHA-256", s.Hash)
		}
		for b, v := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if v&(1<<bit) != 0 {
					out = append(out, uint(b*8+bit))
				}
			}
		}
	}
	return out, nil
}

// EventLog implements Registers.
func (t *TPM) EventLog() ([]byte, error) {
	p := t.LogPath
	if p == "" {
		p = TPMLogPath
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s absent (securityfs not mounted, or no TCG2 log)", ErrNotSupported, p)
	}
	return b, err
}

// Extend implements Registers: TPM2_PCR_Extend (TPM 2.0 Part 3 §22.2) of
// PCR 15 in the SHA-256 bank only. The other banks are left as they are;
// a verifier of the dev path quotes SHA-256.
func (t *TPM) Extend(e runtime.Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(runtime.PCR), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA256, Digest: e.Digest(crypto.SHA256)},
		}},
	}.Execute(t.T)
	if err != nil {
		return fmt.Errorf("TPM2_PCR_Extend PCR %d: %w", runtime.PCR, err)
	}
	return nil
}
