package mnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadTest(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir, Test)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Images) != 10000 || len(s.Labels) != 10000 || s.Len() != 10000 {
		t.Fatalf("got %d images and %d labels, want 10000", len(s.Images), len(s.Labels))
	}
	var counts [Classes]int
	for i, l := range s.Labels {
		if l < 0 || l >= Classes {
			t.Fatalf("label %d is %d", i, l)
		}
		counts[l]++
	}
	for d, c := range counts {
		// Every digit has between 892 and 1135 test images.
		if c < 850 || c > 1200 {
			t.Errorf("digit %d has %d test images", d, c)
		}
	}
	lo, hi := 1.0, 0.0
	for i, img := range s.Images {
		if len(img) != Pixels {
			t.Fatalf("image %d has %d pixels", i, len(img))
		}
		for _, v := range img {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if lo != 0 || hi != 1 {
		t.Errorf("pixel range [%v, %v], want [0, 1]", lo, hi)
	}
	// The first test image is a 7; its centre row has ink, its corner none.
	if s.Labels[0] != 7 {
		t.Errorf("first test label %d, want 7", s.Labels[0])
	}
	if s.Images[0][0] != 0 {
		t.Errorf("first test image has ink in the corner")
	}
}

func TestLoadTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 60,000 images")
	}
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir, Train)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 60000 || len(s.Images) != 60000 {
		t.Fatalf("got %d images, want 60000", s.Len())
	}
}

