package onnx

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/he/ir"
	"github.com/hegate/hegate/he/onnx/internal/onnxpb"
)

// MaxModelBytes is the default limit on the size of a model file.
const MaxModelBytes = 128 << 20

// Limits on the protobuf structure, checked on the wire before decoding so
// that a small hostile file cannot expand into a huge decoded model.
const (
	// maxMessages bounds the protobuf messages in a file (nodes,
	// attributes, tensors, value infos, dimensions, ...). Real models
	// within ir.MaxNodes need a few tens of thousands.
	maxMessages = 1 << 18
	// maxVarints bounds the elements of repeated integer fields (dims,
	// ints attributes, int64_data, ...), each of which decodes to 8 bytes.
	maxVarints = 1 << 23
	// maxDepth bounds the nesting of messages (sub-graphs, nested types).
	maxDepth = 64
)

// The supported range of the default-domain opset.
const (
	minOpset = 9
	maxOpset = 21
)

const opImport = "onnx.Import"

// Options configure Import.
type Options struct {
	// Name is the model name; by default it is derived from the ONNX
	// graph name (sanitised), or "model".
	Name string
	// Preprocess is stored in the graph's Input.Preprocess (a copy; its
	// Layout is set to "NHWC" when the importer detects a channels-last
	// input).
	Preprocess *ir.Preprocess
	// MaxBytes bounds the size of the model file; 0 means MaxModelBytes.
	MaxBytes int64
}

func (o Options) maxBytes() int64 {
	if o.MaxBytes <= 0 {
		return MaxModelBytes
	}
	return o.MaxBytes
}

// ImportFile imports the ONNX model in the file at path (see Import).
func ImportFile(path string, opts Options) (*ir.Graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, hegate.E("onnx.ImportFile", hegate.KindInvalid, err, "cannot open the model file")
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > opts.maxBytes() {
		return nil, hegate.E(opImport, hegate.KindTooLarge, nil, "model file has %d bytes, more than the limit of %d", st.Size(), opts.maxBytes())
	}
	return Import(f, opts)
}

// Import reads an ONNX model (a serialized onnx.ModelProto) from r, at most
// opts.MaxBytes bytes, and converts it to an IR graph that passes
// Validate. Errors are *hegate.Error of kind KindTooLarge (the file is too
// big) or KindInvalid, with a client-safe detail naming the node, the
// ONNX operator and what to change.
func Import(r io.Reader, opts Options) (*ir.Graph, error) {
	limit := opts.maxBytes()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, hegate.E(opImport, hegate.KindInvalid, err, "cannot read the model file")
	}
	if int64(len(data)) > limit {
		return nil, hegate.E(opImport, hegate.KindTooLarge, nil, "model file exceeds the limit of %d bytes", limit)
	}
	m, err := decode(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	size := len(data)
	data = nil // the decoded model holds copies of everything needed
	im := &importer{opts: opts, model: m, sha256: hex.EncodeToString(sum[:]), size: size, budget: budgetFor(size)}
	return im.run()
}

// decode checks the protobuf structure against the limits and decodes it.
func decode(data []byte) (*onnxpb.ModelProto, error) {
	if len(data) == 0 {
		return nil, invalid("the model file is empty")
	}
	s := &scanner{}
	md := (&onnxpb.ModelProto{}).ProtoReflect().Descriptor()
	if err := s.scan(data, md, 0, false); err != nil {
		var le *limitError
		if errors.As(err, &le) {
			return nil, invalid("%s", le.msg)
		}
		return nil, hegate.E(opImport, hegate.KindInvalid, err, "the file is not an ONNX model: malformed or truncated protobuf (%v); export the model again", err)
	}
	m := &onnxpb.ModelProto{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, m); err != nil {
		return nil, hegate.E(opImport, hegate.KindInvalid, err, "the file is not an ONNX model: it does not decode as an ONNX ModelProto; export the model again")
	}
	return m, nil
}

// limitError is a structural limit the scan found exceeded.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// scanner walks the protobuf wire format guided by the message
// descriptors, counting messages, repeated integers and the nodes of the
// main graph without allocating anything.
type scanner struct {
	messages, varints, nodes int
}

func (s *scanner) scan(b []byte, md protoreflect.MessageDescriptor, depth int, mainGraph bool) error {
	if depth > maxDepth {
		return &limitError{fmt.Sprintf("the model nests messages more than %d levels deep", maxDepth)}
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		switch {
		case typ == protowire.BytesType && fd != nil && fd.Kind() == protoreflect.MessageKind:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if s.messages++; s.messages > maxMessages {
				return &limitError{fmt.Sprintf("the model has more than %d protobuf messages (nodes, attributes, tensors, shapes)", maxMessages)}
			}
			if mainGraph && num == 1 { // GraphProto.node
				if s.nodes++; s.nodes > ir.MaxNodes {
					return &limitError{fmt.Sprintf("the graph has more than %d nodes (the limit); use a smaller model", ir.MaxNodes)}
				}
			}
			isMain := depth == 0 && num == 7 // ModelProto.graph
			if err := s.scan(v, fd.Message(), depth+1, isMain); err != nil {
				return err
			}
		case typ == protowire.BytesType && fd != nil && fd.IsList() && isVarintKind(fd.Kind()):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			for _, c := range v {
				if c < 0x80 {
					s.varints++
				}
			}
			if s.varints > maxVarints {
				return &limitError{fmt.Sprintf("the model has more than %d integers in repeated fields", maxVarints)}
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			if typ == protowire.VarintType && fd != nil && fd.IsList() {
				if s.varints++; s.varints > maxVarints {
					return &limitError{fmt.Sprintf("the model has more than %d integers in repeated fields", maxVarints)}
				}
			}
		}
	}
	return nil
}

func isVarintKind(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind,
		protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.BoolKind, protoreflect.EnumKind:
		return true
	}
	return false
}

// invalid is a KindInvalid error of the importer.
func invalid(format string, args ...any) error {
	return hegate.E(opImport, hegate.KindInvalid, nil, format, args...)
}

// short quotes a name from the file for a message, cutting long ones.
func short(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// opName prints an operator type from the file: as is when it looks like
// an identifier, quoted otherwise.
func opName(s string) string {
	if s == "" || len(s) > 64 {
		return short(s)
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return short(s)
		}
	}
	return s
}

// sanitizeName makes a model name from an ONNX graph name: letters,
// digits, '.', '_' and '-', at most 64 characters.
func sanitizeName(s string) string {
	var b bytes.Buffer
	dash := false
	for _, c := range s {
		ok := c == '_' || c == '.' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok {
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(c)
		if b.Len() >= 64 {
			break
		}
	}
	name := strings.Trim(b.String(), "-.")
	if name == "" {
		return "model"
	}
	return name
}
