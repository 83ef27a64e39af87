package upstream

import (
	"context"
	"net/http"
)

// Ping checks that the upstream answers the registry API and that our
// credentials (or anonymous access) are accepted: GET /v2/, answering its
// challenge. It is tried once, without retries, so a health check reports
// the present state.
func (c *Client) Ping(ctx context.Context) (err error) {
	defer func() { c.observe("ping", err) }()
	resp, err := c.do(ctx, request{
		op:      "ping",
		method:  http.MethodGet,
		path:    "/v2/",
		ok:      []int{http.StatusOK},
		noRetry: true,
	})
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}
