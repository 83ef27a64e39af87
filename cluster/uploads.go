package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/wharf-registry/wharf/oci"
)

// An upload session's bytes stay in the scratch area of the replica that
// started it, until the final PUT hands the verified blob to the bucket.
// A load balancer without affinity sends the session's PATCH and PUT to
// any replica; that replica authorizes the request as usual and forwards
// it, body streamed, to the one holding the session (ForwardUpload). The
// forwarded request carries the cluster token instead of the user's
// credentials, which never leave the replica the client sent them to.

// ReplicaAddr finds a replica's base URL among those alive: ok is false
// when the replica is not listed (it stopped, or was never there).
type ReplicaAddr func(ctx context.Context, replica string) (addr string, ok bool, err error)

// Internal reports whether r comes from another replica: it carries the
// cluster token.
func (c *Coordinator) Internal(r *http.Request) bool {
	got := r.Header.Get(TokenHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(c.o.Token)) == 1
}

// ForwardUpload passes r, a request for an upload session that replica
// owner holds, to that replica and streams its answer back. Errors before
// anything was sent to the client are returned as OCI errors: the replica
// stopped (BLOB_UPLOAD_UNKNOWN: the client starts the blob again), or
// cannot be reached now (UNAVAILABLE).
func (c *Coordinator) ForwardUpload(w http.ResponseWriter, r *http.Request, owner string, lookup ReplicaAddr) error {
	addr, ok, err := lookup(r.Context(), owner)
	if err != nil {
		return err
	}
	if !ok {
		c.o.Metrics.UploadForward("replica_gone")
		return oci.Errorf(oci.CodeBlobUploadUnknown, "upload session is held by replica %s, which has stopped; start the push again", owner)
	}
	target, err := url.Parse(addr)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return oci.Errorf(oci.CodeUnavailable, "replica %s advertises %q, which is not a URL: set its cluster.advertise", owner, addr)
	}
	var failed error
	rp := &httputil.ReverseProxy{
		Transport: c.client.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The user was authorized here; the owner trusts the token.
			// The user's credentials never leave this replica.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(TokenHeader, c.o.Token)
		},
		// Chunks stream both ways: nothing is held back.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed = err
		},
	}
	rp.ServeHTTP(w, r)
	switch {
	case failed == nil:
		c.o.Metrics.UploadForward("forwarded")
		return nil
	case errors.Is(failed, context.Canceled):
		return failed // the client went away
	}
	c.log.Warn("forwarding an upload to the replica holding it failed", "replica", owner, "addr", addr, "err", failed)
	c.o.Metrics.UploadForward("unreachable")
	return oci.Errorf(oci.CodeUnavailable, "the replica holding this upload session (%s at %s) did not answer: %v; retry, or start the push again", owner, addr, failed)
}

// TokenSigningKey is the key every replica signs users' bearer tokens
// with, derived from the cluster token: a token one replica issued is
// good on every other, as a load balancer without affinity needs. It is
// not the cluster token itself, which is shown to peers.
func TokenSigningKey(clusterToken string) []byte {
	m := hmac.New(sha256.New, []byte(clusterToken))
	m.Write([]byte("wharf: bearer token signing key, v1"))
	return m.Sum(nil)
}
