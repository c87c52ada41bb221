package client

import (
	"context"

	"github.com/hegate/hegate/api"
)

// Quota returns the caller's tenant's quotas and usage, its inferences and
// uploads in progress, and the caller's rate limits (GET /v1/quota). The
// admission and rate-limit figures are those of the replica that answered.
//
// A request refused by a limit is an *Error with StatusCode 429 (a rate
// limit, reason rate-*, or the active-jobs quota, quota-active-jobs), 503
// (admission control, concurrency-*) or 403 (a storage quota, quota-*);
// its Problem.Reason tells which.
func (c *Client) Quota(ctx context.Context) (api.Quota, error) {
	var q api.Quota
	return q, c.getJSON(ctx, api.PathQuota, &q)
}
