package deb

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// limits bounds the memory and work one walk may cost. Real packages sit far
// below them; they exist so a hostile header cannot ask for gigabytes.
type limits struct {
	xzDict     int64  // largest LZMA2 dictionary accepted (xz -9 uses 64 MiB)
	zstdWindow uint64 // largest zstd window accepted
	xzWorkers  int    // xz blocks decoded in parallel; 1 = sequential
	maxOut     int64  // decompressed bytes allowed; 0 = unlimited
}

var defaultLimits = limits{
	xzDict:     64 << 20,
	zstdWindow: 128 << 20, // zstd --long=27; dpkg-deb uses the default 8 MiB
	xzWorkers:  min(runtime.GOMAXPROCS(0), 4),
}

// errOutputLimit ends a walk that decompressed more than limits.maxOut.
var errOutputLimit = errors.New("decompressed data exceeds limit")

// errStreamEnd replaces io.EOF under archive/tar: the tar reader takes a
// clean EOF at a header boundary as the end of the archive, but a complete
// tar ends with two zero blocks (POSIX ustar), and a stream that stops
// before them was cut. walk treats it as the normal end only after tar has
// seen those blocks.
var errStreamEnd = fmt.Errorf("data.tar stream ends before the tar end-of-archive blocks: %w", ErrTruncated)

// decompress returns the tar stream inside the member named name
// ("data.tar.xz"), chosen by suffix as dpkg does. Errors from the returned
// reader are tagged ErrTruncated or ErrCorrupt (see tagged).
func decompress(sr *io.SectionReader, name string, lim limits) (io.ReadCloser, error) {
	var rc io.ReadCloser
	switch ext := strings.TrimPrefix(name, "data.tar"); ext {
	case "":
		rc = io.NopCloser(bufio.NewReaderSize(sr, 1<<16))
	case ".gz":
		zr, err := gzip.NewReader(bufio.NewReaderSize(sr, 1<<16))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, streamErr(err))
		}
		rc = zr
	case ".zst":
		zr, err := zstd.NewReader(bufio.NewReaderSize(sr, 1<<16),
			zstd.WithDecoderMaxWindow(lim.zstdWindow),
			zstd.WithDecoderMaxMemory(lim.zstdWindow))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, streamErr(err))
		}
		rc = zr.IOReadCloser()
	case ".xz":
		xr, err := newXZReader(sr, lim)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, streamErr(err))
		}
		rc = xr
	default:
		return nil, fmt.Errorf("member %q: suffix %q, want none, .gz, .xz or .zst: %w", name, ext, ErrCompression)
	}
	out := &tagged{r: rc, c: rc, left: lim.maxOut}
	if lim.maxOut == 0 {
		out.left = -1
	}
	return out, nil
}

// tagged reports the end of the stream as errStreamEnd and marks every other
// error as truncation or corruption, so a caller can tell an interrupted
// download from a bad package with errors.Is, whatever the decompressor's
// own error values are.
type tagged struct {
	r    io.Reader
	c    io.Closer
	left int64 // bytes still allowed; negative = unlimited
	end  bool  // the decompressor returned io.EOF
}

func (t *tagged) Read(p []byte) (int, error) {
	if t.left == 0 {
		return 0, errOutputLimit
	}
	if t.left > 0 && int64(len(p)) > t.left {
		p = p[:t.left]
	}
	if t.end {
		return 0, errStreamEnd
	}
	n, err := t.r.Read(p)
	if t.left > 0 {
		t.left -= int64(n)
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		// Hand out the data now and the end on the next call, so that a
		// full read is never reported as failed.
		t.end = true
		if n > 0 {
			return n, nil
		}
		return 0, errStreamEnd
	}
	return n, streamErr(err)
}

func (t *tagged) Close() error { return t.c.Close() }

// streamErr classifies an error met while decoding data.tar: an unexpected
// EOF from any layer is ErrTruncated, anything not yet classified is
// ErrCorrupt. Both keep the original error in the chain.
func streamErr(err error) error {
	switch {
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrCorrupt), errors.Is(err, ErrCompression),
		errors.Is(err, errOutputLimit):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}
