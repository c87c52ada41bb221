package he

import (
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
)

// CompileOptions choose how a graph is compiled.
type CompileOptions struct {
	// Params names a parameter preset (see Presets). Empty means DefaultPreset.
	Params string
	// AllowInsecure permits presets below 128-bit security. Only tests set it.
	AllowInsecure bool
	// Calibration holds sample inputs (the graph's input, row-major) on
	// which the ranges of approximated activations (ReLU, max pooling) are
	// measured. Required when the graph has such activations.
	Calibration [][]float64
	// Ranges, when set, are calibrated ranges to use instead of measuring
	// them on Calibration (Model.Ranges of an earlier compile, stored with
	// the model so every process compiles the same circuit).
	Ranges *Ranges
	// Approx chooses the approximations' degrees and range margin.
	Approx ApproxOptions
	// Progress, when set, is called as compilation advances (stage names:
	// calibrate, lower, encode).
	Progress func(stage string, done, total int)
	// Name, when set, is the compiled model's ID instead of the graph's
	// name (to serve one graph compiled two ways).
	Name string
	// DescribeOnly compiles the model for a process that serves its
	// manifest and checks key sets and ciphertexts but never evaluates (an
	// API-only gateway): no weight is encoded or kept, the manifest is the
	// one an evaluating process computes, and Evaluate refuses.
	DescribeOnly bool
	// keepDiagonals keeps the float64 diagonals after encoding (the
	// benchmark's hand-written yardstick encodes them again).
	keepDiagonals bool
	// SplitAfter, when set, names the value after which the graph is cut
	// for split inference: the device computes the head (up to and
	// including that value) in the clear and encrypts its output; the model
	// compiles only the rest. Calibration samples are still inputs of the
	// whole graph. "auto" picks the latest cut whose head costs the device
	// at most DeviceMACs multiply-accumulates: the later the cut, the
	// fewer levels the rest needs, so the smaller the upload.
	SplitAfter string
	// DeviceMACs is the device's budget for SplitAfter "auto".
	DeviceMACs int64
	// Privacy chooses the differential-privacy release of the outputs
	// (see Mechanism). Left zero, the output range is calibrated on
	// Calibration and sigma derived from DefaultQueryEpsilon; a model
	// without calibration samples then has no mechanism and its results
	// cannot be released.
	Privacy PrivacyOptions
	// Parallelism is how many goroutines one evaluation may use (each
	// linear step is split by giant-step group across them). 0 means
	// runtime.GOMAXPROCS(0), at most 8; 1 evaluates sequentially. It changes
	// neither the keys nor the results.
	Parallelism int
	// Weights chooses how the linear layers' weights are held: "encoded"
	// pre-encodes every diagonal as a plaintext at its step's level, with
	// the special primes, once at compile time (fastest; one diagonal is
	// (level+1+P)·N·8 bytes, P the special primes); "lazy" keeps the
	// diagonals as float64 values (n·8 bytes each, n the slots used) and
	// encodes a term's plaintexts during each evaluation, just before the
	// term is applied, dropping them after. "" (auto) is lazy when the
	// pre-encoded weights would exceed MaxEncodedBytes, encoded otherwise.
	// The results are the same bit for bit either way.
	Weights string
	// MaxEncodedBytes bounds the pre-encoded weights for Weights "" (auto);
	// 0 means DefaultMaxEncodedBytes.
	MaxEncodedBytes int64
}

// DefaultMaxEncodedBytes is the pre-encoded weights above which Compile
// keeps them as float64 values and encodes them per step (Weights "").
const DefaultMaxEncodedBytes int64 = 2 << 30

// Weights values (CompileOptions.Weights, Manifest.Weights).
const (
	WeightsEncoded = "encoded"
	WeightsLazy    = "lazy"
)

// Cost counts the homomorphic primitives one evaluation performs.
type Cost struct {
	Rotations   int `json:"rotations"`    // key switches for slot rotations (hoisted ones included)
	PlainMults  int `json:"plain_mults"`  // ciphertext × plaintext multiplications
	CipherMults int `json:"cipher_mults"` // ciphertext × ciphertext multiplications
	Relins      int `json:"relins"`       // relinearisations
	Rescales    int `json:"rescales"`
	// Bootstraps counts the bootstraps the compiler placed (each a whole
	// bootstrapping circuit, not counted in the fields above).
	Bootstraps int `json:"bootstraps,omitempty"`
}

