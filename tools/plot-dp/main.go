// Command plot-dp draws the accuracy-privacy figure of docs/privacy.md from
// the CSV that the dpfigure test writes (see he/dpfigure_test.go): accuracy
// on MNIST test images through the encrypted path against the per-query
// epsilon, log scale, with the plaintext accuracy as a line.
//
//	go run ./tools/plot-dp -in docs/img/dp-accuracy.csv -out docs/img/dp-accuracy.png
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func main() {
	in := flag.String("in", "docs/img/dp-accuracy.csv", "CSV written by the dpfigure test")
	out := flag.String("out", "docs/img/dp-accuracy.png", "PNG to write")
	flag.Parse()
	pts, plain, title, err := read(*in)
	if err != nil {
		log.Fatal(err)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "per-query epsilon (delta 1e-5), log scale"
	p.Y.Label.Text = "accuracy"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		log.Fatal(err)
	}
	p.Add(line, points)
	p.Legend.Add("encrypted, with DP noise", line, points)
	if plain > 0 {
		ref := plotter.XYs{{X: pts[0].X, Y: plain}, {X: pts[len(pts)-1].X, Y: plain}}
		l, err := plotter.NewLine(ref)
		if err != nil {
			log.Fatal(err)
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("plaintext (%.2f%%)", 100*plain), l)
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(40)
	if err := p.Save(16*vg.Centimeter, 10*vg.Centimeter, *out); err != nil {
		log.Fatal(err)
	}
}

// read parses the CSV: comment lines, a header, then epsilon,rho,sigma,accuracy.
func read(name string) (plotter.XYs, float64, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, "", err
	}
	defer f.Close()
	var pts plotter.XYs
	plain, title := 0.0, "MNIST accuracy against per-query epsilon"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "epsilon,"):
			continue
		case strings.HasPrefix(line, "#"):
			if i := strings.Index(line, "plaintext accuracy "); i >= 0 {
				fields := strings.Fields(line[i+len("plaintext accuracy "):])
				if len(fields) > 0 {
					plain, _ = strconv.ParseFloat(strings.TrimSuffix(fields[0], ","), 64)
				}
			}
			if strings.Contains(line, "test images") {
				title = "MNIST CryptoNets, encrypted: accuracy against per-query epsilon"
			}
			continue
		}
		cols := strings.Split(line, ",")
		if len(cols) != 4 {
			return nil, 0, "", fmt.Errorf("%s: line %q: want 4 columns", name, line)
		}
		eps, err1 := strconv.ParseFloat(cols[0], 64)
		acc, err2 := strconv.ParseFloat(cols[3], 64)
		if err1 != nil || err2 != nil {
			return nil, 0, "", fmt.Errorf("%s: line %q: not numbers", name, line)
		}
		pts = append(pts, plotter.XY{X: eps, Y: acc})
	}
	if len(pts) < 2 {
		return nil, 0, "", fmt.Errorf("%s: fewer than 2 points", name)
	}
	return pts, plain, title, sc.Err()
}
