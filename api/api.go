package api

// Content types.
const (
	// ContentTypeKeySet is the media type of an evaluation-key set upload.
	ContentTypeKeySet = "application/vnd.hegate.ckks-keyset"
	// ContentTypeCiphertext is the media type of an input or result ciphertext.
	ContentTypeCiphertext = "application/vnd.hegate.ckks-ciphertext"
	// ContentTypeProblem is the media type of RFC 9457 problem documents.
	ContentTypeProblem = "application/problem+json"
	// ContentTypeJSON is the media type of JSON documents.
	ContentTypeJSON = "application/json"
	// ContentTypeOctetStream is the media type of binary-extension inference
	// requests and responses.
	ContentTypeOctetStream = "application/octet-stream"
)

// Header names.
const (
	// HeaderInferenceContentLength is the length of the JSON document that
	// opens a binary-extension inference request or response.
	HeaderInferenceContentLength = "Inference-Header-Content-Length"
	// HeaderIdempotencyKey makes a POST safe to retry: the same key from the
	// same tenant returns the job the first request created.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderRequestID carries the request id the gateway assigned (or
	// accepted from the client); problem documents repeat it.
	HeaderRequestID = "X-Request-Id"
	// HeaderModel names the model a key set is uploaded for, as an
	// alternative to the "model" query parameter.
	HeaderModel = "Hegate-Model"
	// HeaderPrefer is RFC 7240's Prefer header. An inference is answered
	// with its result, the gateway waiting up to its limit; "wait=N" waits
	// at most N seconds, "respond-async" answers 202 and the job at once
	// ("respond-async, wait=N": after N seconds).
	HeaderPrefer = "Prefer"
	// HeaderPreferenceApplied tells which preference the gateway honoured.
	HeaderPreferenceApplied = "Preference-Applied"
)

// Query parameter names.
const (
	// QueryModel names the model of a key-set upload.
	QueryModel = "model"
	// QueryLimit bounds a list.
	QueryLimit = "limit"
	// QueryVersion names the version of a tenant's model (key-set upload).
	QueryVersion = "version"
	// QueryName names an uploaded model.
	QueryName = "name"
)

// OIP tensor and request parameter names.
const (
	// ParamKeySetID is the id of the evaluation-key set (an input parameter).
	ParamKeySetID = "key_set_id"
	// ParamContentType is the media type of a BYTES tensor's element.
	ParamContentType = "content_type"
	// ParamBinaryDataSize is the number of bytes of a tensor's binary data.
	ParamBinaryDataSize = "binary_data_size"
	// ParamBinaryData says whether a tensor's data travels in binary (true)
	// or in its JSON data member (false).
	ParamBinaryData = "binary_data"
	// ParamBinaryDataOutput, a request parameter, asks for every output in
	// binary (true) or in JSON (false).
	ParamBinaryDataOutput = "binary_data_output"
	// ParamJobID is the id of the job that computed a response.
	ParamJobID = "job_id"
)

// Tensor names and datatypes of hegate models.
const (
	// InputName is the name of a hegate model's one input tensor.
	InputName = "input"
	// OutputName is the name of a hegate model's one output tensor.
	OutputName = "output"
	// DatatypeBytes is the OIP datatype of a ciphertext tensor.
	DatatypeBytes = "BYTES"
	// Platform is the platform hegate reports in model metadata.
	Platform = "hegate-ckks"
)

// Paths that clients build.
const (
	// PathJobs is the collection of the tenant's jobs.
	PathJobs = "/v1/jobs"
	// PathBudget is the caller's privacy budgets (GET); PathBudgets/{model}
	// sets one (PUT, admin key).
	PathBudget  = "/v1/budget"
	PathBudgets = "/v1/budgets"
	// PathKeys is the collection of the tenant's key sets.
	PathKeys = "/v1/keys"
	// PathModels is the collection of the tenant's uploaded models.
	PathModels = "/v1/models"
)

// Media types of model uploads.
const (
	ContentTypeONNX   = "application/onnx"
	ContentTypeIRJSON = "application/vnd.hegate.graph+json"
)
