package main

import (
	"bytes"
	"net"
	"regexp"
	"testing"

	"github.com/hegate/hegate/internal/pgtest"
)

// pgCLI points hegate at a fresh PostgreSQL schema and blob directory
// (through the environment, as an operator's shell would), migrates it,
// creates the tenant "fleet", and returns a runner of hegate commands in
// this process (failing the test on an error) with the tenant's API key.
func pgCLI(t *testing.T, schemaPrefix string) (cli func(args ...string) string, apiKey string) {
	t.Helper()
	dbURL, schema := pgtest.Schema(t, schemaPrefix)
	t.Setenv("HEGATE_DATABASE_URL", dbURL)
	t.Setenv("HEGATE_DATABASE_SCHEMA", schema)
	t.Setenv("HEGATE_DATA_DIR", t.TempDir()) // the shared blob directory
	ctx := t.Context()
	cli = func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(ctx, args, &out, &errb); err != nil {
			t.Fatalf("hegate %v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	cli("migrate")
	m := regexp.MustCompile(`api key (hgk_\S+)`).FindStringSubmatch(cli("tenant", "create", "fleet"))
	if m == nil {
		t.Fatal("tenant create printed no API key")
	}
	return cli, m[1]
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
