package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// procStatus holds the fields of /proc/PID/status the load test reads.
type procStatus struct {
	RSS     int64 // VmRSS, bytes: resident now
	HWM     int64 // VmHWM, bytes: the peak resident set since the process started
	Threads int64
}

// parseStatus reads /proc/PID/status ("VmRSS:\t  123456 kB" lines).
func parseStatus(r io.Reader) (procStatus, error) {
	var st procStatus
	seen := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &st.RSS
		case "VmHWM":
			dst = &st.HWM
		case "Threads":
			dst = &st.Threads
		default:
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			return st, fmt.Errorf("status: %s has no value", key)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return st, fmt.Errorf("status: %s: %w", key, err)
		}
		if len(f) > 1 {
			switch strings.ToLower(f[1]) {
			case "kb":
				n <<= 10
			case "mb":
				n <<= 20
			default:
				return st, fmt.Errorf("status: %s: unit %q", key, f[1])
			}
		}
		*dst = n
		seen++
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if seen < 3 {
		return st, fmt.Errorf("status: found %d of VmRSS, VmHWM and Threads", seen)
	}
	return st, nil
}

// readStatus reads /proc/PID/status.
func readStatus(pid int) (procStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStatus{}, err
	}
	defer f.Close()
	return parseStatus(f)
}

// countFDs counts the open file descriptors of a process (/proc/PID/fd).
func countFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(entries), nil
}

// memTotal reads MemTotal from /proc/meminfo, in bytes (0 if unknown).
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// cpuModel reads the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAvg1 is the machine's 1-minute load average (/proc/loadavg), or -1:
// how many runnable threads compete for the cores, the load test's
// processes and anything else running on the machine.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	return parseLoadAvg(string(b))
}

// parseLoadAvg reads the first field of /proc/loadavg ("0.52 0.58 0.59
// 1/123 4567"), or -1.
func parseLoadAvg(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
