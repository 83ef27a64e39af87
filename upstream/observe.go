package upstream

import (
	"errors"
	"io"
	"strings"
	"time"
)

// Observer is told about a client's traffic, for metrics and health. Its
// methods are called on request paths and must be cheap and safe for
// concurrent use. endpoint is manifest, blob, tags, ping or token.
type Observer interface {
	// Exchange is one HTTP request to the registry, a redirect target or
	// the token service: status is 0 when no response came, d the time
	// until the response headers (or the failure).
	Exchange(endpoint, method string, status int, d time.Duration)
	// Failed is a call that returned an error of kind to its caller after
	// any retries, or a blob stream that broke after it was handed over.
	// Cancellation by the caller is not a failure.
	Failed(endpoint string, kind Kind)
	// Received counts response body bytes read.
	Received(n int64)
}

type nopObserver struct{}

func (nopObserver) Exchange(string, string, int, time.Duration) {}
func (nopObserver) Failed(string, Kind)                         {}
func (nopObserver) Received(int64)                              {}

// endpointOf names the endpoint of an op ("GET blob NAME@DIGEST", "HEAD
// manifest …", "GET tags NAME", "token SCOPE", "ping") for metric labels.
func endpointOf(op string) string {
	first, rest, _ := strings.Cut(op, " ")
	switch first {
	case "token", "ping":
		return first
	}
	ep, _, _ := strings.Cut(rest, " ")
	switch ep {
	case "manifest", "blob", "tags":
		return ep
	}
	return "other"
}

// observe reports err, if it is an upstream failure, for endpoint. Call it
// where a public method returns.
func (c *Client) observe(endpoint string, err error) {
	if e, ok := errors.AsType[*Error](err); ok {
		c.obs.Failed(endpoint, e.Kind)
	}
}

// observedBlob reports a blob stream that breaks after GetBlob returned it.
type observedBlob struct {
	io.ReadCloser
	c *Client
}

func (b observedBlob) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.c.observe("blob", err)
	}
	return n, err
}
