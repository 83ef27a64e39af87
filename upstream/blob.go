package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// GetBlob streams a blob, starting at offset (a Range request when offset >
// 0, to resume an interrupted fill). It returns the blob's total size, or -1
// when the upstream does not say. Redirects are followed, and credentials
// are never sent to a host other than the registry's (Docker Hub hands
// blobs to a CDN). The body is not verified here: the caller hashes what it
// stores. A read that waits longer than IdleTimeout fails with Timeout.
func (c *Client) GetBlob(ctx context.Context, repo, digest string, offset int64) (body io.ReadCloser, size int64, err error) {
	defer func() {
		c.observe("blob", err)
		if err == nil {
			body = observedBlob{body, c}
		}
	}()
	op := "GET blob " + repo + "@" + digest
	name, err := c.repoName(op, repo)
	if err != nil {
		return nil, 0, err
	}
	if _, err := c.blobDigest(op, digest); err != nil {
		return nil, 0, err
	}
	if offset < 0 {
		return nil, 0, c.invalid(op, "negative offset")
	}
	op = "GET blob " + name + "@" + digest
	body, size, err = c.getBlob(ctx, op, name, digest, offset, offset > 0)
	if e, ok := errors.AsType[*Error](err); ok && offset > 0 && e.Status == http.StatusRequestedRangeNotSatisfiable {
		// Some registries reject an open-ended Range; fetch it all and
		// skip the prefix instead.
		c.log.Debug("upstream refused range request, fetching whole blob", "op", op, "offset", offset)
		return c.getBlob(ctx, op, name, digest, offset, false)
	}
	return body, size, err
}

func (c *Client) getBlob(ctx context.Context, op, name, digest string, offset int64, useRange bool) (io.ReadCloser, int64, error) {
	r := request{
		op:     op,
		method: http.MethodGet,
		path:   "/v2/" + name + "/blobs/" + digest,
		scope:  pullScope(name),
		ok:     []int{http.StatusOK},
	}
	if useRange {
		r.header = http.Header{"Range": {"bytes=" + strconv.FormatInt(offset, 10) + "-"}}
		r.ok = append(r.ok, http.StatusPartialContent)
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode == http.StatusPartialContent {
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			resp.Body.Close()
			return nil, 0, c.badResponse(op, fmt.Sprintf("Content-Range %q does not start at %d", resp.Header.Get("Content-Range"), offset))
		}
		return resp.Body, total, nil
	}
	total := resp.ContentLength
	if offset > 0 {
		if total >= 0 && offset > total {
			resp.Body.Close()
			return nil, 0, c.badResponse(op, fmt.Sprintf("offset %d is beyond the blob's %d bytes", offset, total))
		}
		// The upstream ignored the Range: skip what the caller already has.
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			if err == io.EOF {
				return nil, 0, c.badResponse(op, fmt.Sprintf("blob is shorter than offset %d", offset))
			}
			return nil, 0, err
		}
	}
	return resp.Body, total, nil
}

// HeadBlob returns a blob's size, or -1 when the upstream does not say.
func (c *Client) HeadBlob(ctx context.Context, repo, digest string) (_ int64, err error) {
	defer func() { c.observe("blob", err) }()
	op := "HEAD blob " + repo + "@" + digest
	name, err := c.repoName(op, repo)
	if err != nil {
		return 0, err
	}
	d, err := c.blobDigest(op, digest)
	if err != nil {
		return 0, err
	}
	op = "HEAD blob " + name + "@" + digest
	resp, err := c.do(ctx, request{
		op:     op,
		method: http.MethodHead,
		path:   "/v2/" + name + "/blobs/" + digest,
		scope:  pullScope(name),
		ok:     []int{http.StatusOK},
	})
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if h := headerDigest(resp.Header.Get("Docker-Content-Digest")); h != "" && h.Algorithm() == d.Algorithm() && h != d {
		return 0, c.badResponse(op, "upstream reports digest "+h.String())
	}
	return resp.ContentLength, nil
}

// parseContentRange reads "bytes START-END/TOTAL"; total is -1 for "*".
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, last, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	if size == "*" {
		return start, -1, true
	}
	total, err := strconv.ParseInt(size, 10, 64)
	if err != nil || total <= end {
		return 0, 0, false
	}
	return start, total, true
}
