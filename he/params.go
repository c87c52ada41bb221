package he

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/tuneinsight/lattigo/v6/circuits/ckks/bootstrapping"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"

	"github.com/hegate/hegate"
)

// DefaultPreset is the parameter preset models compile for unless told otherwise.
const DefaultPreset = "n14-leveled"

// preset is a named CKKS parameter set.
type preset struct {
	name    string
	literal ckks.ParametersLiteral
	secure  bool // meets 128-bit security by the HomomorphicEncryption.org table
	doc     string
	// boot is the bootstrapping literal of a bootstrapping preset
	// (bootstrap_params.go); nil for leveled presets.
	boot *bootstrapping.ParametersLiteral
	// unlisted presets load by name but are not offered by Presets().
	unlisted bool
}

// maxLogQP128 is the largest log2(QP) that keeps 128-bit classical security
// for a uniform ternary secret and error sigma 3.2, by logN
// (HomomorphicEncryption.org security standard, table 1).
var maxLogQP128 = map[int]int{12: 109, 13: 218, 14: 438, 15: 881, 16: 1772, 17: 3576}

func presets() []preset {
	ps := []preset{
		{
			name: "n14-leveled",
			doc:  "logN 14, 8192 slots, 5 levels of 45 bits, 128-bit secure; for small leveled CNNs",
			literal: ckks.ParametersLiteral{
				LogN:            14,
				LogQ:            []int{60, 45, 45, 45, 45, 45},
				LogP:            []int{61, 61},
				LogDefaultScale: 45,
			},
			secure: true,
		},
		{
			name: "n15-leveled",
			doc:  "logN 15, 16384 slots, 12 levels of 45 bits, 128-bit secure; for deeper leveled circuits",
			literal: ckks.ParametersLiteral{
				LogN:            15,
				LogQ:            []int{60, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45},
				LogP:            []int{61, 61, 61},
				LogDefaultScale: 45,
			},
			secure: true,
		},
		{
			name: "test-n12-deep",
			doc:  "logN 12, 11 levels, INSECURE, for tests of deeper circuits only",
			literal: ckks.ParametersLiteral{
				LogN:            12,
				LogQ:            []int{55, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40},
				LogP:            []int{56, 56},
				LogDefaultScale: 40,
			},
			secure: false,
		},
		{
			name: "test-n12-deepest",
			doc:  "logN 12, 30 levels, INSECURE, for tests of composite approximations only",
			literal: ckks.ParametersLiteral{
				LogN:            12,
				LogQ:            append([]int{55}, repeat(40, 30)...),
				LogP:            []int{56, 56},
				LogDefaultScale: 40,
			},
			secure: false,
		},
		{
			name: "test-n12",
			doc:  "logN 12, INSECURE, for tests only",
			literal: ckks.ParametersLiteral{
				LogN:            12,
				LogQ:            []int{55, 40, 40, 40, 40, 40},
				LogP:            []int{56},
				LogDefaultScale: 40,
			},
			secure: false,
		},
		{
			name: "test-n10-boot",
			doc:  "logN 10, 512 slots, 8 levels of 40 bits, bootstrapping, INSECURE, for tests of deep circuits only",
			literal: ckks.ParametersLiteral{
				LogN:            10,
				LogQ:            append([]int{60}, repeat(40, 8)...),
				LogP:            []int{61, 61},
				LogDefaultScale: 40,
			},
			secure: false,
		},
		{
			// Run by the slow suite (go test -tags boot16 ./he), not by
			// the default one: see docs/bootstrapping.md. Never chosen
			// automatically: a model asks for it by name.
			name: "n16-boot",
			doc:  "logN 16, 32768 slots, 9 levels of 40 bits, bootstrapping, 128-bit secure",
			literal: ckks.ParametersLiteral{
				LogN:            16,
				LogQ:            append([]int{60}, repeat(40, 9)...),
				LogP:            []int{61, 61, 61},
				LogDefaultScale: 40,
			},
			secure: true,
		},
	}
	for i := range ps {
		ps[i].boot = bootLiteral(ps[i].name)
	}
	return ps
}

// Presets lists the names of the parameter presets.
func Presets() []string {
	var names []string
	for _, p := range presets() {
		if !p.unlisted {
			names = append(names, p.name)
		}
	}
	sort.Strings(names)
	return names
}

// Params is an instantiated preset.
type Params struct {
	preset
	ckks        ckks.Parameters
	fingerprint string
	fpRaw       [32]byte
}

// LoadParams instantiates a preset by name. Presets below 128-bit security
// are refused unless allowInsecure is set (tests only).
func LoadParams(name string, allowInsecure bool) (*Params, error) {
	const op = "he.LoadParams"
	if name == "" {
		name = DefaultPreset
	}
	for _, p := range presets() {
		if p.name != name {
			continue
		}
		if !p.secure && !allowInsecure {
			return nil, hegate.E(op, hegate.KindInvalid, nil, "parameter preset %q is below 128-bit security and only allowed in tests", name)
		}
		cp, err := ckks.NewParametersFromLiteral(p.literal)
		if err != nil {
			return nil, fmt.Errorf("%s: instantiating preset %s: %w", op, name, err)
		}
		if p.secure {
			if limit, ok := maxLogQP128[cp.LogN()]; !ok || cp.LogQP() > float64(limit) {
				return nil, fmt.Errorf("%s: preset %s has logQP %.1f above the 128-bit bound for logN %d", op, name, cp.LogQP(), cp.LogN())
			}
		}
		fp := fingerprint(cp)
		params := &Params{preset: p, ckks: cp, fingerprint: fp}
		if _, err := hex.Decode(params.fpRaw[:], []byte(fp)); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if p.secure && p.boot != nil {
			if err := checkBootSecurity(params); err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
		}
		return params, nil
	}
	return nil, hegate.E(op, hegate.KindInvalid, nil, "unknown parameter preset %q (known: %s)", name, strings.Join(Presets(), ", "))
}

// fingerprint is a stable digest of everything that makes two parameter sets
// interoperable.
func fingerprint(p ckks.Parameters) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hegate-ckks-v1;logN=%d;ring=%s;Q=%v;P=%v;scale=%v;xs=%v;xe=%v",
		p.LogN(), p.RingType(), p.Q(), p.P(), p.DefaultScale().Float64(), p.Xs(), p.Xe())
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Info describes the parameters for a manifest.
func (p *Params) Info() ParamsInfo {
	sec := 0
	if p.secure {
		sec = 128
	}
	return ParamsInfo{
		Preset:       p.name,
		LogN:         p.ckks.LogN(),
		LogQP:        int(p.ckks.LogQP() + 0.5),
		MaxLevel:     p.ckks.MaxLevel(),
		LogScale:     int(p.ckks.LogDefaultScale()),
		SecurityBits: sec,
		Fingerprint:  p.fingerprint,
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
