package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/api"
	"github.com/hegate/hegate/catalog"
)

// inferInput is a parsed, validated inference request.
type inferInput struct {
	id           string // the OIP request id, echoed in the response
	keySetID     hegate.KeySetID
	ciphertext   []byte
	binaryOutput bool // answer with the binary tensor extension
}

// maxOIPRequestID bounds the echoed OIP request id.
const maxOIPRequestID = 256

// parseInferRequest reads and validates an OIP inference request: the binary
// tensor extension when h has Inference-Header-Content-Length, plain JSON
// otherwise, the BYTES element then being the base64 of the ciphertext
// (see package api). The ciphertext may
// be at most maxCiphertext bytes. The JSON must hold no member that OIP
// does not define (a misspelt "outputs" would otherwise be ignored
// silently). Errors are KindInvalid or KindTooLarge with a detail naming
// the problem; it never panics on any input.
func parseInferRequest(h http.Header, body io.Reader, maxCiphertext int64) (inferInput, error) {
	const op = "oip.infer.parse"
	bad := func(format string, args ...any) error {
		return hegate.E(op, hegate.KindInvalid, nil, format, args...)
	}
	var (
		req      api.InferRequest
		binData  []byte
		isBinary = h.Get(api.HeaderInferenceContentLength) != ""
	)
	if err := checkInferContentType(h.Get("Content-Type"), isBinary); err != nil {
		return inferInput{}, err
	}
	if isBinary {
		hv := h.Get(api.HeaderInferenceContentLength)
		n, err := strconv.ParseInt(strings.TrimSpace(hv), 10, 64)
		if err != nil || n <= 0 {
			return inferInput{}, bad("%s %q: want a positive number of bytes", api.HeaderInferenceContentLength, hv)
		}
		if n > maxInferHeaderBytes {
			return inferInput{}, hegate.E(op, hegate.KindTooLarge, nil, "%s %d exceeds the limit of %d bytes", api.HeaderInferenceContentLength, n, maxInferHeaderBytes)
		}
		hdr := make([]byte, n)
		if got, err := io.ReadFull(body, hdr); err != nil {
			if classifiedBodyError(err) {
				return inferInput{}, wrap(err, "reading inference header")
			}
			return inferInput{}, bad("body ends inside the JSON inference header: %d of %d bytes", got, n)
		}
		if err := decodeStrict(hdr, &req); err != nil {
			return inferInput{}, bad("inference header is not a valid JSON inference request: %v", jsonErr(err))
		}
		// The binary data: one BYTES element of at most maxCiphertext bytes.
		limit := maxCiphertext + api.BytesElementOverhead
		data, err := io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			if classifiedBodyError(err) {
				return inferInput{}, wrap(err, "reading binary tensor data")
			}
			return inferInput{}, hegate.E(op, hegate.KindInvalid, err, "reading binary tensor data failed")
		}
		if int64(len(data)) > limit {
			return inferInput{}, hegate.E(op, hegate.KindTooLarge, nil, "binary tensor data exceeds the limit of %d bytes (a %d-byte length, then a ciphertext of at most %d bytes)", limit, api.BytesElementOverhead, maxCiphertext)
		}
		binData = data
	} else {
		limit := int64(maxInferHeaderBytes) + (maxCiphertext+2)/3*4
		raw, err := io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			if classifiedBodyError(err) {
				return inferInput{}, wrap(err, "reading inference request")
			}
			return inferInput{}, hegate.E(op, hegate.KindInvalid, err, "reading inference request failed")
		}
		if int64(len(raw)) > limit {
			return inferInput{}, hegate.E(op, hegate.KindTooLarge, nil, "inference request exceeds the limit of %d bytes", limit)
		}
		if err := decodeStrict(raw, &req); err != nil {
			return inferInput{}, bad("body is not a valid JSON inference request (for binary tensor data send %s): %v", api.HeaderInferenceContentLength, jsonErr(err))
		}
	}

	in := inferInput{id: req.ID, binaryOutput: isBinary}
	if len(req.ID) > maxOIPRequestID {
		return inferInput{}, bad("request id is %d characters, the limit is %d", len(req.ID), maxOIPRequestID)
	}
	if len(req.Inputs) != 1 {
		return inferInput{}, bad("request has %d inputs; the model takes one, %q", len(req.Inputs), api.InputName)
	}
	t := req.Inputs[0]
	switch {
	case t.Name != api.InputName:
		return inferInput{}, bad("input is named %q; the model's input is %q", truncate(t.Name, 80), api.InputName)
	case t.Datatype != api.DatatypeBytes:
		return inferInput{}, bad("input datatype is %q; want %s", truncate(t.Datatype, 80), api.DatatypeBytes)
	case !slices.Equal(t.Shape, []int64{1}):
		return inferInput{}, bad("input shape is %v; want [1] (one ciphertext)", t.Shape[:min(len(t.Shape), 8)])
	}
	ct, ok := t.Parameters.String(api.ParamContentType)
	if !ok {
		return inferInput{}, bad("input parameter %s is missing or not a string; want %q", api.ParamContentType, api.ContentTypeCiphertext)
	}
	if ct != api.ContentTypeCiphertext {
		return inferInput{}, bad("input parameter %s is %q; want %q", api.ParamContentType, truncate(ct, 80), api.ContentTypeCiphertext)
	}
	ks, ok := t.Parameters.String(api.ParamKeySetID)
	if !ok {
		return inferInput{}, bad("input parameter %s is missing or not a string", api.ParamKeySetID)
	}
	if !validKeySetID(ks) {
		return inferInput{}, bad("input parameter %s %q is not 64 lowercase hex digits", api.ParamKeySetID, truncate(ks, 80))
	}
	in.keySetID = hegate.KeySetID(ks)

	bd, hasBD := t.Parameters[api.ParamBinaryData]
	if hasBD {
		if _, ok := bd.(bool); !ok {
			return inferInput{}, bad("input parameter %s must be a boolean", api.ParamBinaryData)
		}
	}
	wantBinary, _ := t.Parameters.Bool(api.ParamBinaryData)
	if isBinary {
		if hasBD && !wantBinary {
			return inferInput{}, bad("input parameter %s is false but the request uses the binary tensor extension", api.ParamBinaryData)
		}
		if len(t.Data) != 0 {
			return inferInput{}, bad("input has both JSON data and binary data")
		}
		size, ok := t.Parameters.Int64(api.ParamBinaryDataSize)
		if !ok {
			return inferInput{}, bad("input parameter %s is missing or not an integer", api.ParamBinaryDataSize)
		}
		if size != int64(len(binData)) {
			return inferInput{}, bad("input parameter %s is %d but %d bytes of binary data follow the header", api.ParamBinaryDataSize, size, len(binData))
		}
		elems, err := api.SplitBytesElements(binData, 1)
		if err != nil {
			return inferInput{}, bad("input binary data: %v", err)
		}
		in.ciphertext = elems[0]
	} else {
		// Plain JSON, as KServe and Triton clients send BYTES: the element
		// is a string in data. A ciphertext is binary, so that string is
		// always its base64; no parameter is needed to say so (binary_data
		// false is accepted, and redundant).
		if wantBinary {
			return inferInput{}, bad("input parameter %s is true but the request has no binary data: send the binary tensor extension (%s), or put the base64 ciphertext in data", api.ParamBinaryData, api.HeaderInferenceContentLength)
		}
		if _, ok := t.Parameters[api.ParamBinaryDataSize]; ok {
			return inferInput{}, bad("input parameter %s is set but the request has no binary data (no %s header)", api.ParamBinaryDataSize, api.HeaderInferenceContentLength)
		}
		if len(t.Data) == 0 {
			return inferInput{}, bad("input has no data: put the base64 ciphertext as the one string of data, or send the binary tensor extension (%s)", api.HeaderInferenceContentLength)
		}
		var data []string
		if err := json.Unmarshal(t.Data, &data); err != nil || len(data) != 1 {
			return inferInput{}, bad("input data must be an array of one string, the base64 ciphertext")
		}
		b, err := base64.StdEncoding.DecodeString(data[0])
		if err != nil {
			return inferInput{}, bad("input data is not base64 (BYTES data in JSON is the base64 of the binary ciphertext, standard alphabet, padded): %v", err)
		}
		in.ciphertext = b
	}
	if len(in.ciphertext) == 0 {
		return inferInput{}, bad("the ciphertext is empty")
	}
	if int64(len(in.ciphertext)) > maxCiphertext {
		return inferInput{}, hegate.E(op, hegate.KindTooLarge, nil, "the ciphertext is %d bytes; the limit is %d", len(in.ciphertext), maxCiphertext)
	}

	// How to answer: the request's framing, unless it asks otherwise.
	if _, ok := req.Parameters[api.ParamBinaryDataOutput]; ok {
		v, ok := req.Parameters.Bool(api.ParamBinaryDataOutput)
		if !ok {
			return inferInput{}, bad("request parameter %s must be a boolean", api.ParamBinaryDataOutput)
		}
		in.binaryOutput = v
	}
	if len(req.Outputs) > 1 {
		return inferInput{}, bad("request asks for %d outputs; the model has one, %q", len(req.Outputs), api.OutputName)
	}
	for _, o := range req.Outputs {
		if o.Name != api.OutputName {
			return inferInput{}, bad("request asks for output %q; the model's output is %q", truncate(o.Name, 80), api.OutputName)
		}
		if _, ok := o.Parameters[api.ParamBinaryData]; ok {
			v, ok := o.Parameters.Bool(api.ParamBinaryData)
			if !ok {
				return inferInput{}, bad("output parameter %s must be a boolean", api.ParamBinaryData)
			}
			in.binaryOutput = v
		}
	}
	return in, nil
}

