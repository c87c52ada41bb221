package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// hegateEnv is how every hegate command of the run reaches the database
// and the blobs.
type hegateEnv struct {
	bin         string
	databaseURL string
	schema      string
	dataDir     string
	env         []string // extra environment (HEGATE_MNIST_DIR)
}

func (h *hegateEnv) backendFlags() []string {
	return []string{"--database-url", h.databaseURL, "--database-schema", h.schema, "--data-dir", h.dataDir}
}

// run runs a short hegate command and returns its standard output.
func (h *hegateEnv) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append(args, h.backendFlags()...)...)
	cmd.Env = append(os.Environ(), h.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hegate %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	return stdout.String(), nil
}

var apiKeyLine = regexp.MustCompile(`(?m)^api key (hgk_\S+)`)

// parseAPIKey finds the key `hegate tenant create|key` printed.
func parseAPIKey(out string) (string, error) {
	m := apiKeyLine.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no API key in %q", out)
	}
	return m[1], nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// proc is a long-running hegate process (serve or worker).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	metrics string // its /metrics URL
	health  string // a URL that answers 200 when it is ready

	done    chan struct{}
	waitErr error
}

func (h *hegateEnv) start(name, logPath, metrics, health string, args ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.bin, append(args, h.backendFlags()...)...)
	cmd.Env = append(os.Environ(), h.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting hegate %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, log: lf, metrics: metrics, health: health, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls the health URL until it answers 200.
func (p *proc) waitReady(ctx context.Context, hc *http.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return fmt.Errorf("hegate %s exited (%v); its log %s ends:\n%s", p.name, p.waitErr, p.logPath, tailFile(p.logPath, 10))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.health, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hegate %s not ready at %s after %s", p.name, p.health, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, waits, and kills the process if it does not exit.
func (p *proc) stop(grace time.Duration) error {
	defer p.log.Close()
	if p.exited() {
		return p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("hegate %s did not stop within %s and was killed", p.name, grace)
	}
}

// procSample is one look at a process.
type procSample struct {
	RSS        int64  `json:"rss_bytes"`
	HWM        int64  `json:"peak_rss_bytes"`
	Threads    int64  `json:"threads"`
	FDs        int    `json:"fds"`
	Goroutines int    `json:"goroutines"`
	Series     int    `json:"metric_series"`
	Err        string `json:"error,omitempty"`
}

// sample reads the process's /proc entries and scrapes its metrics.
func (p *proc) sample(ctx context.Context, hc *http.Client) (procSample, metricsSnapshot) {
	var s procSample
	var errs []string
	if st, err := readStatus(p.pid()); err != nil {
		errs = append(errs, err.Error())
	} else {
		s.RSS, s.HWM, s.Threads = st.RSS, st.HWM, st.Threads
	}
	if n, err := countFDs(p.pid()); err != nil {
		errs = append(errs, err.Error())
	} else {
		s.FDs = n
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	snap, err := scrape(ctx, hc, p.metrics)
	if err != nil {
		errs = append(errs, err.Error())
	} else {
		s.Series = len(snap.Series)
		if g, ok := snap.value("go_goroutines", nil); ok {
			s.Goroutines = int(g)
		}
	}
	s.Err = strings.Join(errs, "; ")
	return s, snap
}

// logSummary counts a process's log lines at error level and keeps the
// first few distinct messages.
type logSummary struct {
	Errors   int            `json:"error_lines"`
	Warnings int            `json:"warn_lines"`
	Messages map[string]int `json:"error_messages,omitempty"`
}

func summarizeLog(path string) logSummary {
	ls := logSummary{Messages: map[string]int{}}
	f, err := os.Open(path)
	if err != nil {
		return ls
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Level {
		case "ERROR":
			ls.Errors++
			msg := line.Msg
			if line.Error != "" {
				msg += ": " + line.Error
			}
			if len(msg) > 200 {
				msg = msg[:200] + "…"
			}
			if _, ok := ls.Messages[msg]; ok || len(ls.Messages) < 10 {
				ls.Messages[msg]++
			}
		case "WARN":
			ls.Warnings++
		}
	}
	return ls
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// buildHegate builds cmd/hegate into dir.
func buildHegate(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "hegate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/hegate/hegate/cmd/hegate")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hegate: %w: %s", err, stderr.String())
	}
	return bin, nil
}

// hegateVersion is what `hegate version` prints; for a binary built
// from the working tree, with its commit and the count of modified files
// (read only: git rev-parse and git status).
func hegateVersion(ctx context.Context, bin string, built bool) string {
	out, _ := exec.CommandContext(ctx, bin, "version").Output()
	v := strings.TrimSpace(string(out))
	if !built {
		return v + " (" + bin + ")"
	}
	if rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		v += "; source " + strings.TrimSpace(string(rev))
		if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			if n := len(strings.Split(strings.TrimSpace(string(st)), "\n")); strings.TrimSpace(string(st)) != "" {
				v += fmt.Sprintf(" with %d modified files", n)
			}
		}
	}
	return v
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// dropSchema drops the run's schema and everything in it.
func dropSchema(ctx context.Context, url, schema string) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("schema %q: not a plain name", schema)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	return err
}

// parallel runs f(i) for i in [0, n) on k goroutines and returns the
// first error.
func parallel(n, k int, f func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  int
		wg    sync.WaitGroup
	)
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
