package server_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// BenchmarkManifestHeadWarm is row d of ../shared/bench in-process: HEAD
// and GET of a cached, fresh tag over keep-alive connections.
func BenchmarkManifestHeadWarm(b *testing.B) {
	o := newOrigin(b)
	img, _ := random.Image(1024, 1)
	o.push(b, "library/app:1", img)
	s := startWith(b, proxyConfig(b, o.URL, ""))
	url := "http://" + s.Addr() + "/v2/library/app/manifests/1"
	accept := "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
	if resp, _, err := get(b, url, "Accept", accept); err != nil || resp.StatusCode != 200 {
		b.Fatalf("warm-up: %v %v", err, resp)
	}
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		b.Run(method, func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				for pb.Next() {
					req, _ := http.NewRequest(method, url, nil)
					req.Header.Set("Accept", accept)
					resp, err := c.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