// writeInferResponse answers an inference with its result ciphertext as the
// one BYTES output tensor, in binary or base64 JSON.
func writeInferResponse(w http.ResponseWriter, m catalog.Model, in inferInput, jobID hegate.JobID, result []byte, binary bool) error {
	out := api.Tensor{
		Name:     api.OutputName,
		Shape:    []int64{1},
		Datatype: api.DatatypeBytes,
		Parameters: api.Parameters{
			api.ParamContentType: api.ContentTypeCiphertext,
		},
	}
	resp := api.InferResponse{
		ModelName:    string(m.Name),
		ModelVersion: oipVersion(m.Ref),
		ID:           in.id,
		Parameters:   api.Parameters{api.ParamJobID: string(jobID)},
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	if !binary {
		data, err := json.Marshal([]string{base64.StdEncoding.EncodeToString(result)})
		if err != nil {
			return fmt.Errorf("encoding result: %w", err)
		}
		out.Parameters[api.ParamBinaryData] = false
		out.Data = data
		resp.Outputs = []api.Tensor{out}
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	out.Parameters[api.ParamBinaryDataSize] = api.BytesElementOverhead + len(result)
	resp.Outputs = []api.Tensor{out}
	hdr, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encoding inference response: %w", err)
	}
	prefix := api.BytesElementPrefix(len(result))
	h.Set("Content-Type", api.ContentTypeOctetStream)
	h.Set(api.HeaderInferenceContentLength, strconv.Itoa(len(hdr)))
	h.Set("Content-Length", strconv.Itoa(len(hdr)+len(prefix)+len(result)))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(prefix[:]), bytes.NewReader(result)))
	return err
}

