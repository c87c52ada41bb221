// Package hegate holds the names every part of the gateway shares: the
// identifier types of its domain objects and the one error type with a Kind.
//
// It imports nothing of HTTP, SQL or cryptography; every other package may
// import it. Implementations live in packages named for what they are:
// he (the CKKS engine), storage (repositories), gateway (the HTTP API),
// client (the device SDK).
package hegate

// TenantID names a tenant. It always comes from the caller's credential,
// never from a request body or path.
type TenantID string

// ModelID names a deployed model, for example "mnist-cryptonets".
type ModelID string

// KeySetID names an uploaded evaluation-key set: the lowercase hex SHA-256 of
// its bytes, so the same upload always gets the same id.
type KeySetID string

// JobID names one inference job.
type JobID string

// APIKeyID names one tenant API key (not the secret itself).
type APIKeyID string

// UserID names one web-console user: "usr_" and 26 base32 characters. A
// user belongs to a tenant, or is an operator of the whole gateway.
type UserID string
