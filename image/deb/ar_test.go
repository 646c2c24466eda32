package deb

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestMembers(t *testing.T) {
	valid := arArchive(arMember{"debian-binary", []byte("2.0\n")}, arMember{"odd", []byte("abc")}, arMember{"data.tar/", []byte("xy")})
	// Header of the first member starts at 8; its size field at 8+48.
	withSize := func(size string) []byte {
		b := bytes.Clone(valid)
		copy(b[8+arSizeOff:8+arSizeOff+arSizeLen], size)
		return b
	}
	withName := func(name string) []byte {
		b := bytes.Clone(valid)
		copy(b[8:8+arNameLen], name)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want []Member
		err  error
	}{
		{name: "valid", in: valid, want: []Member{
			{Name: "debian-binary", Offset: 68, Size: 4},
			{Name: "odd", Offset: 132, Size: 3},
			{Name: "data.tar", Offset: 196, Size: 2}, // after the pad byte of "odd"
		}},
		{name: "magic only", in: []byte(arMagic), want: nil},
		{name: "empty file", in: nil, err: ErrTruncated},
		{name: "cut magic", in: []byte("!<ar"), err: ErrTruncated},
		{name: "bad magic", in: []byte("!<arch>\r"), err: ErrNotDeb},
		{name: "gzip file", in: []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, err: ErrNotDeb},
		{name: "truncated header", in: valid[:8+59], err: ErrTruncated},
		{name: "truncated member", in: valid[:8+60+3], err: ErrTruncated},
		{name: "missing pad byte", in: valid[:132+3], err: ErrTruncated},
		{name: "bad end marker", in: func() []byte { b := bytes.Clone(valid); b[8+58] = '\''; return b }(), err: ErrNotDeb},
		{name: "negative size", in: withSize("-4        "), err: ErrNotDeb},
		{name: "hex size", in: withSize("0x4       "), err: ErrNotDeb},
		{name: "inner space", in: withSize("1 2       "), err: ErrNotDeb},
		{name: "empty size", in: withSize("          "), err: ErrNotDeb},
		{name: "huge size", in: withSize("9999999999"), err: ErrTruncated},
		{name: "empty name", in: withName("/               "), err: ErrNotDeb},
		{name: "GNU long name table", in: withName("//              "), err: ErrNotDeb},
		{name: "BSD long name", in: withName("#1/13           "), err: ErrNotDeb},
		{name: "slash in name", in: withName("a/b             "), err: ErrNotDeb},
		{name: "NUL in name", in: withName("debian\x00binary  "), err: ErrNotDeb},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Members(bytes.NewReader(tc.in), int64(len(tc.in)))
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Members() error = %v, want %v", err, tc.err)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Members() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A reader that holds fewer bytes than the size it is given with is a file
// that shrank under us: ErrTruncated, not a bare io.EOF.
func TestMembersShortReader(t *testing.T) {
	valid := arArchive(arMember{"debian-binary", []byte("2.0\n")})
	_, err := Members(bytes.NewReader(valid[:30]), int64(len(valid)))
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Members() error = %v, want ErrTruncated", err)
	}
}
