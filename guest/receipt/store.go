package receipt

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cocoon-appliance/cocoon/internal/durable"
)

// Journal record framing: 4-byte little-endian payload length, 4-byte
// CRC-32C (Castagnoli) of the payload, then the payload (one Signed as
// JSON). A record cut short by a crash, or whose CRC does not match, ends
// the journal: Open truncates it away (it was never fsynced, so nobody was
// told it exists).
const (
	journalName = "receipts.journal"
	ackedName   = "acked"
	headerSize  = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the store.
var (
	ErrJournal = errors.New("receipt: corrupt journal")
	ErrAck     = errors.New("receipt: bad acknowledgement")
)

// Store is the on-disk journal of signed receipts not yet acknowledged by
// the registry. Safe for concurrent use.
type Store struct {
	dir string

	mu      sync.Mutex
	f       *os.File
	next    uint64   // the next Seq
	acked   uint64   // every Seq <= acked is acknowledged
	pending []Signed // Seq > acked, in order
	// Truncated is how many bytes of a torn tail Open dropped.
	Truncated int64
}

// Open opens (creating) the store in dir, replays its journal and drops a
// torn tail.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{dir: dir}
	acked, err := readAcked(filepath.Join(dir, ackedName))
	if err != nil {
		return nil, err
	}
	s.acked = acked
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	good, last, err := s.replay(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	if end > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
		s.Truncated = end - good
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s.f = f
	s.next = max(last, acked) + 1
	return s, nil
}

// replay reads records from the start; it returns the offset after the
// last good record and the highest Seq seen. Receipts already acknowledged
// are skipped; a record that is whole and checksummed but does not decode
// or verify is corruption the store did not write: an error, not a tail.
func (s *Store) replay(f *os.File) (good int64, last uint64, err error) {
	r := bufio.NewReader(f)
	var hdr [headerSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return good, last, nil // EOF or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n == 0 || n > maxEncoded {
			return good, last, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return good, last, nil
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return good, last, nil
		}
		sr, err := Decode(bytes.NewReader(payload))
		if err != nil {
			return 0, 0, fmt.Errorf("%w: record at offset %d: %w", ErrJournal, good, err)
		}
		if sr.Receipt.Seq <= last {
			return 0, 0, fmt.Errorf("%w: record at offset %d has seq %d after %d", ErrJournal, good, sr.Receipt.Seq, last)
		}
		last = sr.Receipt.Seq
		if last > s.acked {
			s.pending = append(s.pending, *sr)
		}
		good += headerSize + int64(n)
	}
}

func readAcked(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %q", ErrJournal, path, b)
	}
	return v, nil
}

// Append numbers r, signs it with key, and writes it to the journal with
// fsync before returning: once Append returns, the receipt survives a
// crash.
func (s *Store) Append(r Receipt, key ed25519.PrivateKey) (Signed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return Signed{}, os.ErrClosed
	}
	r.V, r.Seq = Version, s.next
	sr, err := Sign(r, key)
	if err != nil {
		return Signed{}, err
	}
	payload, err := sr.Encode()
	if err != nil {
		return Signed{}, err
	}
	if len(payload) > maxEncoded {
		return Signed{}, fmt.Errorf("%w: encoded receipt of %d bytes, max %d", ErrInvalid, len(payload), maxEncoded)
	}
	rec := make([]byte, headerSize+len(payload))
	binary.LittleEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(payload, castagnoli))
	copy(rec[headerSize:], payload)
	off, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return Signed{}, err
	}
	if _, err := s.f.Write(rec); err != nil {
		s.f.Truncate(off) // best effort: leave no half record behind
		s.f.Seek(off, io.SeekStart)
		return Signed{}, fmt.Errorf("receipt: journal write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return Signed{}, fmt.Errorf("receipt: journal fsync: %w", err)
	}
	s.next++
	s.pending = append(s.pending, sr)
	return sr, nil
}

// Pending returns up to max receipts not yet acknowledged, oldest first.
func (s *Store) Pending(max int) []Signed {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(max, len(s.pending))
	return append([]Signed(nil), s.pending[:n]...)
}

// Len is the number of receipts not yet acknowledged.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Acked is the highest acknowledged Seq.
func (s *Store) Acked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Ack records that the registry holds every receipt with Seq <= through.
// It persists the cursor (write, fsync, rename, fsync the directory) before
// forgetting them; when nothing is pending any more the journal is
// emptied. An ack beyond the last receipt written is refused: the registry
// cannot hold what was never sent.
func (s *Store) Ack(through uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if through < s.acked {
		return nil // an old, repeated acknowledgement
	}
	if through >= s.next {
		return fmt.Errorf("%w: through %d, but the last receipt is %d", ErrAck, through, s.next-1)
	}
	if err := durable.WriteFile(filepath.Join(s.dir, ackedName), []byte(strconv.FormatUint(through, 10)+"\n"), 0o600); err != nil {
		return err
	}
	s.acked = through
	i := 0
	for i < len(s.pending) && s.pending[i].Receipt.Seq <= through {
		i++
	}
	s.pending = append([]Signed(nil), s.pending[i:]...)
	if len(s.pending) == 0 {
		// Everything in the journal is acknowledged and the cursor is on
		// disk: empty the journal. A crash before this leaves acknowledged
		// records that Open skips.
		if err := s.f.Truncate(0); err != nil {
			return err
		}
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return s.f.Sync()
	}
	return nil
}

// Close closes the journal.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
