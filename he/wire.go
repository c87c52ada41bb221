package he

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v6/ring"
)

// Wire formats are hegate's own, so that no library parser ever sees
// untrusted bytes: a fixed 64-byte header, then polynomial coefficients as
// little-endian uint64, one modulus after the other, each checked to be
// below its modulus. Every size is fixed by the model, so a length check
// comes before anything is allocated.

const headerSize = 64

var (
	magicCiphertext = [4]byte{'H', 'G', 'C', 'T'}
	magicKeySet     = [4]byte{'H', 'G', 'K', 'S'}
	magicSecretKey  = [4]byte{'H', 'G', 'S', 'K'}
)

const wireVersion = 1

// errShort is returned when the input ends early.
var errShort = errors.New("input ends early")

// rangeError reports a coefficient that is not below its modulus.
type rangeError struct {
	index          int
	value, modulus uint64
}

func (e *rangeError) Error() string {
	// The value itself is not echoed: it is the client's content.
	return fmt.Sprintf("coefficient %d is not below its modulus %d", e.index, e.modulus)
}

// coeffReader reads coefficient rows and checks their range.
type coeffReader struct {
	r   *bufio.Reader
	buf []byte
	n   int64 // bytes consumed
}

func newCoeffReader(r io.Reader) *coeffReader {
	return &coeffReader{r: bufio.NewReaderSize(r, 1<<16), buf: make([]byte, 8<<10)}
}

func (cr *coeffReader) full(p []byte) error {
	k, err := io.ReadFull(cr.r, p)
	cr.n += int64(k)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return errShort
	}
	return err
}

// row reads len(dst) coefficients into dst (or discards them if dst is a
// scratch row) and checks each is below q.
func (cr *coeffReader) row(dst []uint64, q uint64) error {
	for off := 0; off < len(dst); {
		chunk := min(len(cr.buf)/8, len(dst)-off)
		b := cr.buf[:chunk*8]
		if err := cr.full(b); err != nil {
			return err
		}
		for i := 0; i < chunk; i++ {
			v := binary.LittleEndian.Uint64(b[8*i:])
			if v >= q {
				return &rangeError{index: off + i, value: v, modulus: q}
			}
			dst[off+i] = v
		}
		off += chunk
	}
	return nil
}

// poly reads every row of p (levels 0..len(p.Coeffs)-1) against moduli.
func (cr *coeffReader) poly(p ring.Poly, moduli []uint64) error {
	for l := range p.Coeffs {
		if err := cr.row(p.Coeffs[l], moduli[l]); err != nil {
			return err
		}
	}
	return nil
}

// atEOF reports an error if anything follows.
func (cr *coeffReader) atEOF() error {
	if _, err := cr.r.ReadByte(); err != io.EOF {
		return errors.New("unexpected bytes after the end")
	}
	return nil
}

// coeffWriter writes coefficient rows.
type coeffWriter struct {
	w   *bufio.Writer
	buf []byte
	n   int64
	err error
}

func newCoeffWriter(w io.Writer) *coeffWriter {
	return &coeffWriter{w: bufio.NewWriterSize(w, 1<<16), buf: make([]byte, 8<<10)}
}

func (cw *coeffWriter) bytes(p []byte) {
	if cw.err != nil {
		return
	}
	k, err := cw.w.Write(p)
	cw.n += int64(k)
	cw.err = err
}

func (cw *coeffWriter) row(src []uint64) {
	for off := 0; off < len(src) && cw.err == nil; {
		chunk := min(len(cw.buf)/8, len(src)-off)
		for i := 0; i < chunk; i++ {
			binary.LittleEndian.PutUint64(cw.buf[8*i:], src[off+i])
		}
		cw.bytes(cw.buf[:chunk*8])
		off += chunk
	}
}

func (cw *coeffWriter) poly(p ring.Poly) {
	for l := range p.Coeffs {
		cw.row(p.Coeffs[l])
	}
}

func (cw *coeffWriter) flush() (int64, error) {
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}
