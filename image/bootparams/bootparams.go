// Package bootparams is the contract between the image builder, which writes
// the kernel command line, and the guest init, which reads it.
//
// The command line is measured (TDX RTMR2, TPM PCR 9 via the EFI stub), so
// everything the init needs to open the root filesystem is put there: the
// whole dm-verity table. The init then has nothing unmeasured to trust.
//
//	console=ttyS0 panic=-1 ro cocoon.verity=<dm-verity table, commas for spaces>
//
// The table's fields are those of the kernel's dm-verity target, in order
// (Documentation/admin-guide/device-mapper/verity.rst):
//
//	<version> <data_dev> <hash_dev> <data_block_size> <hash_block_size>
//	<num_data_blocks> <hash_start_block> <algorithm> <digest> <salt>
//
// with data_dev and hash_dev given as PARTUUID=<uuid> (the init resolves
// them from the GPT), and hash_start_block counted in hash blocks (1: the
// tree follows a one-block verity superblock).
package bootparams

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalid is returned for a command line without a usable verity table.
var ErrInvalid = errors.New("bootparams: invalid kernel command line")

// Key is the command line parameter that carries the verity table.
const Key = "cocoon.verity"

// Verity is a dm-verity table.
type Verity struct {
	Version        int    // hash format version: 1 (the only one cryptsetup writes by default)
	DataDevice     string // PARTUUID=<uuid>
	HashDevice     string // PARTUUID=<uuid>
	DataBlockSize  uint32
	HashBlockSize  uint32
	DataBlocks     uint64
	HashStartBlock uint64
	Algorithm      string // "sha256"
	RootHash       []byte
	Salt           []byte // empty is written "-" as dm-verity wants
}

// Params is a parsed command line.
type Params struct {
	Console string // console= value; empty omits it
	Verity  Verity
	// Extra holds the other words, in order, passed through unchanged.
	Extra []string
}

