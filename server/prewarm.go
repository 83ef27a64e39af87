package server

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/oci"
)

// PrewarmResult is what Prewarm cached.
type PrewarmResult struct {
	Image  string     `json:"image"` // canonical, with the reference
	Digest oci.Digest `json:"digest"`
	Layers int        `json:"layers"`
	Bytes  int64      `json:"bytes"` // config and layers
}

// PrewarmProgress counts a pre-warm's blob bytes: read so far, and in all
// (known once the manifest is in).
type PrewarmProgress struct{ Done, Total atomic.Int64 }

var prewarmAccept = []string{oci.MediaTypeOCIIndex, oci.MediaTypeDockerList, oci.MediaTypeOCIManifest, oci.MediaTypeDockerManifest}

// Prewarm caches image as a client pulling it would: the manifest (for an
// index, the entry for this machine's platform, linux/GOARCH), the config
// and every layer, each read to its end through the proxy, so misses fill
// the cache and hits cost a read. It goes through the proxy in this
// process, not over HTTP, so it needs no login. p may be nil.
func (s *Server) Prewarm(ctx context.Context, image string, p *PrewarmProgress) (PrewarmResult, error) {
	ctx, done, err := s.use(ctx)
	if err != nil {
		return PrewarmResult{}, err
	}
	defer done()
	if p == nil {
		p = &PrewarmProgress{}
	}
	if strings.TrimSpace(image) == "" {
		return PrewarmResult{}, oci.Errorf(oci.CodeParameterInvalid, "name an image, e.g. hub/library/alpine:3.20")
	}
	proxy, canon, ref, err := parseImage(s.cfg, strings.TrimSpace(image))
	if err != nil {
		return PrewarmResult{}, err
	}
	var px *cache.Proxy
	for _, ns := range s.proxies {
		if ns.Name == proxy {
			px = ns.Proxy
		}
	}
	if px == nil {
		return PrewarmResult{}, oci.Errorf(oci.CodeNameUnknown, "proxy %s is not running", proxy)
	}
	repo := strings.TrimPrefix(canon, proxy+"/")
	res := PrewarmResult{Image: canon + ":" + ref.String()}
	if ref.Digest != "" {
		res.Image = canon + "@" + ref.Digest.String()
	}
	m, err := s.prewarmManifest(ctx, px, repo, ref)
	if err != nil {
		return res, err
	}
	res.Digest = m.digest
	blobs := m.Layers
	if m.Config != nil {
		blobs = append([]oci.Descriptor{*m.Config}, blobs...)
	}
	for _, b := range blobs {
		p.Total.Add(b.Size)
	}
	for _, b := range blobs {
		n, err := readBlob(ctx, px, repo, b.Digest, &p.Done)
		res.Bytes += n
		if err != nil {
			return res, err
		}
	}
	res.Layers = len(m.Layers)
	return res, nil
}

type prewarmed struct {
	*oci.Manifest
	digest oci.Digest
}

// prewarmManifest fetches ref, and for an index the entry for this
// machine's platform.
func (s *Server) prewarmManifest(ctx context.Context, px *cache.Proxy, repo string, ref oci.Reference) (prewarmed, error) {
	for depth := 0; ; depth++ {
		got, err := px.GetManifest(ctx, repo, ref, prewarmAccept, false)
		if err != nil {
			return prewarmed{}, err
		}
		m, err := oci.ParseManifest(got.MediaType, got.Body)
		if err != nil {
			return prewarmed{}, err
		}
		if !oci.IsIndex(m.MediaType) && len(m.Manifests) == 0 {
			return prewarmed{m, got.Digest}, nil
		}
		if depth > 0 {
			return prewarmed{}, oci.Errorf(oci.CodeManifestInvalid, "%s: an index inside an index", got.Digest)
		}
		var pick *oci.Descriptor
		for i, d := range m.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
				pick = &m.Manifests[i]
				break
			}
		}
		if pick == nil {
			return prewarmed{}, oci.Errorf(oci.CodeManifestUnknown, "%s has no image for linux/%s", got.Digest, runtime.GOARCH)
		}
		ref = oci.Reference{Digest: pick.Digest}
	}
}

// readBlob reads blob d of repo to its end through px, counting into done.
func readBlob(ctx context.Context, px *cache.Proxy, repo string, d oci.Digest, done *atomic.Int64) (int64, error) {
	b, err := px.OpenBlob(ctx, repo, d)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	w := countWriter{done}
	if b.File != nil {
		return io.Copy(w, b.File)
	}
	return b.StreamTo(ctx, w, 0, -1)
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }
