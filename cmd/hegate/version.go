package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is stamped at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/hegate
//
// Without it, the module version or VCS revision Go recorded is shown.
var version = ""

// buildVersion is version, else what the build info knows.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}

func newVersionCmd() *cobra.Command {
	var o *output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print the version and build",
		Long:  "Print hegate's version (stamped at build time with -ldflags \"-X main.version=...\"),\nthe Go release it was built with, and the platform.",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if o.JSON() {
				return printJSON(w, map[string]string{"version": buildVersion(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
			}
			fmt.Fprintln(w, versionLine())
			return nil
		},
	}
	o = addOutputFlags(cmd, true)
	return cmd
}