// ParamsInfo describes the CKKS parameters a model is compiled for.
type ParamsInfo struct {
	Preset       string `json:"preset"`
	LogN         int    `json:"log_n"`
	LogQP        int    `json:"log_qp"`
	MaxLevel     int    `json:"max_level"`
	LogScale     int    `json:"log_scale"`
	SecurityBits int    `json:"security_bits"` // 128, or 0 for test-only presets
	Fingerprint  string `json:"fingerprint"`   // hex SHA-256 of the serialised parameters
}

// Manifest is what a client needs to know about a compiled model before it
// generates keys and encrypts: shapes, parameters, the exact Galois elements
// its key set must hold, and the cost estimate.
type Manifest struct {
	Name       hegate.ModelID `json:"name"`
	Input      []int          `json:"input"`
	Packing    *Packing       `json:"packing,omitempty"` // how the device lays out its input; nil: as is
	OutputSize int            `json:"output_size"`
	// OutputPeriod: in the result, the outputs repeat every OutputPeriod
	// slots (Decrypt averages the replicas); 0 when results cannot be
	// released (see PrivacyNote).
	OutputPeriod    int        `json:"output_period,omitempty"`
	Params          ParamsInfo `json:"params"`
	LogSlots        int        `json:"log_slots"` // slots used by the packing
	Levels          int        `json:"levels"`    // levels consumed by the circuit
	GaloisElements  []uint64   `json:"galois_elements"`
	GaloisLevels    []int      `json:"galois_levels"` // level of each Galois key
	RelinLevel      int        `json:"relin_level"`   // level of the relinearisation key
	Cost            Cost       `json:"cost"`
	Steps           []StepInfo `json:"steps"`            // the circuit, in order
	KeySetBytes     int64      `json:"key_set_bytes"`    // exact size of the key-set upload
	CiphertextBytes int64      `json:"ciphertext_bytes"` // exact size of an input ciphertext
	ResultBytes     int64      `json:"result_bytes"`     // exact size of a result ciphertext
	// EncodedBytes is the memory of the model's resident weights (per
	// process, shared by every evaluation): the pre-encoded plaintexts, or,
	// when Weights is "lazy", the float64 diagonals they are encoded from
	// (8 bytes a slot). EvaluationBytes estimates one evaluation's peak:
	// the expanded key set (twice its wire size) and the ciphertexts alive
	// at once, the bootstrapper's when the model bootstraps, and, for lazy
	// weights, the plaintexts of the largest term (one input of a linear
	// step), which are encoded for it and dropped after it, with one
	// encoder's buffers per goroutine.
	EncodedBytes    int64 `json:"encoded_bytes"`
	EvaluationBytes int64 `json:"evaluation_bytes"`
	// Weights is "lazy" when the linear layers' plaintexts are encoded per
	// step during each evaluation instead of held encoded (see
	// CompileOptions.Weights); empty when they are pre-encoded.
	Weights string `json:"weights,omitempty"`
	// Split is set for split inference: Input is then the shape of the
	// value the device computes and encrypts.
	Split *SplitInfo `json:"split,omitempty"`
	// Preprocess is how the device turns raw data into the model's input,
	// and Tail what it applies to the decrypted output (a trailing Softmax
	// or ArgMax of the original network runs on the device).
	Preprocess *ir.Preprocess `json:"preprocess,omitempty"`
	Tail       []ir.TailOp    `json:"tail,omitempty"`
	// Privacy is how results are released (noise, sensitivity, cost per
	// query); nil, with PrivacyNote saying why, when they cannot be.
	Privacy     *Mechanism `json:"privacy,omitempty"`
	PrivacyNote string     `json:"privacy_note,omitempty"`
	// Bootstraps lists where the compiler refreshed values and why; set
	// only for circuits deeper than the preset's levels (a bootstrapping
	// preset). BootstrapKeys are then the bootstrapping keys the key set
	// carries after the circuit's own.
	Bootstraps    []BootstrapInfo `json:"bootstraps,omitempty"`
	BootstrapKeys *BootstrapKeys  `json:"bootstrap_keys,omitempty"`
}

