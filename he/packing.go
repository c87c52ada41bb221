package he

import "github.com/hegate/hegate/he/ir"

// inputPacking says how the device lays its input out in the slots.
type inputPacking struct {
	// im2col is set when the input's one reader is a convolution that the
	// device unrolls; otherwise the input goes in as it is (row-major).
	im2col *im2colPacking
}

// im2colPacking: the device sends the convolution's input already unrolled
// into patches, so the convolution becomes a matrix with only
// (patch size + channels − 1) non-zero diagonals.
type im2colPacking struct {
	c, h, w int // input shape
	kernel  [2]int
	stride  [2]int
	pads    [4]int
	oh, ow  int
	// block is the slot distance between two patch elements (and between
	// two output channels of the convolution): oh·ow, or the next power of
	// two, which makes the convolution's diagonals multiples of a power of
	// two and so needs far fewer rotation keys.
	block int
}

func (q *im2colPacking) patch() int { return q.c * q.kernel[0] * q.kernel[1] }

// size is the number of slots the packed input spans.
func (p inputPacking) size(inputSize int) int {
	if p.im2col != nil {
		q := p.im2col
		return (q.patch()-1)*q.block + q.oh*q.ow
	}
	return inputSize
}

func (p inputPacking) manifest() *Packing {
	if p.im2col == nil {
		return nil
	}
	q := p.im2col
	return &Packing{Kind: "im2col", Kernel: q.kernel, Stride: q.stride, Pads: q.pads, Block: q.block}
}

// pack lays x out as the device must encrypt it.
func (p inputPacking) pack(x []float64) []float64 {
	if p.im2col == nil {
		return append([]float64(nil), x...)
	}
	q := p.im2col
	out := make([]float64, p.size(len(x)))
	kh, kw := q.kernel[0], q.kernel[1]
	for c := 0; c < q.c; c++ {
		for ky := 0; ky < kh; ky++ {
			for kx := 0; kx < kw; kx++ {
				patch := (c*kh+ky)*kw + kx
				for oy := 0; oy < q.oh; oy++ {
					iy := oy*q.stride[0] + ky - q.pads[0]
					if iy < 0 || iy >= q.h {
						continue
					}
					for ox := 0; ox < q.ow; ox++ {
						ix := ox*q.stride[1] + kx - q.pads[1]
						if ix < 0 || ix >= q.w {
							continue
						}
						out[patch*q.block+oy*q.ow+ox] = x[(c*q.h+iy)*q.w+ix]
					}
				}
			}
		}
	}
	return out
}

// applyIm2col rewrites the circuit so that its input is the unrolled input
// of its first convolution, when every reader of the input is a
// convolution of one geometry (a ReLU's normalisation may read the input
// through a second, scaled copy of the convolution) and the unrolled input
// fits maxSlots. It returns the packing (zero when the input goes in as it
// is).
func (c *circuit) applyIm2col(maxSlots int) inputPacking {
	users := c.consumers()[c.input]
	shape := c.values[c.input].shape
	if len(users) == 0 || len(shape) != 3 {
		return inputPacking{}
	}
	var first *ir.Conv
	for _, u := range users {
		n := c.nodes[u]
		if n.kind != kindLinear || n.conv == nil || len(n.terms) != 1 {
			return inputPacking{}
		}
		if first == nil {
			first = n.conv
		} else if n.conv.Kernel != first.Kernel || n.conv.Stride != first.Stride || n.conv.Pads != first.Pads {
			return inputPacking{}
		}
	}
	oh, ow := first.OutputHW(shape[1], shape[2])
	q := &im2colPacking{c: shape[0], h: shape[1], w: shape[2], kernel: first.Kernel, stride: first.Stride, pads: first.Pads, oh: oh, ow: ow, block: oh * ow}
	outChannels := 0
	for _, u := range users {
		outChannels = max(outChannels, c.nodes[u].conv.OutChannels)
	}
	isOutput := false
	for _, u := range users {
		isOutput = isOutput || c.nodes[u].out == c.output
	}
	if padded := nextPow2(oh * ow); !isOutput && max(q.patch(), outChannels)*padded <= maxSlots {
		q.block = padded
	}
	p := inputPacking{im2col: q}
	if p.size(ir.Prod(shape)) > maxSlots {
		return inputPacking{}
	}
	packed := c.newValue([]int{p.size(ir.Prod(shape))})
	c.input = packed
	positions := oh * ow
	patch := q.patch()
	for _, u := range users {
		n := c.nodes[u]
		conv := n.conv
		// out[o·P + pos] = Σ_k W[o][k] · v[k·B + pos] (+ bias, unchanged).
		var w []ir.Entry
		for o := 0; o < conv.OutChannels; o++ {
			for pos := 0; pos < positions; pos++ {
				for k := 0; k < patch; k++ {
					if v := conv.Weights[o*patch+k]; v != 0 {
						w = append(w, ir.Entry{Row: o*positions + pos, Col: k*q.block + pos, W: v})
					}
				}
			}
		}
		n.terms = []term{{in: packed, w: w}}
		n.in = []int{packed}
	}
	return p
}
