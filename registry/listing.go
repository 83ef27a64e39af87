package registry

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/wharf-registry/wharf/oci"
)

// maxPage caps a page when the client asks for none or too many, so one
// request can never make wharf build an unbounded answer.
const maxPage = 10000

// pagination reads ?n= and ?last=.
func pagination(r *http.Request) (n int, last string, explicit bool, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	s := q.Get("n")
	if s == "" {
		return maxPage, last, false, nil
	}
	v, perr := strconv.Atoi(s)
	if perr != nil || v < 0 {
		return 0, "", false, oci.Errorf(oci.CodePaginationInvalid, "n=%q is not a non-negative number", s)
	}
	if v > maxPage {
		v = maxPage
	}
	return v, last, true, nil
}

func nextLink(path string, n int, last string) string {
	v := url.Values{}
	v.Set("n", strconv.Itoa(n))
	v.Set("last", last)
	return "<" + path + "?" + v.Encode() + `>; rel="next"`
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	if tg.proxy != nil {
		return h.proxyTags(w, r, rt, tg)
	}
	n, last, _, err := pagination(r)
	if err != nil {
		return err
	}
	tags, err := h.o.Hosted.Tags(r.Context(), rt.Name, n+1, last)
	if err != nil {
		return err
	}
	if n == 0 {
		tags = nil
	} else if len(tags) > n {
		tags = tags[:n]
		w.Header().Set("Link", nextLink("/v2/"+rt.Name+"/tags/list", n, tags[len(tags)-1]))
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Name, tags})
}

func (h *Handler) catalog(w http.ResponseWriter, r *http.Request, _ Route, tg target) error {
	canPull, err := h.authorizeCatalog(w, r)
	if err != nil {
		return err
	}
	n, last, _, err := pagination(r)
	if err != nil {
		return err
	}
	repos, err := h.o.Hosted.Catalog(r.Context(), n+1, last)
	if err != nil {
		return err
	}
	repos = slices.DeleteFunc(repos, func(name string) bool { return !canPull(name) })
	if n == 0 {
		repos = nil
	} else if len(repos) > n {
		repos = repos[:n]
		w.Header().Set("Link", nextLink("/v2/_catalog", n, repos[len(repos)-1]))
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	d, err := oci.ParseDigest(rt.Ref)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	descs := []oci.Descriptor{} // proxies answer with no referrers for now
	if tg.proxy == nil {
		if descs, err = h.o.Hosted.Referrers(r.Context(), rt.Name, d, at); err != nil {
			return err
		}
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, oci.MediaTypeOCIIndex, struct {
		SchemaVersion int              `json:"schemaVersion"`
		MediaType     string           `json:"mediaType"`
		Manifests     []oci.Descriptor `json:"manifests"`
	}{2, oci.MediaTypeOCIIndex, descs})
}
