package cache

import (
	"slices"
	"strings"

	"github.com/wharf-registry/wharf/oci"
)

// Transfer is one blob being fetched from the upstream right now, as the
// desktop app draws its progress bar.
type Transfer struct {
	// Repo is the canonical repository (the proxy's name first) that
	// started the fill.
	Repo   string     `json:"repo"`
	Digest oci.Digest `json:"digest"`
	// Size is the blob's length, -1 until the upstream has answered (or
	// when it sent none).
	Size int64 `json:"size"`
	// Received is the bytes that arrived from the upstream so far.
	Received int64 `json:"received"`
	// Joined is how many clients joined the fill after the first.
	Joined int `json:"joined"`
}

// Transfers lists the fills under way, ordered by repository and digest.
// It takes each fill's lock for a moment only: drawing progress never
// slows a fill.
func (p *Proxy) Transfers() []Transfer {
	p.mu.Lock()
	fills := make([]*fill, 0, len(p.fills))
	for _, f := range p.fills {
		fills = append(fills, f)
	}
	p.mu.Unlock()
	out := make([]Transfer, 0, len(fills))
	for _, f := range fills {
		t := Transfer{Repo: f.repo, Digest: f.digest}
		f.mu.Lock()
		t.Size, t.Received, t.Joined = f.size, f.received, f.waiters
		f.mu.Unlock()
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Transfer) int {
		if c := strings.Compare(a.Repo, b.Repo); c != 0 {
			return c
		}
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	return out
}
