package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// metricPoint is one sample line of the Prometheus text format.
type metricPoint struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// metricsSnapshot is a parsed /metrics answer.
type metricsSnapshot struct {
	// Series are the identities (name and labels, as written) of every
	// sample line: what a Prometheus server stores one series for. Every
	// bucket of a histogram is one.
	Series map[string]bool
	Points []metricPoint
}

// value returns the value of the first sample named name whose labels
// include want, and whether there is one.
func (m metricsSnapshot) value(name string, want map[string]string) (float64, bool) {
	for _, p := range m.Points {
		if p.Name == name && hasLabels(p.Labels, want) {
			return p.Value, true
		}
	}
	return 0, false
}

// sum adds the values of the samples named name whose labels include
// want, grouped by the label by ("" for a single total).
func (m metricsSnapshot) sum(name string, want map[string]string, by string) map[string]float64 {
	out := map[string]float64{}
	for _, p := range m.Points {
		if p.Name == name && hasLabels(p.Labels, want) {
			out[p.Labels[by]] += p.Value
		}
	}
	return out
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// parseMetrics parses the Prometheus text exposition format (version
// 0.0.4): comment lines (# HELP, # TYPE) and blank lines are skipped, every
// other line is name{labels} value [timestamp], label values quoted with
// \\, \" and \n escapes.
func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	snap := metricsSnapshot{Series: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, id, err := parseSampleLine(line)
		if err != nil {
			return snap, fmt.Errorf("metrics line %d: %w", lineNo, err)
		}
		snap.Series[id] = true
		snap.Points = append(snap.Points, p)
	}
	return snap, sc.Err()
}

// parseSampleLine parses one sample line and returns it with its series
// identity (the name and the label set, labels sorted as written).
func parseSampleLine(line string) (metricPoint, string, error) {
	p := metricPoint{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return p, "", fmt.Errorf("no value in %q", line)
	}
	p.Name = line[:i]
	rest := line[i:]
	id := p.Name
	if rest[0] == '{' {
		end, err := parseLabels(rest, p.Labels)
		if err != nil {
			return p, "", err
		}
		id += rest[:end]
		rest = rest[end:]
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 {
		return p, "", fmt.Errorf("want a value and an optional timestamp after %q, got %q", id, rest)
	}
	v, err := parseValue(f[0])
	if err != nil {
		return p, "", fmt.Errorf("%s: %w", id, err)
	}
	p.Value = v
	return p, id, nil
}

// parseLabels reads {a="x",b="y"} at the start of s into labels and
// returns the index just past the closing brace.
func parseLabels(s string, labels map[string]string) (int, error) {
	i := 1 // past '{'
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return 0, errors.New("unterminated label set")
		}
		if s[i] == '}' {
			return i + 1, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return 0, errors.New("label without '='")
		}
		name := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		if i >= len(s) || s[i] != '"' {
			return 0, fmt.Errorf("label %s: value not quoted", name)
		}
		i++
		var b strings.Builder
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				switch s[i+1] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i+1])
				}
				i += 2
				continue
			}
			i++
			if c == '"' {
				closed = true
				break
			}
			b.WriteByte(c)
		}
		if !closed {
			return 0, fmt.Errorf("label %s: unterminated value", name)
		}
		labels[name] = b.String()
	}
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(s, 64)
}

// scrape GETs a /metrics URL and parses it.
func scrape(ctx context.Context, hc *http.Client, url string) (metricsSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return metricsSnapshot{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return metricsSnapshot{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return metricsSnapshot{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}