func TestDirEnv(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv(EnvDir, tmp)
	if _, err := Dir(); err == nil || !strings.Contains(err.Error(), EnvDir) {
		t.Fatalf("Dir with an empty folder in $%s: err = %v, want an error naming the variable", EnvDir, err)
	}
	name, _, _ := Test.files()
	if err := os.WriteFile(filepath.Join(tmp, name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Dir()
	if err != nil || d != tmp {
		t.Fatalf("Dir() = %q, %v; want %q", d, err, tmp)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir(), Test)
	if err == nil || !strings.Contains(err.Error(), "t10k-images-idx3-ubyte.gz") {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
	if _, err := Load(t.TempDir(), Split(7)); err == nil {
		t.Fatal("unknown split: no error")
	}
}

// idx builds an uncompressed IDX file.
func idx(magic uint32, dims []uint32, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, magic)
	binary.Write(&b, binary.BigEndian, dims)
	b.Write(data)
	return b.Bytes()
}

func gz(t testing.TB, raw []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParse(t *testing.T) {
	img := bytes.Repeat([]byte{0, 255}, Pixels) // two images
	good := gz(t, idx(imageMagic, []uint32{2, Rows, Cols}, img))
	goodLabels := gz(t, idx(labelMagic, []uint32{3}, []byte{0, 9, 4}))
	for _, tt := range []struct {
		name   string
		file   []byte
		labels bool
		want   string // substring of the error; "" means success
	}{
		{name: "ok/images", file: good},
		{name: "ok/labels", file: goodLabels, labels: true},
		{name: "ok/no images", file: gz(t, idx(imageMagic, []uint32{0, Rows, Cols}, nil))},
		{name: "fail/not gzip", file: []byte("hello, world"), want: "gzip"},
		{name: "fail/empty", file: nil, want: "gzip"},
		{name: "fail/truncated gzip", file: good[:len(good)/2], want: "image"},
		{name: "fail/bad checksum", file: append(append([]byte(nil), good[:len(good)-8]...), 1, 2, 3, 4, 5, 6, 7, 8), want: "checksum"},
		{name: "fail/short magic", file: gz(t, []byte{0, 0, 8}), want: "magic number"},
		{name: "fail/short header", file: gz(t, []byte{0, 0, 8, 3, 0, 0}), want: "header"},
		{name: "fail/magic", file: gz(t, idx(labelMagic, []uint32{2, Rows, Cols}, img)), want: "magic"},
		{name: "fail/label magic", file: goodLabels, want: "magic"},
		{name: "fail/dims", file: gz(t, idx(imageMagic, []uint32{2, 14, 56}, img)), want: "14x56"},
		{name: "fail/truncated data", file: gz(t, idx(imageMagic, []uint32{3, Rows, Cols}, img)), want: "image 2 of 3"},
		{name: "fail/trailing data", file: gz(t, idx(imageMagic, []uint32{1, Rows, Cols}, img)), want: "continues"},
		{name: "fail/huge count", file: gz(t, idx(imageMagic, []uint32{1 << 31, Rows, Cols}, img)), want: "limit"},
		{name: "fail/bad label", file: gz(t, idx(labelMagic, []uint32{2}, []byte{3, 10})), labels: true, want: "not a digit"},
		{name: "fail/truncated labels", file: gz(t, idx(labelMagic, []uint32{4}, []byte{3, 1})), labels: true, want: "label 0 of 4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.labels {
				_, err = parseGzip(bytes.NewReader(tt.file), readLabels)
			} else {
				_, err = parseGzip(bytes.NewReader(tt.file), readImages)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	img := make([]byte, Pixels)
	img[0], img[1], img[Pixels-1] = 255, 51, 1
	images, err := parseGzip(bytes.NewReader(gz(t, idx(imageMagic, []uint32{1, Rows, Cols}, img))), readImages)
	if err != nil {
		t.Fatal(err)
	}
	if got := images[0]; got[0] != 1 || got[1] != 0.2 || got[2] != 0 || got[Pixels-1] != 1.0/255 {
		t.Fatalf("pixels %v %v %v %v", got[0], got[1], got[2], got[Pixels-1])
	}
}

func TestLoadCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	iname, lname, _ := Test.files()
	img := gz(t, idx(imageMagic, []uint32{2, Rows, Cols}, make([]byte, 2*Pixels)))
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(iname, img)
	write(lname, []byte("garbage"))
	if _, err := Load(dir, Test); err == nil || !strings.Contains(err.Error(), lname) {
		t.Fatalf("garbage labels: err = %v, want one naming %s", err, lname)
	}
	write(lname, gz(t, idx(labelMagic, []uint32{3}, []byte{1, 2, 3})))
	if _, err := Load(dir, Test); err == nil || !strings.Contains(err.Error(), "3 labels") {
		t.Fatalf("count mismatch: err = %v", err)
	}
	write(lname, gz(t, idx(labelMagic, []uint32{2}, []byte{1, 2})))
	s, err := Load(dir, Test)
	if err != nil || s.Len() != 2 {
		t.Fatalf("Load = %v, %v", s, err)
	}
}

// FuzzParse feeds arbitrary bytes to the IDX parsers (uncompressed, as
// they come out of gzip) and to the gzip layer: they may fail but must not
// panic, and what they accept must be well formed.
func FuzzParse(f *testing.F) {
	f.Add(idx(imageMagic, []uint32{1, Rows, Cols}, make([]byte, Pixels)))
	f.Add(idx(labelMagic, []uint32{2}, []byte{1, 2}))
	f.Add(idx(imageMagic, []uint32{5, Rows, Cols}, make([]byte, 10)))
	f.Add(gz(f, idx(labelMagic, []uint32{2}, []byte{1, 2})))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if images, err := readImages(bytes.NewReader(raw)); err == nil {
			for _, img := range images {
				if len(img) != Pixels {
					t.Fatalf("image with %d pixels", len(img))
				}
			}
		}
		if labels, err := readLabels(bytes.NewReader(raw)); err == nil {
			for _, l := range labels {
				if l < 0 || l >= Classes {
					t.Fatalf("label %d", l)
				}
			}
		}
		parseGzip(bytes.NewReader(raw), readImages)
		parseGzip(bytes.NewReader(raw), readLabels)
	})
}
