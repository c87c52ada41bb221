package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/hegate/hegate/api"
)

// InferOptions tune Infer.
type InferOptions struct {
	// Wait makes Infer return the result: the gateway waits for the job
	// and answers with it (the OIP default; "Prefer: wait=N" when
	// WaitFor is set), and if its wait ends first Infer polls the job
	// until it finishes or ctx ends. Without Wait, Infer sends "Prefer:
	// respond-async" and returns as soon as the job is accepted, with a
	// nil result: fetch it later with WaitJob and Result.
	Wait bool
	// WaitFor, with Wait, bounds how long the gateway waits before it
	// answers 202 and Infer starts polling, in whole seconds; 0 means the
	// gateway's own limit (30 s by default).
	WaitFor time.Duration
	// IdempotencyKey makes the request safe to retry: the gateway returns
	// the job the first request with this key created.
	IdempotencyKey string
}

// Infer sends one ciphertext to model, to be evaluated with the key set
// keySetID, using the binary tensor extension. It returns the result
// ciphertext (nil when the job is not finished and opts.Wait is false) and
// the job id.
func (c *Client) Infer(ctx context.Context, model, keySetID string, ciphertext []byte, opts InferOptions) (result []byte, jobID string, err error) {
	if int64(len(ciphertext)) > api.MaxBytesElement {
		return nil, "", fmt.Errorf("client: ciphertext of %d bytes is too large", len(ciphertext))
	}
	hdr, err := json.Marshal(api.InferRequest{
		Inputs: []api.Tensor{{
			Name:     api.InputName,
			Shape:    []int64{1},
			Datatype: api.DatatypeBytes,
			Parameters: api.Parameters{
				api.ParamContentType:    api.ContentTypeCiphertext,
				api.ParamKeySetID:       keySetID,
				api.ParamBinaryDataSize: api.BytesElementOverhead + len(ciphertext),
			},
		}},
		Outputs: []api.RequestedOutput{{
			Name:       api.OutputName,
			Parameters: api.Parameters{api.ParamBinaryData: true},
		}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("client: encoding inference request: %w", err)
	}
	prefix := api.BytesElementPrefix(len(ciphertext))
	body := io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(prefix[:]), bytes.NewReader(ciphertext))
	req, err := c.request(ctx, http.MethodPost, modelPath(model)+"/infer", body)
	if err != nil {
		return nil, "", err
	}
	req.ContentLength = int64(len(hdr) + len(prefix) + len(ciphertext))
	req.GetBody = func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(prefix[:]), bytes.NewReader(ciphertext))), nil
	}
	req.Header.Set("Content-Type", api.ContentTypeOctetStream)
	req.Header.Set(api.HeaderInferenceContentLength, strconv.Itoa(len(hdr)))
	switch {
	case !opts.Wait:
		req.Header.Set(api.HeaderPrefer, "respond-async")
	case opts.WaitFor > 0:
		req.Header.Set(api.HeaderPrefer, "wait="+strconv.FormatInt(int64(max(opts.WaitFor/time.Second, 1)), 10))
	}
	if opts.IdempotencyKey != "" {
		req.Header.Set(api.HeaderIdempotencyKey, opts.IdempotencyKey)
	}
	resp, err := c.do(req, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusOK {
		return c.readInferResponse(resp)
	}
	var job api.Job
	if err := decodeJSON(resp, &job); err != nil {
		return nil, "", err
	}
	if job.ID == "" {
		return nil, "", fmt.Errorf("client: the gateway accepted the inference without naming a job")
	}
	if !opts.Wait {
		return nil, job.ID, nil
	}
	if !job.Status.Terminal() {
		if _, err := c.WaitJob(ctx, job.ID); err != nil {
			return nil, job.ID, err
		}
	}
	result, err = c.Result(ctx, job.ID)
	return result, job.ID, err
}

// readInferResponse extracts the result ciphertext and job id from a 200
// inference answer, binary or JSON.
func (c *Client) readInferResponse(resp *http.Response) ([]byte, string, error) {
	var (
		ir  api.InferResponse
		bin []byte
	)
	if hv := resp.Header.Get(api.HeaderInferenceContentLength); hv != "" {
		n, err := strconv.ParseInt(hv, 10, 64)
		if err != nil || n <= 0 || n > maxJSONBytes {
			return nil, "", fmt.Errorf("client: bad %s %q in the answer", api.HeaderInferenceContentLength, hv)
		}
		hdr := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, hdr); err != nil {
			return nil, "", fmt.Errorf("client: reading inference answer: %w", err)
		}
		if err := json.Unmarshal(hdr, &ir); err != nil {
			return nil, "", fmt.Errorf("client: decoding inference answer: %w", err)
		}
		b, err := readBounded(resp.Body, c.maxResultBytes+api.BytesElementOverhead, "inference result")
		if err != nil {
			return nil, "", err
		}
		bin = b
	} else {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt != api.ContentTypeJSON {
			return nil, "", fmt.Errorf("client: inference answer has Content-Type %q", mt)
		}
		if err := decodeJSON(resp, &ir); err != nil {
			return nil, "", err
		}
	}
	jobID, _ := ir.Parameters.String(api.ParamJobID)
	if len(ir.Outputs) != 1 || ir.Outputs[0].Name != api.OutputName {
		return nil, jobID, fmt.Errorf("client: inference answer has %d outputs, want one named %q", len(ir.Outputs), api.OutputName)
	}
	out := ir.Outputs[0]
	if bin != nil {
		size, ok := out.Parameters.Int64(api.ParamBinaryDataSize)
		if !ok || size != int64(len(bin)) {
			return nil, jobID, fmt.Errorf("client: inference answer: %s does not match the %d bytes of binary data", api.ParamBinaryDataSize, len(bin))
		}
		elems, err := api.SplitBytesElements(bin, 1)
		if err != nil {
			return nil, jobID, fmt.Errorf("client: inference answer: %w", err)
		}
		return elems[0], jobID, nil
	}
	var data []string
	if err := json.Unmarshal(out.Data, &data); err != nil || len(data) != 1 {
		return nil, jobID, fmt.Errorf("client: inference answer: output data is not one base64 string")
	}
	b, err := base64.StdEncoding.DecodeString(data[0])
	if err != nil {
		return nil, jobID, fmt.Errorf("client: inference answer: %w", err)
	}
	return b, jobID, nil
}
