package squashfs

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// codec compresses data and metadata blocks. Both codecs come from
// klauspost/compress, pinned by go.sum, rather than the standard library,
// so that the image bytes do not change with the Go toolchain's compress/flate.
//
// Every block is compressed on its own (squashfs has no streams across
// blocks), single threaded, so output depends only on the input bytes.
type codec interface {
	id() uint16
	compress(src []byte) ([]byte, error)
	// decompress returns at most max bytes or an error, whatever the input
	// claims; callers that know the exact size check it.
	decompress(src []byte, max int) ([]byte, error)
}

func newCodec(name string) (codec, error) {
	switch name {
	case "", "gzip":
		return &gzipCodec{}, nil
	case "zstd":
		return newZstd()
	case "xz", "lzma", "lzo", "lz4":
		return nil, fmt.Errorf("%w: compression %q: offered are gzip and zstd", ErrUnsupported, name)
	}
	return nil, fmt.Errorf("%w: compression %q, want gzip or zstd", ErrOptions, name)
}

func codecByID(id uint16) (codec, error) {
	switch id {
	case compGzip:
		return &gzipCodec{}, nil
	case compZstd:
		return newZstd()
	case compLzma, compLzo, compXz, compLz4:
		return nil, fmt.Errorf("%w: compression id %d: Read handles gzip (1) and zstd (6)", ErrUnsupported, id)
	}
	return nil, fmt.Errorf("%w: compression id %d is not a squashfs compressor", ErrFormat, id)
}

// gzipCodec writes zlib streams (RFC 1950), which is what squashfs calls gzip:
// mksquashfs uses zlib's compress2, the kernel zlib_inflate. Level 9 is
// mksquashfs's default, so no compressor options need to be stored.
type gzipCodec struct {
	w   *zlib.Writer
	buf bytes.Buffer
}

func (*gzipCodec) id() uint16 { return compGzip }

func (g *gzipCodec) compress(src []byte) ([]byte, error) {
	g.buf.Reset()
	if g.w == nil {
		w, err := zlib.NewWriterLevel(&g.buf, zlib.BestCompression)
		if err != nil {
			return nil, err
		}
		g.w = w
	} else {
		g.w.Reset(&g.buf)
	}
	if _, err := g.w.Write(src); err != nil {
		return nil, err
	}
	if err := g.w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(g.buf.Bytes()), nil
}

func (*gzipCodec) decompress(src []byte, max int) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%w: zlib: %w", ErrFormat, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: zlib: %w", ErrFormat, err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: block inflates to more than %d bytes", ErrFormat, max)
	}
	return out, nil
}

// zstdCodec writes single-segment frames: their window is the frame's own
// size, at most the block size. The kernel's decoder (zstd_wrapper.c) only
// allows a window of max(block size, 8 KiB), and klauspost would otherwise
// declare an 8 MiB window for blocks under 1 KiB.
type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newZstd() (*zstdCodec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithEncoderConcurrency(1),
		zstd.WithSingleSegment(true))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(2<<20),
		zstd.WithDecoderMaxWindow(1<<20))
	if err != nil {
		return nil, err
	}
	return &zstdCodec{enc: enc, dec: dec}, nil
}

func (*zstdCodec) id() uint16 { return compZstd }

func (z *zstdCodec) compress(src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, nil), nil
}

func (z *zstdCodec) decompress(src []byte, max int) ([]byte, error) {
	out, err := z.dec.DecodeAll(src, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", ErrFormat, err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: block decompresses to %d bytes, more than %d", ErrFormat, len(out), max)
	}
	return out, nil
}