// SplitInfo describes the head a device runs before encrypting.
type SplitInfo struct {
	After      string `json:"after"`       // the value the device encrypts
	HeadDigest string `json:"head_digest"` // ir.Graph.Digest of the head
	HeadNodes  int    `json:"head_nodes"`
	HeadMACs   int64  `json:"head_macs"` // multiply-accumulates per input on the device
}

// StepInfo describes one step of the compiled circuit.
type StepInfo struct {
	Kind      string `json:"kind"`             // "linear", "square", "mul", "poly" or "bootstrap"
	Name      string `json:"name"`             // the graph nodes it implements
	Inputs    int    `json:"inputs"`           // number of input values
	Level     int    `json:"level"`            // level of the ciphertexts entering the step
	Depth     int    `json:"depth"`            // levels it consumes
	Method    string `json:"method,omitempty"` // linear: "diagonal" or "hybrid"
	Diagonals int    `json:"diagonals,omitempty"`
	// BabySteps and GiantSteps are the linear step's non-zero rotations
	// (baby steps hoisted, giant steps full key switches).
	BabySteps  int `json:"baby_steps,omitempty"`
	GiantSteps int `json:"giant_steps,omitempty"`
	// Poly: the approximated function ("relu", "abs" or "trained"), degree
	// and the input range the approximation holds on.
	Function string     `json:"function,omitempty"`
	Degree   int        `json:"degree,omitempty"`
	Range    [2]float64 `json:"range,omitempty"`
	MaxError float64    `json:"max_error,omitempty"` // largest |approximation − f| on the range
	Cost     Cost       `json:"cost"`
	// OutputLevel is the level a bootstrap step returns its value at.
	OutputLevel int `json:"output_level,omitempty"`
}

// Packing tells the device how to lay its input out before encrypting.
// Kind "im2col": the first layer is a convolution with this geometry and
// the device unrolls the input into patches (see Device.PackInput).
type Packing struct {
	Kind   string `json:"kind"`
	Kernel [2]int `json:"kernel"`
	Stride [2]int `json:"stride"`
	Pads   [4]int `json:"pads"`  // top, left, bottom, right
	Block  int    `json:"block"` // slots between two patch elements
}

// KeySetInfo describes a key set that passed CheckKeySet.
type KeySetInfo struct {
	Bytes          int64
	GaloisElements int
	ParamsID       string
}

// Stats report one evaluation.
type Stats struct {
	Cost     Cost
	Duration time.Duration
	// Release is the part of Duration spent re-randomising and noising
	// the result.
	Release time.Duration
}

// Model is a graph compiled for a CKKS parameter set: pre-encoded weights,
// the level plan and the key requirements. A Model is safe for concurrent use.
type Model struct {
	ranges   Ranges
	graph    *ir.Graph // the whole graph
	head     *ir.Graph // split inference: what the device runs; nil otherwise
	split    *SplitInfo
	manifest Manifest // built once by Compile
	// filled by compile.go
	c *compiled
}

// ID is the model's name: CompileOptions.Name, or the graph's.
func (m *Model) ID() hegate.ModelID { return hegate.ModelID(m.c.name) }

// Graph returns the source graph, whole (do not modify it).
func (m *Model) Graph() *ir.Graph { return m.graph }

// Ranges are the calibrated ranges of the model's approximations.
func (m *Model) Ranges() Ranges { return m.ranges }

// Head returns, for split inference, the graph the device runs before
// encrypting (its output is the compiled model's input), and nil otherwise.
func (m *Model) Head() *ir.Graph { return m.head }

// KeySet is a parsed, validated evaluation-key set ready for Evaluate.
// It is immutable and safe for concurrent use.
type KeySet struct {
	k *keySet
}

// SecretKey is a device's CKKS secret key. It never leaves the device.
type SecretKey struct {
	sk *secretKey
}