var partuuidRE = regexp.MustCompile(`^PARTUUID=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Validate checks a table is one the init can load.
func (v Verity) Validate() error {
	switch {
	case v.Version != 1:
		return fmt.Errorf("%w: verity version %d, want 1", ErrInvalid, v.Version)
	case !partuuidRE.MatchString(v.DataDevice):
		return fmt.Errorf("%w: data device %q, want PARTUUID=<lowercase uuid>", ErrInvalid, v.DataDevice)
	case !partuuidRE.MatchString(v.HashDevice):
		return fmt.Errorf("%w: hash device %q, want PARTUUID=<lowercase uuid>", ErrInvalid, v.HashDevice)
	case !blockSizeOK(v.DataBlockSize) || !blockSizeOK(v.HashBlockSize):
		return fmt.Errorf("%w: block sizes %d/%d, want powers of two in 512..524288", ErrInvalid, v.DataBlockSize, v.HashBlockSize)
	case v.DataBlocks == 0:
		return fmt.Errorf("%w: zero data blocks", ErrInvalid)
	case v.Algorithm != "sha256":
		return fmt.Errorf("%w: algorithm %q, want sha256", ErrInvalid, v.Algorithm)
	case len(v.RootHash) != 32:
		return fmt.Errorf("%w: root hash of %d bytes, want 32", ErrInvalid, len(v.RootHash))
	case len(v.Salt) > 256:
		return fmt.Errorf("%w: salt of %d bytes, want at most 256", ErrInvalid, len(v.Salt))
	}
	return nil
}

func blockSizeOK(n uint32) bool { return n >= 512 && n <= 512*1024 && n&(n-1) == 0 }

// Table renders the dm-verity target parameters, space separated, as the
// device-mapper DM_TABLE_LOAD ioctl takes them.
func (v Verity) Table(dataDev, hashDev string) string {
	return strings.Join(v.fields(dataDev, hashDev), " ")
}

func (v Verity) fields(dataDev, hashDev string) []string {
	salt := "-"
	if len(v.Salt) > 0 {
		salt = hex.EncodeToString(v.Salt)
	}
	return []string{
		strconv.Itoa(v.Version), dataDev, hashDev,
		strconv.FormatUint(uint64(v.DataBlockSize), 10), strconv.FormatUint(uint64(v.HashBlockSize), 10),
		strconv.FormatUint(v.DataBlocks, 10), strconv.FormatUint(v.HashStartBlock, 10),
		v.Algorithm, hex.EncodeToString(v.RootHash), salt,
	}
}

// Format renders the command line.
func Format(p Params) (string, error) {
	if err := p.Verity.Validate(); err != nil {
		return "", err
	}
	var words []string
	if p.Console != "" {
		words = append(words, "console="+p.Console)
	}
	words = append(words, "panic=-1", "ro", Key+"="+strings.Join(p.Verity.fields(p.Verity.DataDevice, p.Verity.HashDevice), ","))
	for _, w := range p.Extra {
		if w == "" || strings.ContainsAny(w, " \t\n\"") || strings.HasPrefix(w, Key+"=") {
			return "", fmt.Errorf("%w: extra word %q", ErrInvalid, w)
		}
		words = append(words, w)
	}
	return strings.Join(words, " "), nil
}

// Parse reads a command line (as in /proc/cmdline; OVMF's " initrd=initrd"
// suffix and other words are kept in Extra). Exactly one cocoon.verity is
// required.
func Parse(cmdline string) (Params, error) {
	var p Params
	found := false
	for _, w := range strings.Fields(cmdline) {
		switch {
		case strings.HasPrefix(w, Key+"="):
			if found {
				return Params{}, fmt.Errorf("%w: %s given twice", ErrInvalid, Key)
			}
			v, err := parseTable(strings.TrimPrefix(w, Key+"="))
			if err != nil {
				return Params{}, err
			}
			p.Verity, found = v, true
		case strings.HasPrefix(w, "console=") && p.Console == "":
			p.Console = strings.TrimPrefix(w, "console=")
		case w == "panic=-1" || w == "ro":
		default:
			p.Extra = append(p.Extra, w)
		}
	}
	if !found {
		return Params{}, fmt.Errorf("%w: no %s= parameter", ErrInvalid, Key)
	}
	return p, nil
}

func parseTable(s string) (Verity, error) {
	f := strings.Split(s, ",")
	if len(f) != 10 {
		return Verity{}, fmt.Errorf("%w: %s has %d fields, want 10", ErrInvalid, Key, len(f))
	}
	var v Verity
	var err error
	num := func(i int, bits int) uint64 {
		if err != nil {
			return 0
		}
		var n uint64
		n, err = strconv.ParseUint(f[i], 10, bits)
		if err != nil {
			err = fmt.Errorf("%w: %s field %d: %q is not a number", ErrInvalid, Key, i+1, f[i])
		}
		return n
	}
	v.Version = int(num(0, 8))
	v.DataDevice, v.HashDevice = f[1], f[2]
	v.DataBlockSize = uint32(num(3, 32))
	v.HashBlockSize = uint32(num(4, 32))
	v.DataBlocks = num(5, 64)
	v.HashStartBlock = num(6, 64)
	v.Algorithm = f[7]
	if err != nil {
		return Verity{}, err
	}
	if v.RootHash, err = hex.DecodeString(f[8]); err != nil || strings.ToLower(f[8]) != f[8] {
		return Verity{}, fmt.Errorf("%w: root hash %q is not lowercase hex", ErrInvalid, f[8])
	}
	if f[9] != "-" {
		if v.Salt, err = hex.DecodeString(f[9]); err != nil || len(v.Salt) == 0 || strings.ToLower(f[9]) != f[9] {
			return Verity{}, fmt.Errorf("%w: salt %q is not lowercase hex or -", ErrInvalid, f[9])
		}
	}
	return v, v.Validate()
}
