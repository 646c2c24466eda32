package deb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/ulikunitz/xz"
)

// LZMA2 decoding in pure Go runs at about 20 MB/s, and the kernel package's
// data.tar.xz decodes to over 100 MB. Multi-threaded xz splits its output
// into independent blocks, so parallelXZ decodes several blocks at once and
// hands their output on in order.
//
// Each block is decoded by ulikunitz/xz as a stream of its own: the original
// stream header, the block bytes, and a one-record index and footer built
// here. The decoder therefore still verifies the block check (CRC64 etc.)
// and that the block's sizes match what the original index said.
const (
	xzChunk    = 1 << 20 // unit handed from a worker to the reader
	xzAheadMax = 32      // chunks a worker may decode ahead of the reader
)

// errStopWork ends a worker whose reader was closed.
var errStopWork = errors.New("xz: reader closed")

type parallelXZ struct {
	sr      *io.SectionReader
	blocks  []xzBlock
	workers int
	next    int      // next block to start
	queue   []*xzJob // started blocks, in order; queue[0] is being read
	buf     []byte   // rest of the current chunk
	done    chan struct{}
	wg      sync.WaitGroup
	err     error
	closeMu sync.Once
}

type xzJob struct {
	out chan []byte // closed when the worker ends; err is set before
	err error
}

func newParallelXZ(sr *io.SectionReader, blocks []xzBlock, workers int) *parallelXZ {
	return &parallelXZ{sr: sr, blocks: blocks, workers: workers, done: make(chan struct{})}
}

func (p *parallelXZ) Read(b []byte) (int, error) {
	for len(p.buf) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		// Keep up to p.workers blocks in flight, the current one included,
		// so memory stays below workers * xzAheadMax * xzChunk.
		for len(p.queue) < p.workers && p.next < len(p.blocks) {
			p.queue = append(p.queue, p.start(p.blocks[p.next]))
			p.next++
		}
		if len(p.queue) == 0 {
			p.err = io.EOF
			continue
		}
		j := p.queue[0]
		chunk, ok := <-j.out
		if ok {
			p.buf = chunk
			continue
		}
		if j.err != nil {
			p.err = j.err
			continue
		}
		p.queue = p.queue[1:]
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	return n, nil
}

// Close stops the workers and waits for them, so none is left reading the
// file after Walk returns.
func (p *parallelXZ) Close() error {
	p.closeMu.Do(func() { close(p.done) })
	p.wg.Wait()
	return nil
}

func (p *parallelXZ) start(b xzBlock) *xzJob {
	j := &xzJob{out: make(chan []byte, xzAheadMax)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(j.out)
		j.err = p.decode(b, j.out)
	}()
	return j
}

// decode decodes block b and sends its output in chunks.
func (p *parallelXZ) decode(b xzBlock, out chan<- []byte) error {
	in := io.MultiReader(
		bytes.NewReader(b.stream),
		bufio.NewReaderSize(&stoppable{io.NewSectionReader(p.sr, b.offset, padded(b.unpadded)), p.done}, 1<<16),
		bytes.NewReader(xzTail(b)))
	zr, err := xz.ReaderConfig{DictCap: xzMinDict, SingleStream: true}.NewReader(in)
	if err != nil {
		return fmt.Errorf("xz block at offset %d: %w", b.offset, err)
	}
	var total int64
	for {
		chunk := make([]byte, xzChunk)
		n, err := readFill(zr, chunk)
		total += int64(n)
		if total > b.uncompressed {
			return fmt.Errorf("xz block at offset %d: decodes to more than the %d bytes its index record says", b.offset, b.uncompressed)
		}
		if n > 0 {
			select {
			case out <- chunk[:n]:
			case <-p.done:
				return errStopWork
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("xz block at offset %d: %w", b.offset, err)
		}
	}
}

// readFill reads until p is full or r fails; unlike io.ReadFull it leaves a
// decoder's io.ErrUnexpectedEOF distinguishable from a short final chunk.
func readFill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// xzTail builds the index and footer of a stream holding only block b
// (spec 4 and 2.1.2), so the decoder checks b against its index record.
func xzTail(b xzBlock) []byte {
	idx := []byte{0x00}
	idx = appendUvarint(idx, 1)
	idx = appendUvarint(idx, uint64(b.unpadded))
	idx = appendUvarint(idx, uint64(b.uncompressed))
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))

	foot := make([]byte, 4, xzHeaderLen)
	foot = binary.LittleEndian.AppendUint32(foot, uint32(len(idx)/4-1))
	foot = append(foot, b.stream[6:8]...)
	binary.LittleEndian.PutUint32(foot, crc32.ChecksumIEEE(foot[4:10]))
	foot = append(foot, xzFooterMagic...)
	return append(idx, foot...)
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// stoppable makes a worker's input fail once the reader is closed, so a
// worker in the middle of a block stops within one buffer fill.
type stoppable struct {
	r    io.Reader
	done <-chan struct{}
}

func (s *stoppable) Read(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, errStopWork
	default:
		return s.r.Read(p)
	}
}
