package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// outputFormat is the value of -o/--output: table or json.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "table|json" }

func (o *outputFormat) Set(s string) error {
	switch outputFormat(s) {
	case outputTable, outputJSON:
		*o = outputFormat(s)
		return nil
	}
	return errors.New("want table or json")
}

// output is the output flags of a list or show command.
type output struct {
	format outputFormat
	json   bool // the older --json
}

// addOutputFlags gives cmd -o/--output table|json and, where the command
// had it before -o, --json.
func addOutputFlags(cmd *cobra.Command, withJSON bool) *output {
	o := &output{format: outputTable}
	cmd.Flags().VarP(&o.format, "output", "o", "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	if withJSON {
		cmd.Flags().BoolVar(&o.json, "json", false, "print JSON (the same as -o json)")
	}
	return o
}

// JSON reports whether JSON was asked for.
func (o *output) JSON() bool { return o.json || o.format == outputJSON }

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// Progress bars are drawn on standard error, and only when standard output
// and standard error are both terminals: never into a pipe, a file or a
// test's buffer.

// progressOut is where cmd's progress bars go, or nil for none.
func progressOut(cmd *cobra.Command) io.Writer {
	if isTerminal(cmd.OutOrStdout()) && isTerminal(cmd.ErrOrStderr()) {
		return cmd.ErrOrStderr()
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// meter is a progress bar; a nil meter draws nothing.
type meter struct {
	bar  *progressbar.ProgressBar
	stop chan struct{}
	done chan struct{}
}

func newMeter(w io.Writer, total int64, desc string, opts ...progressbar.Option) *meter {
	if w == nil {
		return nil
	}
	opts = append([]progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSpinnerType(14),
	}, opts...)
	return &meter{bar: progressbar.NewOptions64(total, opts...)}
}

// byteMeter counts total bytes (-1: unknown).
func byteMeter(cmd *cobra.Command, total int64, desc string) *meter {
	return newMeter(progressOut(cmd), total, desc, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true), progressbar.OptionShowCount())
}

// countMeter counts total items.
func countMeter(cmd *cobra.Command, total int, desc string) *meter {
	return newMeter(progressOut(cmd), int64(total), desc, progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true))
}

// spinner turns, with the time elapsed, until finish: for waits whose
// length nobody knows (a compilation).
func spinner(cmd *cobra.Command, desc string) *meter {
	m := newMeter(progressOut(cmd), -1, desc, progressbar.OptionSetElapsedTime(true))
	if m == nil {
		return nil
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				_ = m.bar.Add(1)
			}
		}
	}()
	return m
}

// writer counts what goes through w.
func (m *meter) writer(w io.Writer) io.Writer {
	if m == nil {
		return w
	}
	return io.MultiWriter(w, m.bar)
}

// reader counts what is read from r.
func (m *meter) reader(r io.Reader) io.Reader {
	if m == nil {
		return r
	}
	return io.TeeReader(r, m.bar)
}

// set shows n done.
func (m *meter) set(n int64) {
	if m != nil {
		_ = m.bar.Set64(n)
	}
}

func (m *meter) add(n int) {
	if m != nil {
		_ = m.bar.Add(n)
	}
}

// finish removes the bar.
func (m *meter) finish() {
	if m == nil {
		return
	}
	if m.stop != nil {
		close(m.stop)
		<-m.done
		m.stop = nil
	}
	_ = m.bar.Finish() // and clears it (OptionClearOnFinish)
}
