package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const maxTagsBody = 16 << 20

// Tags lists one page of repo's tags. n <= 0 lets the upstream pick the page
// size; last continues after that tag. The second result is the "last" value
// of the upstream's next-page Link, or "" on the final page.
func (c *Client) Tags(ctx context.Context, repo string, n int, last string) (_ []string, _ string, err error) {
	defer func() { c.observe("tags", err) }()
	op := "GET tags " + repo
	name, err := c.repoName(op, repo)
	if err != nil {
		return nil, "", err
	}
	op = "GET tags " + name
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	resp, err := c.do(ctx, request{
		op:     op,
		method: http.MethodGet,
		path:   "/v2/" + name + "/tags/list",
		query:  q,
		scope:  pullScope(name),
		header: http.Header{"Accept": {"application/json"}},
		ok:     []int{http.StatusOK},
	})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTagsBody+1))
	if err != nil {
		return nil, "", err
	}
	if len(body) > maxTagsBody {
		return nil, "", c.badResponse(op, fmt.Sprintf("tag list exceeds %d bytes", maxTagsBody))
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, "", c.badResponse(op, "malformed tag list")
	}
	if list.Tags == nil {
		list.Tags = []string{}
	}
	return list.Tags, nextLast(resp.Header.Values("Link")), nil
}

// nextLast finds rel="next" in Link headers, e.g.
// `</v2/library/busybox/tags/list?last=1.36&n=100>; rel="next"`, and returns
// its last parameter.
func nextLast(links []string) string {
	for _, v := range links {
		for link := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(link, ";")
			if !ok {
				continue
			}
			target = strings.TrimSpace(target)
			if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			isNext := false
			for p := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
					isNext = true
				}
			}
			if !isNext {
				continue
			}
			u, err := url.Parse(target[1 : len(target)-1])
			if err != nil {
				return ""
			}
			return u.Query().Get("last")
		}
	}
	return ""
}
