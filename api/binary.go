package api

import (
	"encoding/binary"
	"fmt"
)

// BytesElementOverhead is the length prefix of one BYTES tensor element in
// binary data.
const BytesElementOverhead = 4

// MaxBytesElement is the largest BYTES element the framing can carry.
const MaxBytesElement = 1<<32 - 1

// AppendBytesElement appends b framed as one BYTES tensor element: its
// length as 4 bytes little-endian, then b. It panics if b is longer than
// MaxBytesElement.
func AppendBytesElement(dst, b []byte) []byte {
	if int64(len(b)) > MaxBytesElement {
		panic(fmt.Sprintf("api: BYTES element of %d bytes", len(b)))
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// BytesElementPrefix returns the 4-byte length prefix of a BYTES element of
// n bytes, for callers that stream the element itself.
func BytesElementPrefix(n int) [BytesElementOverhead]byte {
	var p [BytesElementOverhead]byte
	binary.LittleEndian.PutUint32(p[:], uint32(n))
	return p
}

// SplitBytesElements splits the binary data of a BYTES tensor into its
// elements. The elements alias data. It fails if the framing is truncated,
// has trailing bytes, or holds a different number of elements than want.
func SplitBytesElements(data []byte, want int) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(out) == want {
			return nil, fmt.Errorf("BYTES data has %d bytes after its %d element(s)", len(data), want)
		}
		if len(data) < BytesElementOverhead {
			return nil, fmt.Errorf("BYTES element %d: truncated length prefix (%d bytes)", len(out), len(data))
		}
		n := binary.LittleEndian.Uint32(data)
		data = data[BytesElementOverhead:]
		if uint64(n) > uint64(len(data)) {
			return nil, fmt.Errorf("BYTES element %d: length prefix says %d bytes, %d remain", len(out), n, len(data))
		}
		out = append(out, data[:n])
		data = data[n:]
	}
	if len(out) != want {
		return nil, fmt.Errorf("BYTES data has %d element(s), want %d", len(out), want)
	}
	return out, nil
}