// checkInferContentType accepts an inference request's Content-Type: none,
// application/json, or (binary tensor extension only)
// application/octet-stream.
func checkInferContentType(ct string, binary bool) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt == api.ContentTypeJSON:
		return nil
	case err == nil && mt == api.ContentTypeOctetStream && binary:
		return nil
	case binary:
		return hegate.E("oip.infer.parse", hegate.KindInvalid, nil, "Content-Type %q: want %s (binary tensor extension)", truncate(ct, 80), api.ContentTypeOctetStream)
	default:
		return hegate.E("oip.infer.parse", hegate.KindInvalid, nil, "Content-Type %q: want %s, or %s with the %s header", truncate(ct, 80), api.ContentTypeJSON, api.ContentTypeOctetStream, api.HeaderInferenceContentLength)
	}
}

// decodeStrict decodes one JSON document from b into v, refusing members
// v does not define and anything after the document.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid data after the top-level value")
	}
	return nil
}

// classifiedBodyError reports whether err, from reading the request body,
// already says what is wrong (the size limit, or clientBody's verdict).
func classifiedBodyError(err error) bool {
	return isMaxBytes(err) || hegate.KindOf(err) != hegate.KindInternal
}

// validKeySetID reports whether s is a lowercase hex SHA-256.
func validKeySetID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// jsonErr shortens a JSON decoding error for a client-facing detail.
func jsonErr(err error) string {
	return truncate(err.Error(), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
