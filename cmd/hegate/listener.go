package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
)

// Client connections are capped so that they cannot take every file
// descriptor of the process: past the cap, the kernel queues new
// connections (up to its listen backlog, then refuses them) until one
// closes, while the database pool, the blob files and the log keep theirs.
const (
	// fdReserve is the descriptors kept back from client connections: the
	// database pool (pgx's, River's, or SQLite's files), blob files being
	// read, the log, the listener, the process's own.
	fdReserve = 256
	// fdsPerConnection: a connection uploading a key set or a ciphertext
	// holds its socket and a temporary blob file.
	fdsPerConnection = 2
	// Bounds of the derived cap: at least minDerivedConnections however
	// low the descriptor limit, and at most maxDerivedConnections however
	// high (each connection also costs memory: its goroutine, buffers, and
	// up to gateway.ServerMaxHeaderBytes while its head is read).
	minDerivedConnections = 16
	maxDerivedConnections = 4096
)

// listenFlags are hegate serve's listener settings.
type listenFlags struct {
	MaxConnections int
	envErr         error // a HEGATE_MAX_CONNECTIONS that does not parse
}

func (l *listenFlags) register(fs *pflag.FlagSet) {
	def := 0
	if v := envOr("HEGATE_MAX_CONNECTIONS", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			l.envErr = fmt.Errorf("HEGATE_MAX_CONNECTIONS %q is not a number of connections", v)
		} else {
			def = n
		}
	}
	fs.IntVar(&l.MaxConnections, "max-connections", def, "client connections served at once; more wait in the kernel's listen queue (0: derived from the open-file limit, (RLIMIT_NOFILE - 256) / 2, between 16 and 4096) [HEGATE_MAX_CONNECTIONS]")
}

// Validate names the bad setting; call it after parsing fs.
func (l *listenFlags) Validate(fs *pflag.FlagSet) error {
	set := fs.Changed("max-connections")
	switch {
	case l.envErr != nil && !set:
		return l.envErr
	case l.MaxConnections < 0:
		return fmt.Errorf("--max-connections %d is negative (0 derives it from the open-file limit)", l.MaxConnections)
	}
	return nil
}

// limit is the connection cap to serve with, logged with where it came
// from.
func (l *listenFlags) limit(log *slog.Logger) int {
	nofile := openFileLimit()
	n := connectionLimit(l.MaxConnections, nofile)
	switch {
	case l.MaxConnections > 0 && nofile > 0 && uint64(n)*fdsPerConnection+fdReserve > nofile:
		log.Warn("--max-connections leaves too few file descriptors: under load, database connections and blob files may fail with \"too many open files\"; raise the open-file limit (ulimit -n) or lower --max-connections",
			"max_connections", n, "open_file_limit", nofile)
	case l.MaxConnections > 0:
		log.Info("connection limit", "max_connections", n, "open_file_limit", nofile)
	default:
		log.Info("connection limit derived from the open-file limit", "max_connections", n, "open_file_limit", nofile)
	}
	return n
}

// connectionLimit is set, or when set is 0 the cap derived from the
// open-file limit nofile (0 if unknown).
func connectionLimit(set int, nofile uint64) int {
	if set > 0 {
		return set
	}
	if nofile == 0 {
		return maxDerivedConnections / 4
	}
	n := (int64(min(nofile, 1<<40)) - fdReserve) / fdsPerConnection
	return int(min(max(n, minDerivedConnections), maxDerivedConnections))
}

// limitListener caps ln at maxConns connections accepted at once (0: the
// derived cap, see connectionLimit).
func limitListener(ln net.Listener, maxConns int) net.Listener {
	return netutil.LimitListener(ln, connectionLimit(maxConns, openFileLimit()))
}
