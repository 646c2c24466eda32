package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// ErrCorruptState: the emulated ledger's state file is truncated or
// damaged. It is never reset silently: the ledger holds balances.
var ErrCorruptState = errors.New("chain: emulated state file is corrupt")

// State file layout (version 1), integers big-endian:
//
//	magic    "CCNLEDGR"
//	version  uint16 = 1
//	lt       uint64          next free logical time
//	now      uint32          last block time (unix)
//	naccts   uint32, then per account (ascending workchain, id):
//	         wc int32, id [32]byte, len uint32, BOC of its ShardAccount
//	ntxs     uint32, then per transaction (execution order, ascending LT):
//	         wc int32, len uint32, BOC of the Transaction
//	sha256   [32]byte of everything before it
//
// The message and account indexes are rebuilt from the transactions.
const (
	stateMagic   = "CCNLEDGR"
	stateVersion = 1
	stateHeader  = len(stateMagic) + 2 + 8 + 4
)

// encodeState is the whole file, checksum included.
func encodeState(l *ledger) []byte {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	b.Write(binary.BigEndian.AppendUint16(nil, stateVersion))
	b.Write(binary.BigEndian.AppendUint64(nil, l.lt))
	b.Write(binary.BigEndian.AppendUint32(nil, l.now))
	keys := sortedKeys(l.accounts)
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(keys))))
	for _, k := range keys {
		a := l.accounts[k]
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(k.wc)))
		b.Write(k.id[:])
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(a.boc))))
		b.Write(a.boc)
	}
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(l.txs))))
	for _, t := range l.txs {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(t.key.wc)))
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(t.boc))))
		b.Write(t.boc)
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// decodeState checks the checksum, then parses the body.
func decodeState(data []byte) (*ledger, error) {
	if len(data) < stateHeader+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes, shorter than header and checksum", ErrCorruptState, len(data))
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, fmt.Errorf("%w: checksum %x, want %x (truncated or modified)", ErrCorruptState, sum, want)
	}
	l, err := decodeBody(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	return l, nil
}

// reader consumes the body; every read is bounds-checked.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("need %d bytes, %d left", n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// count reads an entry count and refuses one the rest cannot hold.
func (r *reader) count(minEntry int) int {
	n := r.u32()
	if r.err == nil && uint64(n)*uint64(minEntry) > uint64(len(r.b)) {
		r.err = fmt.Errorf("%d entries cannot fit in %d bytes", n, len(r.b))
		return 0
	}
	return int(n)
}

// decodeBody parses everything but the checksum. It accepts only what
// encodeState writes: canonical order and BOCs, consistent LTs.
func decodeBody(body []byte) (l *ledger, err error) {
	// The cell and TL-B parsers are third-party code meeting damaged
	// input: a panic there is a corrupt file, not a crash.
	defer func() {
		if p := recover(); p != nil {
			l, err = nil, fmt.Errorf("parser panic: %v", p)
		}
	}()
	r := &reader{b: body}
	if magic := r.take(len(stateMagic)); r.err == nil && string(magic) != stateMagic {
		return nil, fmt.Errorf("magic %q, want %q", magic, stateMagic)
	}
	if v := r.u16(); r.err == nil && v != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", v, stateVersion)
	}
	l = newLedger()
	l.lt = r.u64()
	l.now = r.u32()
	n := r.count(4 + 32 + 4)
	var prev *accountKey
	for i := 0; i < n && r.err == nil; i++ {
		var k accountKey
		k.wc = int32(r.u32())
		copy(k.id[:], r.take(32))
		boc := r.take(int(r.u32()))
		if r.err != nil {
			break
		}
		if !knownWorkchain(k.wc) {
			return nil, fmt.Errorf("account %d: workchain %d", i, k.wc)
		}
		if prev != nil && !keyLess(*prev, k) {
			return nil, fmt.Errorf("account %d (%s) out of order", i, k.address().StringRaw())
		}
		prev = &k
		a, err := parseAccountEntry(k, boc)
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", i, err)
		}
		if a.shard.LastTransLT >= l.lt {
			return nil, fmt.Errorf("account %s: last transaction LT %d, want below ledger LT %d", k.address().StringRaw(), a.shard.LastTransLT, l.lt)
		}
		l.accounts[k] = a
	}
	n = r.count(4 + 4)
	var lastLT uint64
	for i := 0; i < n && r.err == nil; i++ {
		wc := int32(r.u32())
		boc := r.take(int(r.u32()))
		if r.err != nil {
			break
		}
		if !knownWorkchain(wc) {
			return nil, fmt.Errorf("transaction %d: workchain %d", i, wc)
		}
		c, err := cell.FromBOC(boc)
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		t, err := newTxRecord(wc, c)
		if err != nil {
			return nil, fmt.Errorf("transaction %d: %w", i, err)
		}
		if !bytes.Equal(t.boc, boc) {
			return nil, fmt.Errorf("transaction %d: BOC is not in canonical form", i)
		}
		if t.tx.LT <= lastLT || t.tx.LT >= l.lt {
			return nil, fmt.Errorf("transaction %d: LT %d, want in (%d, %d)", i, t.tx.LT, lastLT, l.lt)
		}
		lastLT = t.tx.LT
		l.add(t)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(r.b))
	}
	// Each account's shard state names its last transaction: it must be
	// the last one the file lists for that account.
	for k, a := range l.accounts {
		idx := l.byAcct[k]
		if len(idx) == 0 {
			return nil, fmt.Errorf("account %s has no transactions", k.address().StringRaw())
		}
		last := l.txs[idx[len(idx)-1]].tx
		if last.LT != a.shard.LastTransLT || !bytes.Equal(last.Hash, a.shard.LastTransHash) {
			return nil, fmt.Errorf("account %s: last transaction %d:%x, its state says %d:%x",
				k.address().StringRaw(), last.LT, last.Hash, a.shard.LastTransLT, a.shard.LastTransHash)
		}
	}
	return l, nil
}

// loadState reads path; a missing file is an empty ledger. A leftover
// temporary file (a crash between write and rename) is not looked at: the
// state is whatever the last rename installed.
func loadState(path string) (*ledger, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newLedger(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read emulated state: %w", err)
	}
	l, err := decodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// knownWorkchain: the masterchain (-1) and the basechain (0) are the
// workchains TON has.
func knownWorkchain(wc int32) bool { return wc == -1 || wc == 0 }
