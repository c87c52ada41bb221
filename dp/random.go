package dp

import (
	"fmt"
	"io"
	"math/big"
	"math/bits"
)

// randomBufferSize is how many bytes bitSource reads from its io.Reader at a
// time. Reading in blocks keeps the per-draw cost of crypto/rand low.
const randomBufferSize = 512

// bitSource hands out uniformly random bits read from an io.Reader, keeping
// unused bits for the next request so that small draws (a coin flip, a
// Bernoulli(1/K)) cost only the bits they need.
type bitSource struct {
	r     io.Reader
	buf   [randomBufferSize]byte
	pos   int    // next unread byte of buf; len(buf) when empty
	word  uint64 // unused random bits, least significant first
	nbits uint   // how many bits of word are unused
}

func newBitSource(r io.Reader) *bitSource {
	return &bitSource{r: r, pos: randomBufferSize}
}

// fill refills buf from the reader.
func (b *bitSource) fill() error {
	if b.r == nil {
		return fmt.Errorf("%w: sampler has no randomness source (nil io.Reader)", ErrInvalidParameter)
	}
	if _, err := io.ReadFull(b.r, b.buf[:]); err != nil {
		return fmt.Errorf("dp: reading randomness: %w", err)
	}
	b.pos = 0
	return nil
}

// readBytes fills dst with random bytes.
func (b *bitSource) readBytes(dst []byte) error {
	for len(dst) > 0 {
		if b.pos == len(b.buf) {
			if err := b.fill(); err != nil {
				return err
			}
		}
		n := copy(dst, b.buf[b.pos:])
		b.pos += n
		dst = dst[n:]
	}
	return nil
}

// nextWord returns 64 fresh random bits.
func (b *bitSource) nextWord() (uint64, error) {
	if len(b.buf)-b.pos < 8 {
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	p := b.buf[b.pos : b.pos+8]
	b.pos += 8
	return uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
		uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56, nil
}

// bits returns k uniformly random bits, 1 <= k <= 64, as the low bits of the
// result.
func (b *bitSource) bits(k uint) (uint64, error) {
	mask := ^uint64(0) >> (64 - k)
	if b.nbits >= k {
		v := b.word & mask
		b.word >>= k // k == 64 only when nbits == 64; Go defines this shift as 0
		b.nbits -= k
		return v, nil
	}
	low, have := b.word, b.nbits
	w, err := b.nextWord()
	if err != nil {
		return 0, err
	}
	need := k - have
	v := (low | w<<have) & mask
	b.word = w >> need
	b.nbits = 64 - need
	return v, nil
}

// uniformUint64 returns a uniform integer in [0, n), n >= 1, by rejection:
// it draws bitlen(n-1) random bits and retries when the value is >= n, so
// there is no modulo bias. The expected number of tries is below 2.
func (b *bitSource) uniformUint64(n uint64) (uint64, error) {
	if n == 0 {
		return 0, fmt.Errorf("%w: uniform draw from an empty range", ErrInvalidParameter)
	}
	if n == 1 {
		return 0, nil
	}
	k := uint(bits.Len64(n - 1))
	for {
		v, err := b.bits(k)
		if err != nil {
			return 0, err
		}
		if v < n {
			return v, nil
		}
	}
}

// bigScratch holds the buffers of uniformBig so that repeated draws do not
// allocate.
type bigScratch struct {
	bytes []byte
}

// uniformBig sets dst to a uniform integer in [0, n), n >= 1, by rejection
// on bitlen(n-1) random bits, and returns dst.
func (b *bitSource) uniformBig(dst, n *big.Int, s *bigScratch) (*big.Int, error) {
	if n.Sign() <= 0 {
		return nil, fmt.Errorf("%w: uniform draw from an empty range", ErrInvalidParameter)
	}
	if n.IsUint64() {
		v, err := b.uniformUint64(n.Uint64())
		if err != nil {
			return nil, err
		}
		return dst.SetUint64(v), nil
	}
	k := n.BitLen() // bit length of n-1 ...
	if n.TrailingZeroBits() == uint(k-1) {
		k-- // ... which is one less when n is a power of two
	}
	nbytes := (k + 7) / 8
	if cap(s.bytes) < nbytes {
		s.bytes = make([]byte, nbytes)
	}
	buf := s.bytes[:nbytes]
	topMask := byte(0xff >> (8*nbytes - k))
	for {
		if err := b.readBytes(buf); err != nil {
			return nil, err
		}
		buf[0] &= topMask
		dst.SetBytes(buf)
		if dst.Cmp(n) < 0 {
			return dst, nil
		}
	}
}
