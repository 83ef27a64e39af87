package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// CachedRepo is one row of the Cache screen: a repository of a proxy with
// the cached blobs linked in it. A blob shared by two repositories counts
// in both.
type CachedRepo struct {
	Proxy, Repo string
	Blobs       int
	Bytes       int64
	LastUse     time.Time
	Pinned      int // blobs pinned
	// Tags are the repository's cached tags, sorted: each an image to
	// select for pin, unpin or evict (Repo + ":" + tag).
	Tags []string
}

// Text is the row as the screen shows it, with the last use relative to
// now.
func (r CachedRepo) Text(now time.Time) string {
	s := fmt.Sprintf("%s  ·  %d blobs, %s  ·  used %s ago", r.Repo, r.Blobs, Bytes(r.Bytes), Duration(now.Sub(r.LastUse)))
	if r.Pinned > 0 {
		s += fmt.Sprintf("  ·  %d pinned", r.Pinned)
	}
	if len(r.Tags) > 0 {
		s += "  ·  tags " + strings.Join(r.Tags, ", ")
	}
	return s
}

// CachedRepos groups a cache listing by proxy and repository, most
// recently used first within a proxy, proxies by name. A blob linked in
// no repository (its last manifest was evicted) is listed as "(unlinked)".
func CachedRepos(entries []server.CacheEntry) []CachedRepo {
	type key struct{ proxy, repo string }
	rows := map[key]*CachedRepo{}
	for _, e := range entries {
		repos := e.Repos
		if len(repos) == 0 {
			repos = []string{"(unlinked)"}
		}
		for _, repo := range repos {
			k := key{e.Origin, repo}
			r := rows[k]
			if r == nil {
				r = &CachedRepo{Proxy: e.Origin, Repo: repo}
				rows[k] = r
			}
			r.Blobs++
			r.Bytes += e.Size
			if e.LastAccess.After(r.LastUse) {
				r.LastUse = e.LastAccess
			}
			if e.Pinned {
				r.Pinned++
			}
			for _, t := range e.Tags {
				if tag, ok := strings.CutPrefix(t, repo+":"); ok && !slices.Contains(r.Tags, tag) {
					r.Tags = append(r.Tags, tag)
				}
			}
		}
	}
	out := make([]CachedRepo, 0, len(rows))
	for _, r := range rows {
		slices.Sort(r.Tags)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Proxy != b.Proxy {
			return a.Proxy < b.Proxy
		}
		if !a.LastUse.Equal(b.LastUse) {
			return a.LastUse.After(b.LastUse)
		}
		return a.Repo < b.Repo
	})
	return out
}

// CacheSummary is the line above the listing.
func CacheSummary(st server.CacheStats) string {
	s := fmt.Sprintf("%s in %d cached blobs, %d pinned", Bytes(st.ProxiedBytes), st.ProxiedBlobs, st.PinnedDigests)
	if st.MaxSize > 0 {
		s += fmt.Sprintf("; budget %s", Bytes(st.MaxSize))
	}
	if st.HostedBlobs > 0 {
		s += fmt.Sprintf("; hosted pushes %s in %d blobs", Bytes(st.HostedBytes), st.HostedBlobs)
	}
	return s
}

// GCText says what a garbage collection freed or would free.
func GCText(r server.GCReport) string {
	verb, removed := "Freed", "removed"
	if r.DryRun {
		verb, removed = "Would free", "would remove"
	}
	s := fmt.Sprintf("%s %d blobs (%s), %s %d unreferenced links; %d hosted manifests in %d repositories checked",
		verb, r.BlobsFreed, Bytes(r.BytesFreed), removed, r.LinksRemoved, r.Manifests, r.Repositories)
	if r.ReturnedToCache > 0 {
		s += fmt.Sprintf("; %d blobs go back to the proxy cache", r.ReturnedToCache)
	}
	for _, p := range r.Problems {
		s += "\n" + p
	}
	return s
}
