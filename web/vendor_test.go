package web

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vendored are the files copied from npm packages (static/vendor/VERSIONS.md)
// and their sha256. A changed file fails here: update VERSIONS.md, this list
// and update.sh together (update.sh prints the new sums).
var vendored = []struct {
	path   string // under web/
	sha256 string
	header string // the license notice the file must start with; "" when published without one
}{
	{"static/vendor/htmx.min.js", "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717", ""},
	{"static/vendor/LICENSE.htmx.txt", "d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38", "Zero-Clause BSD"},
	{"static/vendor/uPlot.iife.min.js", "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f", "/*! https://github.com/leeoniya/uPlot (v1.6.32) */"},
	{"static/vendor/uPlot.min.css", "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04", ""},
	{"static/vendor/LICENSE.uplot.txt", "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd", "The MIT License (MIT)\n\nCopyright (c) 2022 Leon Sorokin"},
	{"../internal/browsertest/testdata/axe.min.js", "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c", "/*! axe v4.14.1\n * Copyright (c) 2015 - 2026 Deque Systems, Inc.\n *\n * Your use of this Source Code Form is subject to the terms of the Mozilla Public\n * License, v. 2.0."},
	{"../internal/browsertest/testdata/LICENSE.axe-core.txt", "af175b9d96ee93c21a036152e1b905b0b95304d4ae8c2c921c7609100ba8df7e", "Mozilla Public License, version 2.0"},
	{"../internal/browsertest/testdata/LICENSE-3RD-PARTY.axe-core.txt", "4f8563870d0fca38bbc3e00b6f670cb7fa9f380ba9f26a7f7d1184a6b18b1653", ""},
}

func TestVendoredFiles(t *testing.T) {
	versions, err := os.ReadFile("static/vendor/VERSIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vendored {
		data, err := os.ReadFile(filepath.FromSlash(v.path))
		if err != nil {
			t.Errorf("%s: %v", v.path, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != v.sha256 {
			t.Errorf("%s: sha256 %s, want %s: a vendored file is copied from npm unchanged (static/vendor/update.sh); after an update, change VERSIONS.md and this list", v.path, got, v.sha256)
		}
		if v.header != "" && !strings.HasPrefix(string(data), v.header) {
			t.Errorf("%s: lost its license notice %q", v.path, v.header)
		}
		if !strings.Contains(string(versions), v.sha256) {
			t.Errorf("static/vendor/VERSIONS.md does not list the sha256 %s of %s", v.sha256, v.path)
		}
	}
}

// The vendor folder holds only what VERSIONS.md accounts for, and no page
// may load a file from another origin.
func TestVendorFolderIsAccountedFor(t *testing.T) {
	known := map[string]bool{"static/vendor/VERSIONS.md": true, "static/vendor/update.sh": true}
	for _, v := range vendored {
		known[v.path] = true
	}
	entries, err := os.ReadDir("static/vendor")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if p := "static/vendor/" + e.Name(); !known[p] {
			t.Errorf("%s is in the vendor folder but not in the vendored list of vendor_test.go", p)
		}
	}
}

// The embedded static tree (served to browsers) must not carry axe-core,
// which only tests use, and nothing served may point at a CDN.
func TestNoCDNAndNoAxeInStatic(t *testing.T) {
	for _, name := range AssetNames() {
		if strings.Contains(strings.ToLower(name), "axe") {
			t.Errorf("static/%s: axe-core is for tests only", name)
		}
	}
	files := []string{"templates/layout.html", "templates/login.html", "static/console.css", "static/console.js"}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, cdn := range []string{"unpkg.com", "cdn.jsdelivr", "cdnjs", "googleapis.com", "@import"} {
			if strings.Contains(s, cdn) {
				t.Errorf("%s mentions %q: the console loads everything from itself", f, cdn)
			}
		}
	}
}
